"""Many files per transaction during a sync: each file still succeeds or fails alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from codesearch.index.store import Store
from codesearch.types import Chunk


def chunk(path: str, text: str, start: int | None = 1) -> Chunk:
    return Chunk(path=path, language="python", kind="function", symbol="f", container="", start_line=start,  # type: ignore[arg-type]
                 end_line=2, text=text)


def test_a_failed_file_rolls_back_alone_and_the_rest_is_committed(tmp_path: Path) -> None:
    store = Store(tmp_path / "index.db")
    with store.bulk(every_s=3600) as bulk:
        store.replace_file("a.py", 1, 1, "ha", "python", False, [chunk("a.py", "def f(): pass")])
        with pytest.raises(sqlite3.IntegrityError):
            store.replace_file("b.py", 1, 1, "hb", "python", False, [chunk("b.py", "ok"), chunk("b.py", "bad", None)])
        store.replace_file("c.py", 1, 1, "hc", "python", False, [chunk("c.py", "def g(): pass")])
        bulk.maybe_commit()
        other = sqlite3.connect(str(tmp_path / "index.db"))
        assert other.execute("SELECT count(*) FROM files").fetchone()[0] == 0  # not committed yet
    assert sorted(store.files()) == ["a.py", "c.py"]
    assert other.execute("SELECT path FROM chunks ORDER BY path").fetchall() == [("a.py",), ("c.py",)]
    assert [r for r, _ in store.lexical_search(["g"], 5)]  # the full-text rows of committed files are there
    store.close()
    other.close()


def test_bulk_commits_as_it_goes(tmp_path: Path) -> None:
    store = Store(tmp_path / "index.db")
    other = sqlite3.connect(str(tmp_path / "index.db"))
    with store.bulk(every_s=0.0) as bulk:
        store.replace_file("a.py", 1, 1, "ha", "python", False, [chunk("a.py", "def f(): pass")])
        bulk.maybe_commit()
        assert other.execute("SELECT count(*) FROM files").fetchone()[0] == 1  # readers see it already
    store.close()
    other.close()
