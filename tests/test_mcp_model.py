"""codesearch-mcp with the real default model (exported to ONNX once, cached across runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from codesearch.embed.loading import ENCODER_FACTORY_ENV
from fixture_repo import FILES, make_repo
from test_mcp import mcp_server, server_env, top

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(300)]

EXTRA = {
    "src/jobs/backoff.py": '''import random


def next_wait_seconds(tries: int) -> float:
    """How long a failed job sleeps before it runs again: doubles each time, with jitter, at most a minute."""
    return random.uniform(0, min(60.0, 0.5 * 2 ** tries))
''',
}


async def test_real_model_search_and_related(tmp_path: Path, default_model_dir: Path) -> None:
    repo = make_repo(tmp_path / "repo", {**FILES, **EXTRA})
    env = server_env()
    env.pop(ENCODER_FACTORY_ENV)
    async with mcp_server(repo, log=tmp_path / "server.log", env=env) as server:
        status = (await server.wait_ready(timeout=240))["roots"][0]
        assert "all-MiniLM-L6-v2" in status["model"] and status["provider"] == "CPUExecutionProvider"

        # natural language, no shared identifiers with the answer
        hits = (await server.ok("search", query="how long should the client wait before retrying", k=3))["results"]
        assert any(h["path"] == "src/http/retry.py" for h in hits), hits
        assert top(await server.ok("search", query="reuse open network connections to a host"))["path"] == \
            "src/http/pool.py"
        assert top(await server.ok("search", query="multiply two matrices"))["path"].endswith("Matrix.java")

        # another implementation of the same idea, found from the stored vector
        related = await server.ok("find_related", path="src/http/retry.py", symbol="backoff_delay", k=3)
        assert "next_wait_seconds" in [r["symbol"] for r in related["results"]], related
