"""The language server's ``shards`` setting: a shards folder searched read-only with the workspace folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from codesearch.lsp.settings import Settings, parse_settings
from codesearch.shards.manifest import ShardsManifest
from fakes import FakeEncoder
from fixture_repo import make_repo
from lsprotocol import types
from test_lsp import eventually, start_client, stop_client, top
from test_shards import OTHER_REPO, local_shard, snapshot


def test_shards_setting() -> None:
    settings, warnings = parse_settings({"shards": " /srv/shards "})
    assert settings == Settings(shards="/srv/shards") and not warnings
    assert settings.to_json()["shards"] == "/srv/shards"
    assert parse_settings({"codesearch": {"shards": ""}}, settings)[0].shards is None
    assert parse_settings({"shards": None}, settings)[0].shards is None
    assert parse_settings({"model": "x"}, settings)[0].shards == "/srv/shards"  # missing keys keep their value
    kept, warnings = parse_settings({"shards": 3}, settings)
    assert kept.shards == "/srv/shards" and warnings == ["shards must be a folder path or null, not 3"]


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_language_server_mounts_shards_beside_the_workspace(tmp_path: Path) -> None:
    workspace = make_repo(tmp_path / "workspace")
    other = make_repo(tmp_path / "other", OTHER_REPO)
    out = tmp_path / "shards"
    record = local_shard(out, other, FakeEncoder()).record
    ShardsManifest((record,)).write(out)
    before = snapshot(out / record.shard)

    client = await start_client([workspace], init_options={"shards": str(out)})
    try:
        await client.wait_ready()
        await client.wait_for(lambda: client.lsp.log_messages and any(
            "mounted 1 shard(s)" in m.message for m in client.lsp.log_messages), what="shards mounted")
        report = await client.command("codesearch-ls.status")
        assert report["shards"] == {"folder": str(out), "repos": ["other"], "problems": []}
        assert report["settings"]["shards"] == str(out)

        from_shard = top(await client.search("slugify_title"))
        assert from_shard["repo"] == "other" and from_shard["path"] == "lib/strings.py"
        assert from_shard["uri"] == (other / "lib/strings.py").resolve().as_uri()
        from_folder = top(await client.search("parse_retry_after"))
        assert "repo" not in from_folder and from_folder["uri"] == (workspace / "src/http/retry.py").as_uri()
        only_folder = await client.search("slugify_title", folder=str(workspace))
        assert all("repo" not in r for r in only_folder["results"])
        symbols = await client.lsp.workspace_symbol_async(types.WorkspaceSymbolParams(query="slugify_title"))
        assert symbols and symbols[0].location.uri == (other / "lib/strings.py").resolve().as_uri()  # type: ignore

        client.lsp.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"codesearch": {"shards": None}}))
        await eventually(client, "slugify_title", False)
        assert (await client.command("codesearch-ls.status"))["shards"]["folder"] is None
    finally:
        await stop_client(client)
    assert snapshot(out / record.shard) == before  # mounted read-only: nothing written
