"""A real third-party client: Neovim's built-in LSP client (Debian's 0.7 build) drives codesearch-ls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import fake_encoder_env
from fixture_repo import make_repo

SCRIPT = Path(__file__).parent / "nvim" / "lsp_client.lua"

pytestmark = [pytest.mark.neovim, pytest.mark.timeout(180)]


@pytest.mark.skipif(shutil.which("nvim") is None,
                    reason="nvim is not installed (scripts/test.sh installs Debian's neovim package)")
def test_neovim_workspace_symbol_and_custom_request(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "nvim-result.json"
    home = tmp_path / "nvim-home"
    env = fake_encoder_env(dict(os.environ))
    env.update({
        "CODESEARCH_NVIM_CMD": json.dumps([sys.executable, "-m", "codesearch.lsp", "--stdio"]),
        "CODESEARCH_NVIM_ROOT": str(repo),
        "CODESEARCH_NVIM_FILE": str(repo / "src" / "http" / "retry.py"),
        "CODESEARCH_NVIM_QUERY": "parse_retry_after",
        "CODESEARCH_NVIM_OUT": str(out),
        # keep Neovim's own files (lsp.log, shada) out of the user's home
        "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"),
    })
    proc = subprocess.run(["nvim", "--headless", "--clean", "-n", "-c", f"luafile {SCRIPT}"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=150)
    assert out.exists(), f"nvim wrote no result (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}"
    result = json.loads(out.read_text())
    assert result["ok"], result.get("error")
    assert result["workspace_symbol_provider"]
    assert result["statuses"][-1]["state"] == "ready"

    retry_uri = (repo / "src" / "http" / "retry.py").as_uri()
    first = result["symbols"][0]
    assert first["name"] == "parse_retry_after"
    assert first["kind"] == 12  # SymbolKind.Function
    assert first["location"]["uri"] == retry_uri
    assert first["location"]["range"]["start"] == {"line": 6, "character": 0}
    assert first["containerName"] == "src/http/retry.py"
    item = result["items"][0]  # Neovim's quickfix item: 1-based line of the definition
    assert item["filename"] == str(repo / "src" / "http" / "retry.py") and item["lnum"] == 7

    search = result["search"]
    assert search["indexing"] is False and 1 <= len(search["results"]) <= 3
    hit = search["results"][0]
    assert hit["uri"] == retry_uri and hit["symbol"] == "parse_retry_after"
    assert hit["range"]["start"]["line"] == 6
    assert result["stopped"]
