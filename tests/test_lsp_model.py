"""codesearch-ls with the real default model (shipped exported with codesearch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from codesearch.embed.loading import ENCODER_FACTORY_ENV
from codesearch.embed.manifest import ModelManifest
from fixture_repo import make_repo
from test_lsp import server_env, start_client, stop_client, top

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(300)]


async def test_real_model_end_to_end(tmp_path: Path, default_model_dir: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    env = server_env()
    env.pop(ENCODER_FACTORY_ENV)
    client = await start_client([repo], env=env, init_options={"device": "cpu"})
    try:
        status = await client.wait_ready(timeout=240)
        assert status["model"] == ModelManifest.read(default_model_dir).id
        assert status["provider"] == "CPUExecutionProvider"
        assert status["embedded"] == status["chunks"] > 0

        # natural language, no shared identifiers with the answer
        hits = (await client.search("how long should the client wait before retrying", limit=3))["results"]
        assert any(h["uri"].endswith("src/http/retry.py") for h in hits), hits
        pool = top(await client.search("reuse open network connections to a host"))
        assert pool["uri"].endswith("src/http/pool.py"), pool
        symbols = await client.symbols("multiply two matrices")
        assert symbols and symbols[0].location.uri.endswith("Matrix.java")

        # the server never loads torch, even to export or run the model
        pid = client.lsp._server.pid  # type: ignore[union-attr]
        maps = Path(f"/proc/{pid}/maps")
        if maps.exists():
            assert "torch" not in maps.read_text()
    finally:
        await stop_client(client)
