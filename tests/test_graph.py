"""The vector graph follows the store: one node per unique text, in step after every sync.

Dense-mode searches (``mode="dense"``) go through the graph alone, so a chunk missing from the
graph cannot be found by them however its text matches.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from codesearch.engine import Engine
from codesearch.index.store import SCHEMA_VERSION, _embed_text
from codesearch.index.vector_index import VectorIndex
from conftest import FakeEncoder
from fixture_repo import make_repo

GEO = '''def haversine(lat1, lon1, lat2, lon2):
    """Great circle distance between two places on earth, in kilometres."""
    return 6371.0 * central_angle(lat1, lon1, lat2, lon2)


def kilometres_to_miles(km):
    return km * 0.621371
'''
QUERY = "great circle distance between two places on earth"


def dense(engine: Engine, query: str, k: int = 3) -> list[str]:
    return [h.symbol for h in engine.search(query, limit=k, mode="dense").hits]


def in_step(engine: Engine) -> bool:
    missing, extra = engine.graph_drift()
    return not missing and not extra


def geo_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "geo.py").write_text(GEO)
    (root / "text.py").write_text("def slugify(title):\n    return '-'.join(title.lower().split())\n")
    return root


@pytest.mark.parametrize("how", ["update_paths", "sync"])
def test_edit_beside_an_unchanged_function_keeps_it_in_dense_search(tmp_path: Path, how: str) -> None:
    root = geo_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    assert dense(engine, QUERY)[0] == "haversine"
    (root / "geo.py").write_text(GEO + "\n\ndef unrelated_helper(items):\n    return sorted(items)\n")
    if how == "update_paths":
        engine.update_paths([root / "geo.py"])  # what the language server does on a save
    else:
        engine.update()
    assert dense(engine, QUERY)[0] == "haversine"
    assert "kilometres_to_miles" in dense(engine, "kilometres to miles")
    assert in_step(engine)
    engine.close()


def test_switching_branches_and_copying_files_keeps_the_graph_in_step(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    queries = ["parse the retry after header", "reuse idle sockets of the pool", "exponential backoff with jitter",
               "sum the prices in the cart", "escape html", "multiply two matrices", "fnv hash of bytes"]
    clean = {q: dense(engine, q, 5) for q in queries}
    saved = {p: p.read_text() for p in root.rglob("*.py") if ".git" not in p.parts}

    # "another branch": every Python file rewritten, then the original files come back
    for path, text in saved.items():
        path.write_text(text.replace("def ", "def other_"))
    engine.update()
    assert in_step(engine)
    for path, text in saved.items():
        path.write_text(text)
    _, embedded = engine.update()
    assert embedded.embedded == 0  # every text came back from the cache ...
    assert in_step(engine)  # ... and into the graph
    assert {q: dense(engine, q, 5) for q in queries} == clean

    # a copied file: its chunks share the original's vectors; both are found, the graph does not grow
    labels = len(engine._vector_index())
    shutil.copy(root / "src" / "http" / "retry.py", root / "src" / "http" / "retry_copy.py")
    _, embedded = engine.update()
    assert embedded.embedded == 0 and len(engine._vector_index()) == labels and in_step(engine)
    paths = {h.path for h in engine.search("parse the retry after header", limit=10, mode="dense").hits}
    assert {"src/http/retry.py", "src/http/retry_copy.py"} <= paths
    (root / "src" / "http" / "retry_copy.py").unlink()
    engine.update()
    assert in_step(engine) and len(engine._vector_index()) == labels
    assert dense(engine, "parse the retry after header", 5) == clean["parse the retry after header"]
    engine.close()


def test_graph_after_reopen_matches_the_store(tmp_path: Path) -> None:
    root = geo_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    (root / "geo.py").write_text(GEO.replace("kilometres_to_miles", "km_to_mi"))
    engine.update()  # one label deleted in the saved graph
    engine.close()
    (root / "geo.py").write_text(GEO)  # ... whose text comes back while no process runs
    again = Engine(root, encoder=FakeEncoder())
    _, embedded = again.update()
    assert embedded.embedded == 0 and in_step(again)
    assert dense(again, "kilometres to miles", 1) == ["kilometres_to_miles"]
    again.close()


def test_identical_chunks_share_one_node(tmp_path: Path) -> None:
    """5,000 identical stubs beside 60 unique functions: before, 0 of 60 were found by their own vector."""
    root = tmp_path / "repo"
    (root / "stubs").mkdir(parents=True)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
             "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform"]
    for i in range(60):
        a, b, c = words[i % 21], words[(i * 7 + 3) % 21], words[(i * 11 + 5) % 21]
        (root / f"u{i}.py").write_text(f"def {a}_{b}_{c}_{i}(x):\n    '''{a} {b} {c} number {i}'''\n    return x\n")
    stub = "def handler(request):\n    '''generated handler stub'''\n    raise NotImplementedError\n"
    for i in range(5000):
        (root / "stubs" / f"s{i}.py").write_text(stub)
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    assert len(engine._vector_index()) == 61 and in_step(engine)
    rows = engine.store.read.execute("SELECT container, symbol, text, path FROM chunks WHERE path LIKE 'u%'").fetchall()
    assert len(rows) == 60
    found = 0
    for container, symbol, text, path in rows:
        hits = engine.search(_embed_text(container, symbol, text), limit=1, mode="dense").hits
        found += hits[0].path == path
    assert found == 60
    # a dense hit on the stub stands for its copies (a bounded number of them)
    stubs = engine.search("generated handler stub", limit=50, mode="dense").hits
    assert len({h.path for h in stubs}) == 50
    engine.close()


def _downgrade_to_schema_3(db_path: Path, graph: Path) -> int:
    """Rewrite a current index the way version 3 stored it (vectors keyed by text and model alone)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.executescript("""
        BEGIN;
        CREATE TABLE vectors_v3 (embed_hash TEXT NOT NULL, model_key TEXT NOT NULL, vector BLOB NOT NULL,
                                 PRIMARY KEY (embed_hash, model_key)) WITHOUT ROWID;
        INSERT INTO vectors_v3 SELECT embed_hash, model_key, vector FROM vectors;
        DROP TABLE vectors;
        ALTER TABLE vectors_v3 RENAME TO vectors;
        UPDATE meta SET value='3' WHERE key='schema_version';
        COMMIT;
    """)
    count = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    db.close()
    sidecar = graph.with_name(graph.name + ".json")
    meta = json.loads(sidecar.read_text())
    del meta["format"]  # version 3 graphs had no format and chunk-id labels
    sidecar.write_text(json.dumps(meta))
    return int(count)


def test_schema_3_index_is_upgraded_keeping_every_vector(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    expected = dense(engine, "parse the retry after header", 5)
    engine.close()
    vectors = _downgrade_to_schema_3(engine.dir / "index.db", engine.dir / "vectors.hnsw")
    messages: list[str] = []
    again = Engine(root, encoder=FakeEncoder(), on_message=messages.append)
    assert any("upgraded from schema 3" in m for m in messages)
    assert again.store.count_vectors("fake-1") == vectors
    assert again.status().pending == 0
    assert dense(again, "parse the retry after header", 5) == expected
    assert any("format 1" in m and "rebuilding it from stored vectors" in m for m in messages)
    _, embedded = again.update()
    assert embedded.embedded == 0 and in_step(again)
    again.close()
    assert sqlite3.connect(engine.dir / "index.db").execute(
        "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_vector_index_labels_come_back_and_survive_saving(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, 41, dtype=np.int64)
    index = VectorIndex(8, capacity=16)
    index.add(ids[:30], vectors[:30])
    index.remove([3, 4, 5])
    assert index.search(vectors[3], 1)[0][0] != 4
    index.add(ids[3:4], vectors[3:4])  # deleted, then live again: unmarked, not re-inserted
    assert index.search(vectors[3], 1)[0][0] == 4
    index.add(ids[30:], vectors[30:])  # new labels take the deleted slots: labels 3 and 5 leave the structure
    assert index.labels == set(range(1, 41)) - {3, 5}
    index.add(ids[[2, 4]], vectors[[2, 4]])  # and come back as new ones
    assert index.labels == set(range(1, 41))
    for i in (2, 4, 35):
        assert index.search(vectors[i], 1)[0][0] == i + 1
    index.remove([10, 11])
    index.save(tmp_path / "g.hnsw", "key")
    loaded = VectorIndex.load(tmp_path / "g.hnsw", "key", 8)
    assert loaded.labels == set(range(1, 41)) - {10, 11}
    loaded.add(ids[9:11], vectors[9:11])
    assert loaded.labels == set(range(1, 41))
    assert loaded.search(vectors[9], 1)[0][0] == 10


def test_a_sync_stopped_part_way_leaves_the_graph_in_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codesearch.index.store import Store

    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update()
    for path in root.rglob("*.py"):
        path.write_text(path.read_text().replace("def ", "def renamed_"))
    real = Store.replace_file
    calls = [0]

    def interrupted(self: Store, *args: object) -> set[str]:
        calls[0] += 1
        if calls[0] == 3:  # Ctrl-C (or a full disk) after two files were re-chunked and committed
            raise KeyboardInterrupt
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "replace_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.sync()
    assert in_step(engine)
    monkeypatch.setattr(Store, "replace_file", real)
    engine.update()
    assert in_step(engine)
    engine.close()
