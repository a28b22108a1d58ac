"""A sync reads and chunks files in worker processes when there are many; the result is the same."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from codesearch.engine import Engine
from codesearch.index.prepare import pool_workers
from codesearch.paths import workspace_dir
from fakes import FakeEncoder
from fixture_repo import make_repo


def many_files(root: Path, files: int = 80) -> Path:
    root = make_repo(root)
    for f in range(files):
        path = root / f"gen{f % 5}" / f"mod_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"def handler_{f}_{i}(request):\n    \"\"\"Answer request {i}.\"\"\"\n"
                                f"    return request.reply({i})\n\n\n" for i in range(6)))
    return root


def rows(engine: Engine) -> list[tuple[Any, ...]]:
    return sorted(engine.store.db.execute(
        "SELECT c.path, c.symbol, c.container, c.start_line, c.end_line, c.embed_hash, f.name, f.path, f.body "
        "FROM chunks c JOIN chunks_fts f ON f.rowid = c.id").fetchall())


@pytest.mark.skipif(pool_workers(1000) == 0, reason="one core: syncs never use worker processes")
def test_worker_processes_store_exactly_what_one_process_stores(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = many_files(tmp_path / "repo")
    pooled = Engine(root, encoder=FakeEncoder())
    report = pooled.sync()
    assert report.added > 80 and not report.read_errors
    with_pool = rows(pooled)
    pooled.close()

    monkeypatch.setenv("CODESEARCH_SYNC_WORKERS", "0")
    assert pool_workers(1000) == 0
    single = Engine(root, encoder=FakeEncoder(), index_dir=tmp_path / "single")
    single.sync()
    assert rows(single) == with_pool and len(with_pool) > 480
    single.close()


@pytest.mark.skipif(pool_workers(1000) == 0, reason="one core: syncs never use worker processes")
def test_workers_and_the_calling_thread_share_the_files(tmp_path: Path) -> None:
    from codesearch.index.prepare import Task, prepared
    from codesearch.walk.walker import WalkOptions, walk

    root = many_files(tmp_path / "repo", files=300)
    tasks = [Task(f, None, None) for f in walk(root, WalkOptions()).files]
    done = list(prepared(tasks))
    assert sorted(d.source.path for d in done) == sorted(t.source.path for t in tasks)
    assert any(d.worker for d in done)  # worker processes prepared some
    assert all(d.chunks and len(d.terms) == len(d.chunks) for d in done if d.source.path.startswith("gen"))


def test_a_cancelled_sync_keeps_the_files_done_and_the_next_one_finishes(tmp_path: Path) -> None:
    root = many_files(tmp_path / "repo", files=200)
    engine = Engine(root, encoder=FakeEncoder())
    cancel = threading.Event()
    stored: list[str] = []

    def on_stored(item: Any) -> None:
        stored.append(item.source.path)
        if len(stored) == 20:
            cancel.set()

    first = engine.indexer.sync({}, cancel, on_stored=on_stored)
    done = engine.status().files
    assert first.cancelled and len(stored) == 20 and 20 <= done < 200
    second = engine.sync()
    assert not second.cancelled and second.removed == 0 and second.unchanged == done
    assert engine.status().files >= 200
    assert engine.indexer.sync({}).unchanged == engine.status().files  # nothing left to read
    engine.close()
    assert workspace_dir(root).exists()
