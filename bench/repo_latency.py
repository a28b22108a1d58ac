"""Query latency on one large index: every repository of the benchmark in one workspace.

    python bench/repo_latency.py build     # copy the trees into one workspace, index it, reuse the vectors
    python bench/repo_latency.py run       # time every benchmark query (fused, lexical), p50/p99

``build`` hard-links each repository's indexed copy under ``--work/tree/<name>/`` (about 27k chunks
for the 16 repositories), syncs the combined index and copies the vectors of the per-repository
indexes into it by chunk text (nothing is embedded again; texts no repository index has embedded are
left pending and reported). ``run`` searches each query once after a warm-up, in this process, and
reports wall-clock and CPU (this process, all threads) milliseconds per query, with the load average
before and after: on a shared machine wall-clock time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codesearch.engine import Engine, EngineConfig
from common import load_average, machine_info, percentile, table
from repo_corpus import DEFAULT_CACHE
from repos import load_benchmark

WORK = Path("/tmp/codesearch-bench/repos-combined")


def cmd_build(args: argparse.Namespace) -> int:
    repos = load_benchmark(Path(args.cache), "all")
    tree = args.work / "tree"
    for repo in repos:
        if not (tree / repo.name).exists():
            shutil.copytree(repo.root, tree / repo.name, copy_function=os.link)
    engine = Engine(tree, EngineConfig(), index_dir=args.work / "index")
    try:
        with engine.writing(wait=True):
            engine.sync()
            copied = sum(_copy_vectors(engine, repo.index_dir) for repo in repos)
            status = engine.status()
            engine._vector_index()
            engine.save()
    finally:
        engine.close()
    print(f"{status.files} files, {status.chunks} chunks, {status.embedded} embedded ({copied} vectors copied), "
          f"{status.pending} pending")
    return 0


def _copy_vectors(engine: Engine, index_dir: Path) -> int:
    db = engine.store.db
    key = engine.encoder.model_key
    db.execute("ATTACH DATABASE ? AS src", (f"file:{index_dir / 'index.db'}?mode=ro",))
    try:
        with engine.store.transaction():
            cur = db.execute(
                "INSERT OR IGNORE INTO vectors (embed_hash, model_key, vector) "
                "SELECT v.embed_hash, v.model_key, v.vector FROM src.vectors v "
                "WHERE v.model_key = ? AND v.embed_hash IN (SELECT embed_hash FROM main.chunks)",
                (key,))
            return cur.rowcount
    finally:
        db.execute("DETACH DATABASE src")


def time_mode(engine: Engine, queries: Sequence[str], mode: str, limit: int) -> dict[str, float]:
    engine.search(queries[0], limit=limit, mode=mode)
    wall, cpu = [], []
    for text in queries:
        w, c = time.perf_counter(), time.process_time()
        engine.search(text, limit=limit, mode=mode)
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return {"queries": len(queries), "wall_p50": percentile(wall, 50), "wall_p99": percentile(wall, 99),
            "cpu_p50": percentile(cpu, 50), "cpu_p99": percentile(cpu, 99)}


def cmd_run(args: argparse.Namespace) -> int:
    queries = [q.text for r in load_benchmark(Path(args.cache), "all") for q in r.queries]
    engine = Engine(args.work / "tree", EngineConfig(), index_dir=args.work / "index")
    before = load_average()
    try:
        status = engine.status()
        engine._vector_index()
        rows, results = [], {}
        for mode in args.modes.split(","):
            results[mode] = time_mode(engine, queries, mode, args.limit)
            r = results[mode]
            rows.append([mode, r["queries"], r["wall_p50"], r["wall_p99"], r["cpu_p50"], r["cpu_p99"]])
    finally:
        engine.close()
    after = load_average()
    print(f"{status.chunks} chunks ({status.embedded} embedded) in {status.files} files; limit {args.limit}; "
          f"load average before {before}, after {after}\n")
    print(table(["mode", "queries", "wall p50 ms", "wall p99 ms", "cpu p50 ms", "cpu p99 ms"], rows, fmt="{:.1f}"))
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "machine": machine_info(),
                                         "chunks": status.chunks, "embedded": status.embedded,
                                         "load_before": before, "load_after": after, "results": results},
                                        indent=1), encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--work", type=Path, default=WORK)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build")
    run = sub.add_parser("run")
    run.add_argument("--modes", default="fused,lexical")
    run.add_argument("--limit", type=int, default=10)
    run.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    commands: dict[str, Any] = {"build": cmd_build, "run": cmd_run}
    return int(commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
