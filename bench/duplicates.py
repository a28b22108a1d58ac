"""A duplicate-heavy workspace: N identical stub files beside 60 unique functions.

Reports how many of the unique functions a dense search finds by their own text (their vector is the
query, so each should come first), the number of labels in the vector graph, its size on disk, the
database size and the peak memory of the process. Runs on whatever ``codesearch`` is importable, so
the same command measures two versions:

    PYTHONPATH=<checkout>/server python bench/duplicates.py --stubs 5000

The default model is used (CPU); only unique texts are embedded, so this takes seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform"]
STUB = "def handler(request):\n    '''Generated request handler stub.'''\n    raise NotImplementedError\n"
TOPICS = ["parse a date string", "compute a checksum of bytes", "retry a request with backoff",
          "merge two sorted lists", "escape html characters", "read a config file", "hash a password",
          "resize an image", "validate an email address", "format a currency amount"]


def build(root: Path, stubs: int) -> None:
    (root / "stubs").mkdir(parents=True)
    for i in range(60):
        a, b = WORDS[i % 21], WORDS[(i * 7 + 3) % 21]
        topic = TOPICS[i % len(TOPICS)]
        (root / f"unique_{i}.py").write_text(
            f"def {a}_{b}_{i}(value):\n    '''{topic.capitalize()}, variant {a} {b} {i}.'''\n"
            f"    return value.{a}({i}) + {b}_table[{i}]\n")
    for i in range(stubs):
        (root / "stubs" / f"stub_{i}.py").write_text(STUB)


def measure(stubs: int, work: Path) -> dict[str, object]:
    from codesearch.engine import Engine
    from codesearch.index.store import _embed_text

    root, index_dir = work / "repo", work / "index"
    build(root, stubs)
    start = time.monotonic()
    engine = Engine(root, index_dir=index_dir)
    engine.update()
    index_s = time.monotonic() - start
    rows = engine.store.db.execute(
        "SELECT container, symbol, text, path FROM chunks WHERE path LIKE 'unique_%'").fetchall()
    found = 0
    start = time.monotonic()
    for container, symbol, text, path in rows:
        hits = engine.search(_embed_text(container, symbol, text), limit=1, mode="dense").hits
        found += bool(hits) and hits[0].path == path
    search_ms = 1000 * (time.monotonic() - start) / max(len(rows), 1)
    labels = len(engine._vector_index())
    engine.close()
    return {
        "stubs": stubs, "unique_found_by_own_vector": f"{found}/{len(rows)}", "graph_labels": labels,
        "vectors_hnsw_bytes": (index_dir / "vectors.hnsw").stat().st_size,
        "index_db_bytes": (index_dir / "index.db").stat().st_size,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "index_s": round(index_s, 1), "dense_search_ms": round(search_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="codesearch-dups-"))
    try:
        print(json.dumps(measure(args.stubs, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
