"""Indexing throughput: where the time goes, CPU worker layouts, core scaling, a 500k-chunk tree, first answer.

Run through ``bench/speed.py`` (or directly); every mode prints the load average before and after,
because the figures depend on what else runs on the machine.

    python bench/speed.py --stages [--device cuda] [--copies 4] [--max-files N]
        walk → chunk → lexical → tokenise → infer → store → HNSW → saved index, in one process from
        an empty index: busy seconds per stage and end-to-end chunks/s (the bottleneck is the stage
        whose busy time is closest to the wall time of its phase)
    python bench/speed.py --layouts [--texts 384] [--rounds 3]
        CPU layouts side by side on the same texts: the code before this change (one session with
        every core as intra-op threads, calls of 64 texts), and the pipeline with one session × N
        threads, N single-thread workers sharing one session (chosen below 8 cores), N workers × 1
        thread on N sessions
    python bench/speed.py --scaling 1,2,4,8,16 [--texts 384] [--rounds 3]
        the layout ``choose_layout`` picks for k cores, in a child pinned to k cores: chunks/s,
        speed-up and efficiency against the smallest k
    python bench/speed.py --large [--copies 20]
        a ≈500k-chunk tree (renamed copies of the stdlib) with a stub encoder: walk, chunk, lexical
        and HNSW build times, peak RSS, query p50/p99
    python bench/speed.py --first-answer [--runs 3] [--compare-with /path/to/other/server]
        ``codesearch search`` on a never-indexed tree, as a new user runs it: seconds to the answer,
        how much of the tree it covered, and when the whole tree was searchable by keyword
    python bench/speed.py --reindex TREE [--runs 3]
        ``codesearch index TREE`` after appending a function to one file, on a complete index
"""

from __future__ import annotations

import argparse
import hashlib
import json
import keyword
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK_DIR, RssSampler, Stopwatch, emit_report, load_average, machine_info, percentile, table

FLAGS = ("--stages", "--layouts", "--scaling", "--large", "--first-answer", "--reindex", "--child")
QUERY = "parse command line arguments"


def wants(argv: Sequence[str]) -> bool:
    return any(a.split("=")[0] in FLAGS for a in argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# trees ---------------------------------------------------------------------------------------------------
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)


def renamed(text: str, copy: int) -> str:
    """Every identifier of 4+ letters but keywords gets a suffix: a copy that parses and embeds differently."""
    return _WORD.sub(lambda m: m[0] if m[0] in _KEEP else f"{m[0]}_c{copy}", text)


def stdlib_tree(work: Path) -> Path:
    from speed import DEFAULT_EXCLUDE_DIRS, copy_tree, default_source, list_tree

    source = default_source()
    root = work / "speed" / "stdlib-full"
    copy_tree(source, root, list_tree(source, DEFAULT_EXCLUDE_DIRS, (".py",)))
    return root


def build_tree(work: Path, copies: int, max_files: int | None) -> Path:
    """The stdlib tree, or ``copies`` renamed copies of it (copy 0 unchanged), cut to ``max_files`` files."""
    base = stdlib_tree(work)
    files = sorted(p for p in base.rglob("*.py"))[:max_files]
    if copies <= 1 and max_files is None:
        return base
    root = work / "speed" / f"stdlib-x{copies}-{max_files or 'all'}"
    marker = root.with_name(root.name + ".done")
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for copy in range(copies):
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            target = root / f"copy{copy}" / path.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text if copy == 0 else renamed(text, copy), encoding="utf-8")
    marker.write_text("")
    return root


class TreeRss(RssSampler):
    """Peak RSS of this process (``peak``) and of it plus its child processes together (``tree_peak``)."""

    tree_peak: int = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                own = self._proc.memory_info().rss
                children = sum(c.memory_info().rss for c in self._proc.children(recursive=True))
            except Exception:
                continue
            self.peak = max(self.peak, own)
            self.tree_peak = max(self.tree_peak, own + children)


class StubEncoder:
    """Deterministic unit vectors from a hash of the text: the engine's costs without a model's."""

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.model_key = f"stub-{dimension}"
        self.model_id = "stub"
        self.provider = "none"
        self.provider_reason = "stub encoder (bench)"

    def _one(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest(), "little")
        vec = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return vec / np.linalg.norm(vec)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    encode_queries = encode_documents


def fresh_engine(root: Path, device: str, encoder: Any = None) -> Any:
    from codesearch.engine import Engine, EngineConfig
    from codesearch.paths import workspace_dir

    shutil.rmtree(workspace_dir(root), ignore_errors=True)
    return Engine(root, EngineConfig(device=device), encoder=encoder, on_message=lambda m: log(f"  engine: {m}"))


def walk_and_chunk(root: Path) -> tuple[float, float, int, int]:
    """(walk s, read + chunk s, files, chunks), measured apart from the sync that repeats the same work."""
    from codesearch.chunk.chunker import chunk_file
    from codesearch.walk.walker import WalkOptions, read_text, walk

    clock = Stopwatch()
    files = walk(root, WalkOptions()).files
    walk_s = clock.elapsed
    clock = Stopwatch()
    chunks = sum(len(chunk_file(f.path, read_text(f.abs_path), f.language or "text").chunks) for f in files)
    return walk_s, clock.elapsed, len(files), chunks


# --stages --------------------------------------------------------------------------------------------------
def stages(args: argparse.Namespace) -> dict[str, Any]:
    from codesearch.index.overlap import overlap_pays

    root = build_tree(args.work_dir, args.copies, args.max_files)
    walk_s, chunk_s, files, chunks = walk_and_chunk(root)
    log(f"tree {root}: {files} files, {chunks} chunks")
    engine = fresh_engine(root, args.device)
    encoder = engine.encoder
    with RssSampler() as rss:
        overlap = overlap_pays(engine._encoder, engine.config.device)
        clock = Stopwatch()
        synced_at: list[float] = []
        synced, report = engine.update(on_synced=lambda _: synced_at.append(clock.elapsed))  # as `codesearch index`
        sync_s = synced_at[0]
        embed_s = clock.elapsed - sync_s
        clock = Stopwatch()
        engine.close()
        save_s = clock.elapsed
    total = sync_s + embed_s + save_s
    st = report.stages
    layout = getattr(encoder, "layout", None)
    rows = [
        ["walk (measured apart)", walk_s, walk_s / total],
        ["read + chunk (measured apart)", chunk_s, chunk_s / total],
        ["lexical store (writing SQLite and its full-text index)", synced.store_s, synced.store_s / total],
        ["read texts from the store", st["read_s"], st["read_s"] / total],
        ["tokenise + pad (one thread)", st["tokenise_s"], st["tokenise_s"] / total],
        [f"infer (summed over {int(st['workers'])} workers)", st["infer_s"], st["infer_s"] / total],
        ["store vectors", st["store_s"], st["store_s"] / total],
        ["HNSW add", st["hnsw_s"], st["hnsw_s"] / total],
        ["caller waiting for inference", st["wait_s"], st["wait_s"] / total],
        ["save (graph + close)", save_s, save_s / total],
    ]
    return {"mode": "stages", "tree": str(root), "files": files, "chunks": chunks, "embedded": report.embedded,
            "sync_s": sync_s, "embed_s": embed_s, "save_s": save_s, "total_s": total,
            "chunks_per_s_end_to_end": chunks / total,
            "layout": layout.describe() if layout else "", "precision": getattr(encoder, "precision", ""),
            "overlap": overlap,
            "peak_rss_mb": rss.peak / 2**20, "rows": rows, "machine": machine_info(encoder)}


def print_stages(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"tree: {r['tree']}: {r['files']} files, {r['chunks']} chunks ({r['embedded']} unique texts embedded)\n"
          f"model: {m.get('model')} on {m.get('provider')} ({m.get('provider_reason')}), {r['precision']}; "
          f"layout: {r['layout']}\n"
          f"end to end (empty index → saved index, as `codesearch index`): {r['total_s']:.1f} s = "
          f"**{r['chunks_per_s_end_to_end']:.0f} chunks/s**; sync {r['sync_s']:.1f} s, then embedding "
          f"{r['embed_s']:.1f} s ({'started during the sync' if r['overlap'] else 'after the sync'}), "
          f"save {r['save_s']:.2f} s; peak RSS {r['peak_rss_mb']:.0f} MB\n")
    print(table(["stage", "busy s", "share of the end-to-end wall"],
                [[name, f"{s:.2f}", f"{share:.0%}"] for name, s, share in r["rows"]]))
    print("\nThe embedding phase overlaps its stages: a stage whose busy seconds (inference: divided by the "
          "workers) come close to the embed wall time is the bottleneck.")


# --layouts -----------------------------------------------------------------------------------------------
def sample_texts(work: Path, n: int, seed: int = 5) -> list[str]:
    from codesearch.chunk.chunker import chunk_file
    from codesearch.index.store import embed_text

    root = stdlib_tree(work)
    files = sorted(root.rglob("*.py"))
    random.Random(seed).shuffle(files)
    texts: list[str] = []
    for path in files:
        texts.extend(embed_text(c) for c in chunk_file(path.name, path.read_text(errors="replace"), "python").chunks)
        if len(texts) >= 4 * n:
            break
    random.Random(seed).shuffle(texts)
    return texts[:n]


def default_model_folder() -> Path:
    from codesearch.embed.model_specs import resolve_model

    return resolve_model(None)


def pipeline_rate(encoder: Any, texts: list[str]) -> float:
    from codesearch.embed.pipeline import EmbeddingPipeline, staged

    clock = Stopwatch()
    with EmbeddingPipeline(staged(encoder, 64), enumerate(texts)) as pipeline:
        n = sum(len(keys) for keys, _ in pipeline)
    return n / clock.elapsed


class CallsOf64:
    """The code before the pipeline: ``encode_documents`` in calls of 64 texts, one after another."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def encode_documents(self, texts: Sequence[str]) -> Any:
        return self.encoder.encode_documents(texts)


Runs = dict[str, list[dict[str, float]]]


def run_children(variants: dict[str, dict[str, Any]], texts: list[str], rounds: int) -> Runs:
    """Each variant in a fresh child process (its own peak RSS), rounds interleaved."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
        texts_file = handle.name
    runs: Runs = {name: [] for name in variants}
    try:
        for r in range(rounds):
            for name, spec in variants.items():
                cmd = [sys.executable, __file__, "--child", json.dumps(spec), "--texts-file", texts_file]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                runs[name].append(json.loads(out.strip().splitlines()[-1]))
                log(f"  round {r + 1}: {name}: {runs[name][-1]}")
    finally:
        os.unlink(texts_file)
    return runs


def child(spec: dict[str, Any], texts_file: str) -> None:
    """Embed the texts once (after a warm-up) as ``spec`` says; print chunks/s and peak RSS as JSON.

    spec: ``cores`` (pin to that many cores, the layout then chosen for them), or ``layout``
    ``[workers, threads, sessions, batch_size, max_batch_tokens]``; ``calls64``: the code before."""
    if spec.get("cores"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:spec["cores"]])
        os.environ["CODESEARCH_THREADS"] = str(spec["cores"])
    from codesearch.embed.encoder import OnnxEncoder
    from codesearch.embed.sessions import Layout

    texts = json.loads(Path(texts_file).read_text())
    layout = Layout(*spec["layout"]) if spec.get("layout") else None
    encoder: Any = OnnxEncoder.from_folder(default_model_folder(), device="cpu", layout=layout)
    if spec.get("calls64"):
        encoder = CallsOf64(encoder)
    pipeline_rate(encoder, texts[:32])
    with RssSampler() as rss:
        rate = pipeline_rate(encoder, texts)
    print(json.dumps({"rate": rate, "rss_mb": rss.peak / 2**20}))


def layouts(args: argparse.Namespace) -> dict[str, Any]:
    from codesearch.embed.sessions import CPU, choose_layout, usable_cores

    cores = usable_cores()
    chosen = choose_layout(cores, CPU)
    variants: dict[str, dict[str, Any]] = {
        f"before: 1 session × {cores} threads, calls of 64 texts, ≤4096 tokens":
            {"layout": [1, cores, 1, 32, 4096], "calls64": True},
        f"pipeline, 1 session × {cores} threads, ≤4096 tokens": {"layout": [1, cores, 1, 32, 4096]},
        f"pipeline, {cores} workers × 1 thread, one shared session, ≤4096 tokens":
            {"layout": [cores, 1, 1, 32, 4096]},
        f"pipeline, {cores} workers × 1 thread, {cores} sessions, ≤4096 tokens":
            {"layout": [cores, 1, cores, 32, 4096]},
        f"pipeline, chosen: {chosen.describe()}": {"layout": [chosen.workers, chosen.threads, chosen.sessions,
                                                            chosen.batch_size, chosen.max_batch_tokens]},
    }
    texts = sample_texts(args.work_dir, args.texts)
    runs = run_children(variants, texts, args.rounds)
    base = statistics.median(r["rate"] for r in next(iter(runs.values())))
    rows = [[name, statistics.median(r["rate"] for r in v), statistics.median(r["rate"] for r in v) / base,
             statistics.median(r["rss_mb"] for r in v), ", ".join(f"{r['rate']:.1f}" for r in v)]
            for name, v in runs.items()]
    return {"mode": "layouts", "cores": cores, "texts": len(texts), "rounds": args.rounds,
            "chosen": chosen.describe(), "rows": rows, "machine": machine_info()}


def print_layouts(r: dict[str, Any]) -> None:
    print(f"{r['texts']} stdlib chunk texts, {r['rounds']} rounds interleaved, {r['cores']} cores, each run a fresh "
          f"child process; choose_layout picks: {r['chosen']}\n")
    print(table(["layout", "median chunks/s", "× before", "median peak RSS MB", "chunks/s per round"],
                [[n, f"{m:.1f}", f"{x:.2f}", f"{rss:.0f}", runs] for n, m, x, rss, runs in r["rows"]]))


# --scaling ------------------------------------------------------------------------------------------------
def scaling(args: argparse.Namespace) -> dict[str, Any]:
    from codesearch.embed.sessions import CPU, choose_layout

    available = len(os.sched_getaffinity(0))
    asked = [int(x) for x in args.scaling.split(",")]
    counts = [k for k in asked if 0 < k <= available]
    texts = sample_texts(args.work_dir, args.texts)
    runs = run_children({str(k): {"cores": k} for k in counts}, texts, args.rounds)
    base_k = counts[0]
    base = statistics.median(r["rate"] for r in runs[str(base_k)])
    rows = []
    for k in counts:
        med = statistics.median(r["rate"] for r in runs[str(k)])
        rows.append([k, choose_layout(k, CPU).describe(), med, med / base, (med / base) / (k / base_k),
                     statistics.median(r["rss_mb"] for r in runs[str(k)]),
                     ", ".join(f"{r['rate']:.1f}" for r in runs[str(k)])])
    return {"mode": "scaling", "texts": len(texts), "rounds": args.rounds, "rows": rows,
            "skipped": [k for k in asked if k > available], "machine": machine_info()}


def print_scaling(r: dict[str, Any]) -> None:
    print(f"{r['texts']} stdlib chunk texts, {r['rounds']} rounds interleaved; each row a child pinned to k cores "
          f"with the layout choose_layout(k) picks\n")
    print(table(["cores", "layout", "median chunks/s", "speed-up", "efficiency (1 = linear)", "peak RSS MB",
                 "per round"],
                [[k, lay, f"{m:.1f}", f"{s:.2f}", f"{e:.2f}", f"{rss:.0f}", runs]
                 for k, lay, m, s, e, rss, runs in r["rows"]]))
    if r["skipped"]:
        print(f"\nnot measured (this machine has fewer cores): {r['skipped']}")


# --large ---------------------------------------------------------------------------------------------------
def large(args: argparse.Namespace) -> dict[str, Any]:
    from speed import NL_QUERIES, identifier_queries

    root = build_tree(args.work_dir, args.copies, args.max_files)
    with TreeRss() as rss:
        walk_s, chunk_s, files, chunks = walk_and_chunk(root)
        log(f"tree {root}: {files} files, {chunks} chunks")
        engine = fresh_engine(root, "cpu", encoder=StubEncoder())
        clock = Stopwatch()
        synced = engine.sync()
        sync_s = clock.elapsed
        log(f"  sync {sync_s:.0f} s")
        clock = Stopwatch()
        report = engine.embed()
        embed_s = clock.elapsed
        log(f"  embed (stub) {embed_s:.0f} s")
        clock = Stopwatch()
        engine.save(force=True)
        save_s = clock.elapsed
        queries = NL_QUERIES[:50] + identifier_queries(engine, 50, 7)
        for q in queries[:5]:
            engine.search(q)
        fused = [_timed(engine, q, "fused") for q in queries]
        lexical = [_timed(engine, q, "lexical") for q in queries]
        status = engine.status()
        engine.close()
    st = report.stages
    return {"mode": "large", "tree": str(root), "files": files, "chunks": chunks, "walk_s": walk_s,
            "chunk_s": chunk_s, "sync_s": sync_s, "lexical_s": synced.store_s,
            "embedded": report.embedded, "embed_s": embed_s, "stub_encode_s": st["infer_s"],
            "store_s": st["store_s"], "hnsw_s": st["hnsw_s"], "save_s": save_s,
            "index_mb": status.index_bytes / 1e6, "peak_rss_mb": rss.peak / 2**20,
            "peak_rss_tree_mb": rss.tree_peak / 2**20,
            "fused_ms": _lat(fused), "lexical_ms": _lat(lexical), "machine": machine_info()}


def _timed(engine: Any, query: str, mode: str) -> float:
    clock = Stopwatch()
    engine.search(query, limit=10, mode=mode)
    return 1000 * clock.elapsed


def _lat(times: list[float]) -> dict[str, float]:
    return {"n": len(times), "p50": percentile(times, 50), "p99": percentile(times, 99)}


def print_large(r: dict[str, Any]) -> None:
    print(f"tree: {r['tree']}: {r['files']} files, **{r['chunks']:,} chunks**; stub encoder (hash → random unit "
          f"vector, 384-d), so every figure but the model's is real\n")
    rows = [
        ["walk (measured apart)", f"{r['walk_s']:.1f} s"],
        ["read + chunk, one process (measured apart)", f"{r['chunk_s']:.1f} s"],
        ["sync: walk + chunk (worker processes) + lexical index, empty index (wall)", f"{r['sync_s']:.1f} s"],
        ["  of which writing the store and its full-text index (busy, one thread)", f"{r['lexical_s']:.1f} s"],
        [f"embed {r['embedded']:,} unique texts with the stub (wall)", f"{r['embed_s']:.1f} s"],
        ["  of which HNSW build (adds, busy)", f"{r['hnsw_s']:.1f} s"],
        ["  of which storing vectors (busy)", f"{r['store_s']:.1f} s"],
        ["  of which the stub encoder (busy)", f"{r['stub_encode_s']:.1f} s"],
        ["save the graph", f"{r['save_s']:.1f} s"],
        ["index on disk", f"{r['index_mb']:.0f} MB"],
        ["peak RSS of the indexing process (whole run)", f"**{r['peak_rss_mb']:.0f} MB**"],
        ["peak RSS with the sync's worker processes, summed", f"{r['peak_rss_tree_mb']:.0f} MB"],
        [f"query fused, {r['fused_ms']['n']} queries", f"p50 {r['fused_ms']['p50']:.1f} ms, "
                                                        f"p99 {r['fused_ms']['p99']:.1f} ms"],
        [f"query lexical, {r['lexical_ms']['n']} queries", f"p50 {r['lexical_ms']['p50']:.1f} ms, "
                                                            f"p99 {r['lexical_ms']['p99']:.1f} ms"],
    ]
    print(table(["measure", "result"], rows))


# --first-answer and --reindex: the CLI as a user runs it ------------------------------------------------------------
def cli_env(server: Path | None, cache: Path) -> dict[str, str]:
    env = dict(os.environ, CODESEARCH_CACHE_DIR=str(cache), TOKENIZERS_PARALLELISM="false")
    if server is not None:
        env["PYTHONPATH"] = str(server)
    return env


def run_cli(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    clock = Stopwatch()
    proc = subprocess.run([sys.executable, "-m", "codesearch.cli", *args], capture_output=True, text=True, env=env,
                          check=False)
    return clock.elapsed, proc


def shared_models_cache(work: Path) -> Path:
    """A cache folder whose models/ is this user's (the exported default model), with no workspace indexes."""
    from codesearch.embed.model_specs import resolve_model

    cache = work / "first-answer-cache"
    cache.mkdir(parents=True, exist_ok=True)
    models = resolve_model(None).parent
    link = cache / "models"
    if not link.exists():
        link.symlink_to(models, target_is_directory=True)
    return cache


def first_answer(args: argparse.Namespace) -> dict[str, Any]:
    root = stdlib_tree(args.work_dir)
    cache = shared_models_cache(args.work_dir)
    variants: dict[str, Path | None] = {"this code": None}
    if args.compare_with:
        variants[f"{args.compare_with} (search --no-wait)"] = Path(args.compare_with)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for r in range(args.runs):
        for name, server in variants.items():
            env = cli_env(server, cache)
            shutil.rmtree(cache / "workspaces", ignore_errors=True)
            seconds, proc = run_cli(env, "search", QUERY, "--path", str(root), "--json", "--no-wait")
            hits = len(json.loads(proc.stdout)) if proc.returncode == 0 and proc.stdout.startswith("[") else 0
            partial = re.search(r"read (\d+) of (\d+) files", proc.stderr)
            run = {"seconds": seconds, "rc": proc.returncode, "hits": hits,
                   "files_read": f"{partial[1]}/{partial[2]}" if partial else "all"}
            if server is None:
                run["keyword_complete_s"] = _wait_for_embed_phase(cache, root, seconds)
                run_cli(env, "stop", str(root))
            runs[name].append(run)
            log(f"  round {r + 1}: {name}: {run}")
    shutil.rmtree(cache / "workspaces", ignore_errors=True)
    return {"mode": "first-answer", "tree": str(root), "query": QUERY, "runs": runs, "machine": machine_info()}


def _wait_for_embed_phase(cache: Path, root: Path, already: float, timeout: float = 600.0) -> float | None:
    """Seconds from the search's start until the background indexer finished reading every file."""
    os.environ["CODESEARCH_CACHE_DIR"] = str(cache)
    from codesearch.paths import workspace_dir
    from codesearch.service.background import read_state

    folder = workspace_dir(root)
    clock = Stopwatch()
    while clock.elapsed < timeout:
        state = read_state(folder)
        if state is not None and state.phase in ("embed", "done", "stopped", "failed"):
            return already + clock.elapsed
        time.sleep(0.05)
    return None


def print_first_answer(r: dict[str, Any]) -> None:
    print(f"tree: {r['tree']} (never indexed before each run); query {r['query']!r}\n")
    rows = []
    for name, runs in r["runs"].items():
        secs = [x["seconds"] for x in runs]
        complete = [x.get("keyword_complete_s") for x in runs if x.get("keyword_complete_s")]
        rows.append([name, f"{statistics.median(secs):.2f}", ", ".join(f"{s:.2f}" for s in secs),
                     ", ".join(x["files_read"] for x in runs), ", ".join(str(x["hits"]) for x in runs),
                     f"{statistics.median(complete):.1f}" if complete else "–"])
    print(table(["code", "first answer, median s", "runs s", "files read before answering", "hits",
                 "whole tree searchable by keyword, median s"], rows))


def reindex(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.reindex).resolve()
    env = cli_env(None, Path(os.environ.get("CODESEARCH_CACHE_DIR") or Path.home() / ".cache" / "codesearch"))
    seconds, proc = run_cli(env, "status", str(root), "--json")
    before = json.loads(proc.stdout)
    if before["pending"] or before["stale_files"]:
        raise SystemExit(f"{root} is not completely indexed: run `codesearch index {root}` first")
    files = sorted(root.rglob("*.py"))
    target = files[len(files) // 2]
    original = target.read_bytes()
    index_runs, search_runs = [], []
    try:
        for n in range(args.runs):
            for kind, command in (("index", ["index", str(root), "--quiet"]),
                                  ("search", ["search", QUERY, "--path", str(root), "--json"])):
                with open(target, "a", encoding="utf-8") as handle:
                    handle.write(f"\n\ndef _bench_reindex_{kind}_{n}(value):\n    \"\"\"Double it.\"\"\"\n"
                                 "    return value * 2\n")
                seconds, proc = run_cli(env, *command)
                assert proc.returncode == 0, proc.stderr
                (index_runs if kind == "index" else search_runs).append(seconds)
                log(f"  {kind} after an edit: {seconds:.2f} s")
        profile = profile_reindex(env, root, target)
    finally:
        target.write_bytes(original)
        run_cli(env, "index", str(root), "--quiet")
    return {"mode": "reindex", "tree": str(root), "chunks": before["chunks"], "file": str(target.relative_to(root)),
            "index_s": index_runs, "search_s": search_runs, "profile": profile, "machine": machine_info()}


PROFILED = {  # what a re-index spends its time on: (label, function name, file name ending)
    "model load": ("load_encoder", "loading.py"), "onnxruntime session": ("create_session", "encoder.py"),
    "load the saved graph (with its checksum)": ("load", "vector_index.py"),
    "graph checksums (load and save)": ("_file_digest", "vector_index.py"),
    "bring the graph up to date": ("follow_all", "graph_sync.py"), "sync": ("sync", "indexer.py"),
    "count pending texts": ("count_pending", "store.py"), "list pending texts": ("pending_hashes", "store.py"),
    "embed the pending texts": ("embed_pending", "indexer.py"), "save the graph": ("save", "vector_index.py"),
    "status for the summary": ("status", "engine.py"),
}


def profile_reindex(env: dict[str, str], root: Path, target: Path) -> dict[str, float]:
    """One more edit, and `codesearch index` under cProfile: cumulative seconds of the main steps."""
    import pstats

    with open(target, "a", encoding="utf-8") as handle:
        handle.write("\n\ndef _bench_reindex_profiled(value):\n    return value\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "index.prof"
        clock = Stopwatch()
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "codesearch.cli", "index", str(root),
                        "--quiet"], env=env, capture_output=True, text=True, check=True)
        total = clock.elapsed
        stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    found = {"whole command, under the profiler": total}
    for label, (name, file) in PROFILED.items():
        found[label] = sum(row[3] for (path, _, func), row in stats.items() if func == name and path.endswith(file))
    return found


def print_reindex(r: dict[str, Any]) -> None:
    print(f"tree: {r['tree']} ({r['chunks']} chunks, fully embedded); edit: a function appended to {r['file']}\n")
    print(table(["command after one edit", "median s", "runs s"], [
        ["`codesearch index TREE --quiet`", f"{statistics.median(r['index_s']):.2f}",
         ", ".join(f"{x:.2f}" for x in r["index_s"])],
        ["`codesearch search QUERY --path TREE --json` (embeds the edit itself)",
         f"{statistics.median(r['search_s']):.2f}", ", ".join(f"{x:.2f}" for x in r["search_s"])]]))
    print("\nOne more edit, `python -m cProfile -m codesearch.cli index TREE --quiet` (cumulative seconds; steps "
          "overlap: the model load includes the session, the graph load its checksum):\n")
    print(table(["step", "s"], [[k, f"{v:.2f}"] for k, v in r["profile"].items()]))


# main ---------------------------------------------------------------------------------------------------------
MODES = {"stages": (stages, print_stages), "layouts": (layouts, print_layouts), "scaling": (scaling, print_scaling),
         "large": (large, print_large), "first_answer": (first_answer, print_first_answer),
         "reindex": (reindex, print_reindex)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stages", action="store_true")
    mode.add_argument("--layouts", action="store_true")
    mode.add_argument("--scaling", default=None, help="comma-separated core counts")
    mode.add_argument("--large", action="store_true")
    mode.add_argument("--first-answer", action="store_true")
    mode.add_argument("--reindex", default=None, metavar="TREE")
    mode.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--copies", type=int, default=None, help="renamed copies of the stdlib tree")
    parser.add_argument("--max-files", type=int, default=None, help="only the first N files of each copy")
    parser.add_argument("--texts", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare-with", default=None, help="another checkout's server/ folder, for --first-answer")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(json.loads(args.child), args.texts_file)
        return 0
    if args.copies is None:
        args.copies = 20 if args.large else 1
    name = next(n for n in MODES if getattr(args, n) not in (None, False))
    measure, show = MODES[name]
    load_before = load_average()
    clock = Stopwatch()
    report = measure(args)
    report.update(command="python bench/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  load_before=load_before, load_after=load_average(), elapsed_s=round(clock.elapsed, 1))
    def printer(r: dict[str, Any]) -> None:
        m = r["machine"]
        print(f"# codesearch throughput: {name}\n\ncommand: {r['command']}\n"
              f"machine: {m['cpu']} ×{m['affinity']} cores, {m['mem_gb']} GiB; onnxruntime {m.get('onnxruntime')}\n"
              f"elapsed {r['elapsed_s']} s; load average before/after: {r['load_before']} / {r['load_after']}\n")
        show(r)

    emit_report(report, args.save, args.json, printer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
