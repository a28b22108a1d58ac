"""The index under storage faults: a full disk, damage, an unknown schema, odd files. Nothing stored
is lost or re-embedded because of a problem that is not damage to the database itself.

A full disk is simulated without tmpfs: SQLite's ``max_page_count`` caps the database at its current
size on every writable connection (SQLite then fails exactly as on a full disk: SQLITE_FULL).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from codesearch.engine import Engine, IndexUnavailable
from codesearch.index import store as store_module
from codesearch.index.errors import StorageProblem, StoreCorrupt, StoreUnavailable, classify_sqlite_error
from codesearch.walk.walker import walk
from conftest import FakeEncoder
from fixture_repo import make_repo

NEW_FILE = "".join(f"def freshly_added_{i}(value):\n    return value * {i} + len(str(value))\n\n\n"
                   for i in range(40))


@contextmanager
def disk_full(pages: int | None = None) -> Iterator[None]:
    """Every writable connection opened inside cannot grow its database past ``pages`` (default:
    its size when opened)."""
    real = store_module.connect

    def capped(path: Path, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
        db = real(path, read_only, immutable)
        if not read_only:
            limit = pages if pages is not None else db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={max(limit, 1)}")
        return db

    store_module.connect = capped  # type: ignore[assignment]
    try:
        yield
    finally:
        store_module.connect = real


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".corrupt-" in p.name)


def test_a_full_disk_keeps_the_index_and_nothing_is_embedded_twice(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    vectors = engine.store.count_vectors("fake-1")
    engine.close()
    (root / "src" / "fresh.py").write_text(NEW_FILE)

    with disk_full():
        full = Engine(root, encoder=FakeEncoder())  # opening writes nothing
        with pytest.raises(IndexUnavailable) as info:
            full.update()
        assert StorageProblem.FULL.value in str(info.value) and str(full.dir) in str(info.value)
        assert full.search("parse_retry_after").hits[0].symbol == "parse_retry_after"  # still searchable
        full.close()
        for _ in range(3):  # each later command: no copy, no rename, the same refusal
            again = Engine(root, encoder=FakeEncoder())
            with pytest.raises(IndexUnavailable):
                again.update()
            again.close()
    assert leftovers(engine.dir) == []

    messages: list[str] = []
    healed = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    sync, embedded = healed.update()
    assert not any("moved aside" in m or "rebuilt" in m for m in messages)
    assert sync.added == 1 and embedded.embedded == 40  # only the new file's functions
    assert healed.store.count_vectors("fake-1") == vectors + 40
    assert healed.graph_drift() == (set(), set())
    healed.close()


def test_a_full_disk_while_opening_is_not_corruption(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    folder = Engine(root, encoder=FakeEncoder()).dir
    (folder / "index.db").unlink()
    (folder / "index.db").write_bytes(b"")  # creating the schema needs pages the disk does not have
    with disk_full(pages=1), pytest.raises(IndexUnavailable) as info:
        Engine(root, encoder=FakeEncoder())
    assert StorageProblem.FULL.value in str(info.value)
    assert leftovers(folder) == [] and (folder / "index.db").is_file()


def test_sqlite_errors_are_told_apart(tmp_path: Path) -> None:
    def error_of(action: object) -> sqlite3.Error:
        with pytest.raises(sqlite3.Error) as info:
            action()  # type: ignore[operator]
        return info.value

    db = tmp_path / "a.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.execute("PRAGMA max_page_count=2")
    full = error_of(lambda: conn.execute("INSERT INTO t VALUES (zeroblob(100000))"))
    conn.close()
    readonly = error_of(lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("INSERT INTO t VALUES (1)"))
    cantopen = error_of(lambda: sqlite3.connect(tmp_path / "missing" / "x.db"))
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 200)
    notadb = error_of(lambda: sqlite3.connect(tmp_path / "garbage.db").execute("SELECT * FROM sqlite_master"))

    for exc, problem in ((full, StorageProblem.FULL), (readonly, StorageProblem.READ_ONLY),
                         (cantopen, StorageProblem.PERMISSION)):
        kind = classify_sqlite_error(exc, db)
        assert isinstance(kind, StoreUnavailable) and kind.problem == problem, (exc, kind)
        assert str(tmp_path) in str(kind)
    assert isinstance(classify_sqlite_error(notadb, db), StoreCorrupt)


def test_damage_is_moved_aside_keeping_one_copy(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    for _ in range(3):
        engine = Engine(root, encoder=FakeEncoder())
        engine.update()
        engine.close()
        db = engine.dir / "index.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        size = db.stat().st_size
        with open(db, "r+b") as fh:  # cut in half
            fh.truncate(size // 2)
        messages: list[str] = []
        Engine(root, encoder=FakeEncoder(), on_message=messages.append).close()
        assert any("damaged" in m and "moved aside" in m for m in messages), messages
    assert len(leftovers(engine.dir)) == 1


def test_an_empty_database_file_is_rebuilt_with_a_message(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    engine.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{engine.dir / 'index.db'}{suffix}").unlink(missing_ok=True)
    (engine.dir / "index.db").write_bytes(b"")
    messages: list[str] = []
    again = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    assert any("was empty (0 bytes" in m for m in messages), messages
    again.update()
    assert again.search("parse_retry_after").hits[0].symbol == "parse_retry_after"
    again.close()


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    engine.store.set_meta("schema_version", "99")
    engine.close()
    before = sorted(p.name for p in engine.dir.iterdir())
    with pytest.raises(IndexUnavailable) as info:
        Engine(root, encoder=FakeEncoder())
    assert "newer version of codesearch" in str(info.value)
    assert sorted(p.name for p in engine.dir.iterdir()) == before


def test_a_lock_file_replaced_by_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    engine.close()
    lock = engine.dir / "write.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    again = Engine(root, encoder=FakeEncoder())
    with pytest.raises(IndexUnavailable) as info:
        again.update()
    assert "write.lock is a folder" in str(info.value)
    assert again.search("parse_retry_after").hits  # searching needs no lock
    again.close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no fifos here")
def test_a_fifo_is_reported_as_skipped_and_never_opened(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    os.mkfifo(root / "pipe.py")
    os.symlink(root / "pipe.py", root / "link_to_pipe.py")
    skipped = {(s.path, s.reason, s.detail) for s in walk(root).skipped}
    assert {("pipe.py", "special-file", "fifo"), ("link_to_pipe.py", "special-file", "fifo")} <= skipped
    engine = Engine(root, encoder=FakeEncoder())
    sync, _ = engine.update()  # would block forever if the fifo were opened
    assert ("pipe.py", "special-file") in sync.skipped
    assert engine.update_paths([root / "pipe.py"]).added == 0
    engine.close()


def test_an_over_long_query_is_cut_with_a_note(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    words = " ".join(f"word{i}" for i in range(120_000))  # about 1 MB of distinct words
    result = engine.search("parse retry after header " + words)
    assert result.query_cut > 900_000 and result.notes and "cut" in result.notes[0]
    assert result.hits
    assert engine.search("parse retry after header").query_cut == 0
    engine.close()


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX file semantics")


class _Listener:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def folder_progress(self, folder: object, progress: object) -> None:
        pass

    def folder_idle(self, folder: object) -> None:
        pass

    def folder_changed(self, folder: object) -> None:
        pass

    def folder_message(self, folder: object, message: str, error: bool) -> None:
        self.messages.append(message)


def test_a_server_folder_searches_through_a_full_disk_and_takes_over_when_space_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from codesearch.engine import EngineConfig
    from codesearch.service import folder as folder_module

    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    engine.close()
    full = [True]
    real = store_module.connect

    def refusing(path: Path, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
        if full[0] and not read_only:  # as SQLite reports a disk that cannot take the -shm file
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode, exc.sqlite_errorname = 13, "SQLITE_FULL"  # type: ignore[misc]
            raise exc
        return real(path, read_only, immutable)

    monkeypatch.setattr(store_module, "connect", refusing)
    monkeypatch.setattr(folder_module, "REOPEN_READ_ONLY_S", 0.2)
    listener = _Listener()
    folder = folder_module.FolderIndexer(root, EngineConfig(), listener, encoder=FakeEncoder())
    folder.start()
    try:
        deadline = time.monotonic() + 20
        while not folder.snapshot().message.startswith("read-only"):
            assert time.monotonic() < deadline, folder.snapshot()
            time.sleep(0.05)
        assert StorageProblem.FULL.value in folder.snapshot().message
        assert folder.search("parse_retry_after", 5, [], None).hits[0].symbol == "parse_retry_after"
        (root / "src" / "fresh.py").write_text(NEW_FILE)
        full[0] = False
        while not folder.snapshot().writer or not folder.wait_idle(0.1) or \
                not any(h.symbol == "freshly_added_3" for h in folder.search("freshly_added_3", 5, [], None).hits):
            assert time.monotonic() < deadline + 20, folder.snapshot()
            time.sleep(0.1)
        assert any("can be written again" in m for m in listener.messages)
        assert leftovers(folder.engine.dir) == []  # type: ignore[union-attr]
    finally:
        folder.stop()
