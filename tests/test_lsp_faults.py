"""The running language server after an edit: unchanged functions stay in semantic search.

Before the vector graph followed the store, every chunk of an edited file got a new id and only new
texts were added back: the unchanged ``haversine`` beside the edit left the dense results until a
restart (and was then found by keywords alone).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from test_lsp import Client, start_client, stop_client

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

GEO = '''def haversine(lat1, lon1, lat2, lon2):
    """Great circle distance between two places on earth, in kilometres."""
    return 6371.0 * central_angle(lat1, lon1, lat2, lon2)


def kilometres_to_miles(km):
    return km * 0.621371
'''
QUERY = "great circle distance between two places on earth"


def first(result: dict[str, Any]) -> dict[str, Any]:
    assert result["results"], result
    hit: dict[str, Any] = result["results"][0]
    return hit


async def until_found(client: Client, symbol: str, within: float = 10.0) -> None:
    started = time.monotonic()
    while not any(h["symbol"] == symbol for h in (await client.search(symbol, limit=5))["results"]):
        assert time.monotonic() - started < within, f"{symbol} not found after {within}s"
        await asyncio.sleep(0.1)


async def test_edit_beside_an_unchanged_function_keeps_it_semantic(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "geo.py").write_text(GEO)
    (root / "text.py").write_text("def slugify(title):\n    return '-'.join(title.lower().split())\n")
    client = await start_client([root])
    try:
        await client.wait_ready()
        before = first(await client.search(QUERY))
        assert before["symbol"] == "haversine" and "dense" in before["sources"]

        for n in range(3):  # every save of the file, not just the first
            (root / "geo.py").write_text(GEO + "".join(f"\n\ndef helper_{i}(items):\n    return sorted(items)\n"
                                                       for i in range(n + 1)))
            client.lsp.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=(root / "geo.py").as_uri(), type=types.FileChangeType.Changed)]))
            await until_found(client, f"helper_{n}")
            await client.wait_ready()
            after = first(await client.search(QUERY))
            assert after["symbol"] == "haversine" and "dense" in after["sources"], after

        # an unsaved buffer re-chunks the file too
        client.lsp.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=(root / "geo.py").as_uri(), language_id="python", version=1,
            text=GEO + "\n\ndef buffered_only(x):\n    return x\n")))
        await until_found(client, "buffered_only")
        await client.wait_ready()
        after = first(await client.search(QUERY))
        assert after["symbol"] == "haversine" and "dense" in after["sources"], after
    finally:
        await stop_client(client)


async def test_a_read_only_index_is_searched_by_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in test_cli_faults: root without its DAC capabilities (setpriv) meets the permission bits."""
    import os
    import shutil

    import test_lsp
    from codesearch.engine import Engine
    from conftest import FakeEncoder

    root = tmp_path / "repo"
    root.mkdir()
    (root / "geo.py").write_text(GEO)
    engine = Engine(root, encoder=FakeEncoder(key="fake-1", dimension=64))
    engine.update()
    engine.close()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        monkeypatch.setattr(test_lsp, "SERVER", [
            "setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all", "--",
            *test_lsp.SERVER])
    cache = Path(os.environ["CODESEARCH_CACHE_DIR"])
    paths = [p for p in [cache, *cache.rglob("*")] if not p.is_symlink()]
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        client = await start_client([root])
        try:
            await client.wait_for(lambda: "read-only" in client.last_status.get("message", ""), what="read-only")
            hit = first(await client.search(QUERY))
            assert hit["symbol"] == "haversine" and "dense" in hit["sources"]
            assert any("read-only" in m.message for m in client.lsp.log_messages)
        finally:
            await stop_client(client)
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)
