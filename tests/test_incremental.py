"""What a small re-index reads and writes: pending counts and order, graph reconciling, when the graph is saved."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from codesearch.engine import SAVE_MIN_CHANGES, Engine
from fakes import FakeEncoder
from fixture_repo import make_repo


def slow_count(engine: Engine, key: str) -> int:
    """The obvious query count_pending replaced."""
    return int(engine.store.read.execute(
        "SELECT count(DISTINCT c.embed_hash) FROM chunks c LEFT JOIN vectors v "
        "ON v.embed_hash=c.embed_hash AND v.model_key=? WHERE v.embed_hash IS NULL", (key,)).fetchone()[0])


def test_pending_counts_and_order(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    (root / "dup_a.py").write_text("def same():\n    return 1\n")
    (root / "dup_b.py").write_text("def same():\n    return 1\n")  # one text, two chunks
    engine = Engine(root, encoder=FakeEncoder())
    engine.sync()
    key = engine.encoder.model_key
    assert engine.store.count_pending(key) == slow_count(engine, key) == len(engine.store.pending_hashes(key))
    hashes = engine.store.pending_hashes(key)
    half = hashes[: len(hashes) // 2]
    engine.store.put_vectors(key, half, np.ones((len(half), 64), np.float32))
    engine.store.put_vectors("other-model", hashes, np.ones((len(hashes), 64), np.float32))
    assert engine.store.count_pending(key) == slow_count(engine, key) == len(hashes) - len(half)
    assert set(engine.store.pending_hashes(key)) == set(hashes) - set(half)

    newest = root / "src" / "http" / "retry.py"
    os.utime(newest, ns=(time.time_ns() + 10**12, time.time_ns() + 10**12))
    newest.write_text(newest.read_text() + "\n\ndef newest_function():\n    return 'fresh'\n")
    os.utime(newest, ns=(time.time_ns() + 10**12, time.time_ns() + 10**12))
    engine.sync()
    first = engine.store.pending_hashes(key)[0]
    paths = {r[0] for r in engine.store.read.execute("SELECT path FROM chunks WHERE embed_hash=?", (first,))}
    assert paths == {"src/http/retry.py"}  # the most recently modified file comes first
    engine.close()


def test_a_graph_a_few_edits_behind_is_caught_up_on_load_without_saving(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    engine.save(force=True)
    graph = engine.dir / "vectors.hnsw"
    saved = graph.stat().st_mtime_ns
    engine.close()

    (root / "src" / "extra.py").write_text("def brand_new_helper():\n    return 42\n")
    engine = Engine(root, encoder=FakeEncoder())
    _, report = engine.update()
    assert report.embedded == 1
    engine.close()
    assert graph.stat().st_mtime_ns == saved  # one change: the graph file was not rewritten

    engine = Engine(root, encoder=FakeEncoder())
    index = engine._vector_index()  # loads the saved graph and adds the one missing vector
    assert index.labels == engine.store.live_vector_ids(engine.encoder.model_key)
    assert engine.graph_drift() == (set(), set())
    assert engine.search("brand_new_helper").hits[0].symbol == "brand_new_helper"
    engine.close()
    assert SAVE_MIN_CHANGES > 1
