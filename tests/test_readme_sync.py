"""The README's figures are copies of blocks in docs/ (scripts/sync_readme.py); they must agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def sync_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_readme", REPO / "scripts" / "sync_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_figures_match_the_docs() -> None:
    sync = sync_script()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = sync.doc_blocks(sync.SOURCES)
    assert sync.BLOCK.search(readme), "the README has no figure blocks"
    assert sync.synced(readme, blocks) == readme, "README.md differs from docs/: run scripts/sync_readme.py"


def test_sync_replaces_blocks_and_refuses_unknown_or_duplicate_names(tmp_path: Path) -> None:
    sync = sync_script()
    doc = tmp_path / "a.md"
    doc.write_text("x\n<!-- readme: speed -->\n| a |\n|---|\n| 2 |\n<!-- /readme: speed -->\n", encoding="utf-8")
    blocks = sync.doc_blocks([doc])
    readme = "top\n<!-- readme: speed -->\n| a |\n|---|\n| 1 |\n<!-- /readme: speed -->\nend\n"
    assert sync.synced(readme, blocks) == readme.replace("| 1 |", "| 2 |")
    with pytest.raises(sync.SyncError, match="quality"):
        sync.synced("<!-- readme: quality -->\n<!-- /readme: quality -->\n", blocks)
    other = tmp_path / "b.md"
    other.write_text("<!-- readme: speed -->\n<!-- /readme: speed -->\n", encoding="utf-8")
    with pytest.raises(sync.SyncError, match="both"):
        sync.doc_blocks([doc, other])
