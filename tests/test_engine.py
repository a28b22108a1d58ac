"""The engine facade with a seeded fake encoder: indexing, incremental updates, recovery."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from codesearch.engine import Engine, EngineError
from conftest import FakeEncoder
from fixture_repo import make_repo


def engine_for(root: Path, encoder: FakeEncoder | None = None) -> Engine:
    return Engine(root, encoder=encoder or FakeEncoder())


def top_symbols(engine: Engine, query: str, k: int = 5, **kw: object) -> list[str]:
    return [h.qualified_name for h in engine.search(query, limit=k, **kw).hits]  # type: ignore[arg-type]


def test_full_index_and_search(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    status = engine.status()
    assert status.files >= 8
    assert status.pending == 0 and status.embedded == status.chunks
    paths = {h.path for h in engine.search("generated", limit=50).hits}
    assert "build/generated.py" not in paths  # .gitignore'd
    assert top_symbols(engine, "parse_retry_after")[0] == "parse_retry_after"
    assert top_symbols(engine, "ConnectionPool.acquire")[0] == "ConnectionPool.acquire"
    engine.close()


def test_index_is_outside_workspace(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    engine = engine_for(root)
    engine.update()
    engine.close()
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert not str(engine.dir).startswith(str(root))


def test_incremental_edit_delete_rename(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    chunks_before = engine.status().chunks

    new = root / "src" / "http" / "cookies.py"
    new.write_text("def parse_cookie_header(value):\n    return dict(p.split('=') for p in value.split(';'))\n")
    sync, _ = engine.update()
    assert sync.added == 1 and sync.updated == 0
    assert top_symbols(engine, "parse_cookie_header")[0] == "parse_cookie_header"

    os.replace(new, root / "src" / "http" / "cookie_jar.py")
    sync, emb = engine.update()
    assert sync.added == 1 and sync.removed == 1
    assert emb.embedded == 0  # same text: the vector cache answers
    hits = engine.search("parse_cookie_header", limit=3).hits
    assert hits[0].path == "src/http/cookie_jar.py"

    (root / "src" / "http" / "cookie_jar.py").unlink()
    engine.update()
    assert "parse_cookie_header" not in top_symbols(engine, "parse_cookie_header", k=10)
    assert engine.status().chunks == chunks_before
    engine.close()


def test_unchanged_files_are_not_rechunked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    sync, emb = engine.update()
    assert (sync.added, sync.updated, sync.removed) == (0, 0, 0)
    assert emb.embedded == 0
    # touching without changing content re-hashes but does not re-chunk
    target = root / "src" / "http" / "pool.py"
    os.utime(target, ns=(time.time_ns(), time.time_ns()))
    sync, _ = engine.update()
    assert sync.updated == 0 and sync.unchanged >= 1
    engine.close()


def test_branch_switch_back_is_free(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    target = root / "src" / "http" / "pool.py"
    original = target.read_text()
    target.write_text(original.replace("max_idle", "max_idle_connections"))
    _, emb = engine.update()
    assert emb.embedded > 0
    target.write_text(original)
    _, emb = engine.update()
    assert emb.embedded == 0
    engine.close()


def test_reopen_uses_saved_index(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    expected = top_symbols(engine, "reuse idle sockets")
    engine.close()
    again = engine_for(root)
    assert again.status().pending == 0
    assert top_symbols(again, "reuse idle sockets") == expected
    again.close()


def test_corrupt_vector_index_is_rebuilt(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    expected = top_symbols(engine, "exponential backoff")
    engine.close()
    (engine.dir / "vectors.hnsw").write_bytes(b"garbage" * 10)
    messages: list[str] = []
    again = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    assert top_symbols(again, "exponential backoff") == expected
    assert any("rebuilding" in m for m in messages)
    again.close()


def test_corrupt_database_is_rebuilt(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    engine.close()
    db = engine.dir / "index.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    messages: list[str] = []
    again = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    assert any("moved aside" in m for m in messages)
    again.update()
    assert top_symbols(again, "parse_retry_after")[0] == "parse_retry_after"
    again.close()


def test_model_change_reembeds_and_never_mixes(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root, FakeEncoder(key="model-a"))
    engine.update()
    n = engine.status().chunks
    engine.close()
    other = Engine(root, encoder=FakeEncoder(dimension=32, key="model-b"))
    assert other.status().pending == n  # nothing of model-a counts for model-b
    _, emb = other.update()
    assert emb.embedded > 0
    assert other.status().pending == 0
    other.close()
    back = engine_for(root, FakeEncoder(key="model-a"))
    _, emb = back.update()
    assert emb.embedded == 0  # model-a's vectors are still cached
    back.close()


def test_lexical_answers_before_embedding(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.sync()
    result = engine.search("parse_retry_after")
    assert result.pending > 0
    assert result.hits[0].symbol == "parse_retry_after"
    engine.close()


def test_filters_language_and_glob(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    hits = engine.search("total price of items", limit=20, languages=["typescript"]).hits
    assert hits and all(h.language == "typescript" for h in hits)
    hits = engine.search("hash", limit=20, path_glob="crates/**").hits
    assert hits and all(h.path.startswith("crates/") for h in hits)
    engine.close()


def test_overlay_unsaved_buffer(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    target = root / "web" / "src" / "format.js"
    engine.set_overlay(target, target.read_text() + "\nfunction slugifyTitle(t) { return t.toLowerCase(); }\n")
    engine.update_paths([target])
    assert top_symbols(engine, "slugifyTitle")[0] == "slugifyTitle"
    engine.set_overlay(target, None)
    engine.update_paths([target])
    assert "slugifyTitle" not in top_symbols(engine, "slugifyTitle")
    engine.close()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    first = engine_for(root)
    assert first.acquire_writer(wait=False)
    second = engine_for(root)
    assert not second.acquire_writer(wait=False)
    with pytest.raises(EngineError):
        second.sync()
    first.update()
    # the reader still answers from what the writer stored
    assert second.search("parse_retry_after").hits[0].symbol == "parse_retry_after"
    first.close()
    second.close()


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        Engine(tmp_path / "missing", encoder=FakeEncoder())
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(EngineError):
        Engine(tmp_path / "file.txt", encoder=FakeEncoder())
    engine = engine_for(make_repo(tmp_path / "repo"))
    with pytest.raises(EngineError):
        engine.search("   ")
    engine.close()


def test_chunker_change_rechunks_without_reembedding(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    engine.store.set_meta("chunker", "an-older-chunker")
    engine.close()
    messages: list[str] = []
    again = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    # opening writes nothing: a reader of another version must not make the writer re-chunk everything
    assert again.store.get_meta("chunker") == "an-older-chunker" and not messages
    sync, emb = again.update()
    assert any("chunker changed" in m for m in messages)
    assert sync.updated == again.status().files  # every file re-chunked
    assert emb.embedded == 0  # same chunk texts: the vector cache answers
    again.close()
    third = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    sync, _ = third.update()
    assert sync.updated == 0
    third.close()


def test_integrity_check_runs_only_after_an_unclean_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codesearch.index.store import Store

    root = make_repo(tmp_path / "repo")
    engine = engine_for(root)
    engine.update()
    assert engine.store.get_meta("writer_open") == "1"
    db = engine.store.path
    engine.close()
    checks: list[str] = []
    real = Store._writer_was_open

    def spy(conn: object) -> bool:
        result = real(conn)  # type: ignore[arg-type]
        checks.append("check" if result else "skip")
        return result

    monkeypatch.setattr(Store, "_writer_was_open", staticmethod(spy))
    Store(db).close()
    crashed = Store(db)
    crashed.mark_writer(True)  # a writer that never released the lock
    crashed.close()
    Store(db).close()
    assert checks == ["skip", "skip", "check"]


def test_close_waits_for_searches_in_flight_and_refuses_later_ones(tmp_path: Path) -> None:
    import threading

    from codesearch.engine import EngineClosed

    engine = engine_for(make_repo(tmp_path / "repo"))
    engine.update()
    inside, release = threading.Event(), threading.Event()
    real = engine.store.chunk_rows

    def slow_rows(*args: object, **kwargs: object) -> object:
        inside.set()
        release.wait(10)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    engine.store.chunk_rows = slow_rows  # type: ignore[method-assign]
    results: list[object] = []
    search = threading.Thread(target=lambda: results.append(engine.search("parse_retry_after").hits[0].symbol))
    search.start()
    assert inside.wait(10)
    closer = threading.Thread(target=engine.close)
    closer.start()
    time.sleep(0.3)
    assert closer.is_alive(), "close did not wait for the search in flight"
    release.set()
    search.join(10)
    closer.join(10)
    assert results == ["parse_retry_after"]
    with pytest.raises(EngineClosed):
        engine.search("parse_retry_after")
