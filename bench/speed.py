"""Indexing and query speed of the real engine on a real repository that is available offline.

By default the tree is the Python standard library of this interpreter (``*.py`` only, without
``test/``, ``idlelib/idle_test`` and ``site-packages``), copied once into a stable folder.

What is measured (every figure comes from this run; extrapolations say so):

1. sync on the full tree (walk → chunk → lexical index) from an empty index: seconds, files/s, chunks/s;
2. embedding throughput: a deterministic subset of whole files holding about ``--embed-limit`` chunks
   is copied into a second workspace and embedded completely (chunks/s, tokens/s); the full tree's
   embedding time is extrapolated from that rate, and labelled as such;
3. peak RSS of this process in each phase (psutil, sampled every 50 ms), and of each cold-start child;
4. a no-op update, and an incremental update after editing one file (``engine.update()``), on the
   embedded subset; and the sync after editing one file of the full tree;
5. query latency (p50/p99, in process, warm) over 100 queries (50 natural-language, 50 identifiers
   taken from the index), fused, on the embedded subset; lexical-only on the full tree too;
6. cold start: ``codesearch search QUERY --path SUBSET --no-wait --json`` in a fresh subprocess,
   process start → answer printed and exited, ``--cold-runs`` times (median).

    python bench/speed.py                      # stdlib, 2000-chunk embedded subset
    python bench/speed.py --embed-limit 500    # quicker
    python bench/speed.py --json
    python bench/speed.py --models default,minilm --rounds 3   # embedding speed only, side by side

With ``--models`` only the embedding of the subset is measured, once per model per round, the models
interleaved within each round (so a change in machine load hits all of them alike); the table gives
each round's chunks/s, the median, and the ratio of each model's median to the first model's.

Throughput modes (bench/throughput.py; each prints its own report): ``--stages [--device cuda]`` (per-stage
breakdown, walk to a saved index), ``--layouts`` (CPU worker layouts side by side), ``--scaling 1,2,4,8,16``
(core scaling), ``--large`` (a 500k-chunk tree with a stub encoder), ``--first-answer`` (a first search on a
never-indexed tree), ``--reindex TREE`` (re-index after one edit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DEFAULT_WORK_DIR,
    RssSampler,
    Stopwatch,
    emit_report,
    ensure_chunker,
    load_average,
    machine_info,
    median,
    percentile,
    table,
)

DEFAULT_EXCLUDE_DIRS = ("test", "tests", "idle_test", "site-packages", "__pycache__")

NL_QUERIES = [
    "parse a date string into a datetime", "compress data with gzip", "read a csv file row by row",
    "send an email over smtp", "compute the md5 hash of a file", "split a path into directory and file name",
    "copy a directory tree recursively", "parse command line arguments", "serialize an object to json",
    "decode base64 data", "open a url and read the response", "create a temporary directory",
    "format a number with thousands separators", "match a string against a shell wildcard pattern",
    "run a subprocess and capture its output", "wait for a thread to finish with a timeout",
    "compute the greatest common divisor", "generate a random integer in a range",
    "escape html special characters", "parse an xml document into a tree", "read a zip archive member",
    "convert a string to title case", "find the longest common subsequence of two sequences",
    "schedule a function call after a delay", "log a message with a timestamp", "parse an ini configuration file",
    "quote a string for use in a shell command", "resolve a host name to an ip address",
    "compute the difference between two texts", "pretty print a nested data structure",
    "check whether a file is a symbolic link", "walk a directory tree", "lock a file for exclusive access",
    "encode a url query string", "decode a quoted-printable email body", "read a password without echo",
    "measure the execution time of a small code snippet", "deep copy an object",
    "sort a list with a key function in place", "lazily cache the result of a function call",
    "handle a keyboard interrupt signal", "parse http headers", "build a priority queue with a heap",
    "convert between utc and local time", "validate an ip network address", "read the mime type of a file name",
    "tokenize python source code", "disassemble python bytecode", "create a context manager from a generator",
    "unpack binary data into a tuple",
]
IDENTIFIER_STYLE_SEED = 7


# tree ------------------------------------------------------------------------------------------------
def default_source() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def list_tree(source: Path, exclude_dirs: tuple[str, ...], suffixes: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude_dirs)
        for name in sorted(filenames):
            if name.endswith(suffixes):
                files.append(Path(dirpath, name).relative_to(source))
    return files


def copy_tree(source: Path, dest: Path, rel_files: list[Path]) -> None:
    """Copy once; a re-run with the same file list reuses the copy (stable mtimes)."""
    listing = "\n".join(p.as_posix() for p in rel_files)
    marker = dest.parent / f"{dest.name}.files"
    if marker.exists() and marker.read_text() == listing:
        return
    if dest.exists():
        shutil.rmtree(dest)
    for rel in rel_files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
    marker.write_text(listing)


def tree_stats(root: Path, rel_files: list[Path]) -> dict[str, Any]:
    size = lines = 0
    for rel in rel_files:
        data = (root / rel).read_bytes()
        size += len(data)
        lines += data.count(b"\n")
    return {"files": len(rel_files), "bytes": size, "lines": lines}


# engine helpers ----------------------------------------------------------------------------------------
def fresh_engine(root: Path, device: str, model: str | None = None) -> Any:
    from codesearch.engine import Engine, EngineConfig
    from codesearch.paths import workspace_dir

    shutil.rmtree(workspace_dir(root), ignore_errors=True)
    return Engine(root, EngineConfig(device=device, model=model), on_message=lambda m: log(f"  engine: {m}"))


def chunk_counts(engine: Any) -> dict[str, int]:
    """Chunks per file, read from the workspace's store (read-only)."""
    return {p: n for p, n in engine.store.db.execute("SELECT path, count(*) FROM chunks GROUP BY path")}


def chunk_texts(engine: Any) -> list[str]:
    from codesearch.index.store import _embed_text

    rows = engine.store.db.execute("SELECT container, symbol, text FROM chunks GROUP BY embed_hash")
    return [_embed_text(c, s, t) for c, s, t in rows]


def count_tokens(encoder: Any, texts: list[str]) -> int:
    counter = getattr(encoder, "count_tokens", None)
    if counter is None:
        return 0
    total = 0
    for start in range(0, len(texts), 512):
        total += sum(counter(texts[start:start + 512]))
    return total


def pick_subset(counts: dict[str, int], limit: int, seed: int) -> list[str]:
    """Whole files, in a seeded random order, until about ``limit`` chunks."""
    paths = sorted(counts)
    random.Random(seed).shuffle(paths)
    chosen: list[str] = []
    total = 0
    for path in paths:
        if total >= limit:
            break
        if total + counts[path] > limit * 1.1 and total > 0:
            continue  # skip files that would overshoot by much
        chosen.append(path)
        total += counts[path]
    return sorted(chosen)


def identifier_queries(engine: Any, n: int, seed: int) -> list[str]:
    rows = engine.store.db.execute(
        "SELECT DISTINCT container, symbol FROM chunks WHERE symbol != '' AND kind IN ('function','method','class') "
        "ORDER BY container, symbol").fetchall()
    rng = random.Random(seed)
    # about a third qualified (Class.method), the rest bare names, as people type them
    names = sorted({f"{c}.{s}" if c and rng.random() < 0.3 else s for c, s in rows
                    if len(s) > 3 and not s.startswith("__")})
    return rng.sample(names, min(n, len(names)))


def time_queries(engine: Any, queries: list[str], mode: str = "fused", limit: int = 10) -> list[float]:
    times = []
    for q in queries:
        clock = Stopwatch()
        engine.search(q, limit=limit, mode=mode)
        times.append(1000 * clock.elapsed)
    return times


def lat(times: list[float]) -> dict[str, float]:
    return {"n": len(times), "p50_ms": round(percentile(times, 50), 2), "p90_ms": round(percentile(times, 90), 2),
            "p99_ms": round(percentile(times, 99), 2), "max_ms": round(max(times), 2) if times else float("nan")}


def codesearch_command() -> list[str]:
    exe = Path(sys.executable).parent / "codesearch"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("codesearch")
    return [found] if found else [sys.executable, "-m", "codesearch.cli"]


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int | None, str]:
    """(wall seconds from spawn to exit, exit code, child's peak RSS in bytes or None, stdout).

    The peak RSS comes from GNU time (``/usr/bin/time -f %M``) when it is installed: the rusage of a
    child forked straight from this (large) process would report this process's own high-water mark.
    """
    gnu_time = Path("/usr/bin/time")
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        full = [str(gnu_time), "-f", "%M", "-o", str(rss_file), *cmd] if gnu_time.exists() else cmd
        with open(Path(tmp) / "out", "wb") as out, open(Path(tmp) / "err", "wb") as err:
            clock = Stopwatch()
            proc = subprocess.run(full, stdout=out, stderr=err, env=env, check=False)
            wall = clock.elapsed
        text = (Path(tmp) / "out").read_text("utf-8", "replace")
        if proc.returncode != 0:
            log(f"  child failed ({proc.returncode}): {(Path(tmp) / 'err').read_text('utf-8', 'replace')[-800:]}")
        rss = None
        if rss_file.exists():
            try:
                rss = int(rss_file.read_text().strip().splitlines()[-1]) * 1024
            except (ValueError, IndexError):
                rss = None
    return wall, proc.returncode, rss, text


def edit_file(path: Path, n: int) -> None:
    """A real edit: append a new function (changes size and content)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"\n\ndef _bench_incremental_edit_{n}(value):\n"
                     f"    \"\"\"Return value doubled (bench edit {n}).\"\"\"\n"
                     f"    return value * 2 + {n}\n")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import throughput

    if throughput.wants(sys.argv[1:] if argv is None else argv):
        return throughput.main(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=None, help="tree to copy (default: this Python's stdlib)")
    parser.add_argument("--name", default=None, help="short name for the copied tree (default: from --source)")
    parser.add_argument("--suffixes", default=".py", help="comma-separated file suffixes to copy")
    parser.add_argument("--exclude-dirs", default=",".join(DEFAULT_EXCLUDE_DIRS))
    parser.add_argument("--max-files", type=int, default=None, help="copy only the first N files (sorted)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--embed-limit", type=int, default=2000, help="chunks in the fully embedded subset")
    parser.add_argument("--queries", type=int, default=100, help="queries for latency (half NL, half identifiers)")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON report here")
    parser.add_argument("--models", default=None,
                        help="comma-separated model specs (as --model takes them): compare their embedding "
                             "speed side by side on the subset, and measure nothing else")
    parser.add_argument("--rounds", type=int, default=3, help="with --models: rounds of all models")
    args = parser.parse_args(argv)

    chunker_note = ensure_chunker()
    source = (args.source or default_source()).resolve()
    name = args.name or ("stdlib" if args.source is None else source.name)
    exclude = tuple(d for d in args.exclude_dirs.split(",") if d)
    suffixes = tuple(s for s in args.suffixes.split(",") if s)
    base = args.work_dir / "speed"
    full_root = base / f"{name}-full"
    sub_root = base / f"{name}-subset-{args.embed_limit}-s{args.seed}"
    report: dict[str, Any] = {"command": "python bench/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
                              "chunker_note": chunker_note, "source": str(source),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": load_average()}
    total = Stopwatch()

    # 1. the full tree: copy, sync from an empty index ------------------------------------------------
    rel_files = list_tree(source, exclude, suffixes)
    if args.max_files:
        rel_files = rel_files[: args.max_files]
    copy_tree(source, full_root, rel_files)
    report["tree"] = dict(tree_stats(full_root, rel_files), root=str(full_root), excluded_dirs=list(exclude),
                          suffixes=list(suffixes))
    log(f"tree: {len(rel_files)} files from {source} → {full_root}")
    engine = fresh_engine(full_root, args.device)
    with RssSampler() as rss:
        clock = Stopwatch()
        sync = engine.sync()
        sync_s = clock.elapsed
    status = engine.status()
    counts = chunk_counts(engine)
    report["sync_full"] = {"seconds": round(sync_s, 2), "files": status.files, "chunks": status.chunks,
                           "files_per_s": round(status.files / sync_s, 1),
                           "chunks_per_s": round(status.chunks / sync_s, 1),
                           "skipped": len(sync.skipped), "parse_failures": len(status.parse_failures),
                           "peak_rss_mb": round(rss.peak / 2**20, 1)}
    log(f"  sync: {status.files} files, {status.chunks} chunks in {sync_s:.1f}s")

    # lexical latency on the full tree, and a one-file edit on the full tree (sync only)
    nl = NL_QUERIES[: args.queries // 2]
    ident_full = identifier_queries(engine, args.queries - len(nl), IDENTIFIER_STYLE_SEED)
    time_queries(engine, nl[:5], mode="lexical")  # warm-up
    lex_full = time_queries(engine, nl + ident_full, mode="lexical")
    report["latency_lexical_full"] = lat(lex_full)
    edited_full = full_root / sorted(counts, key=lambda p: (-counts[p], p))[len(counts) // 2]
    original_full = edited_full.read_bytes()
    try:
        edit_file(edited_full, 1)
        clock = Stopwatch()
        inc = engine.sync()
        report["incremental_sync_full"] = {"seconds": round(clock.elapsed, 3),
                                           "file": str(edited_full.relative_to(full_root)),
                                           "updated": inc.updated, "unchanged": inc.unchanged}
    finally:
        edited_full.write_bytes(original_full)
        engine.sync()
    all_tokens_texts = chunk_texts(engine)
    engine.close()

    # 2. the embedded subset ----------------------------------------------------------------------------
    subset = pick_subset(counts, args.embed_limit, args.seed)
    copy_tree(full_root, sub_root, [Path(p) for p in subset])
    log(f"subset: {len(subset)} files, ~{sum(counts[p] for p in subset)} chunks → {sub_root}")
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        return compare_models(args, report, sub_root, models, total)
    engine = fresh_engine(sub_root, args.device)
    clock = Stopwatch()
    encoder = engine.encoder
    model_load_s = clock.elapsed
    with RssSampler() as rss:
        clock = Stopwatch()
        engine.sync()
        sub_sync_s = clock.elapsed
        last = [0.0]

        def progress(p: Any) -> None:
            now = time.monotonic()
            if p.phase == "embed" and now - last[0] > 30:
                last[0] = now
                log(f"  embedding {p.embedded}/{p.to_embed} ({p.rate:.1f} chunks/s)")

        emb = engine.embed(progress=progress)
    sub_status = engine.status()
    sub_tokens = count_tokens(encoder, chunk_texts(engine))
    full_tokens = count_tokens(encoder, all_tokens_texts)
    rate = emb.embedded / emb.elapsed_s if emb.elapsed_s else float("nan")
    tok_rate = sub_tokens / emb.elapsed_s if emb.elapsed_s else float("nan")
    full_unique = len(all_tokens_texts)
    eta_chunks = full_unique / rate
    eta_tokens = full_tokens / tok_rate if sub_tokens else float("nan")
    report["embed_subset"] = {
        "files": sub_status.files, "chunks": sub_status.chunks, "embedded": emb.embedded,
        "seconds": round(emb.elapsed_s, 1), "chunks_per_s": round(rate, 2), "tokens": sub_tokens,
        "tokens_per_s": round(tok_rate, 1), "mean_tokens_per_chunk": round(sub_tokens / max(emb.embedded, 1), 1),
        "sync_s": round(sub_sync_s, 2), "model_load_s": round(model_load_s, 2),
        "peak_rss_mb": round(rss.peak / 2**20, 1), "index_mb": round(sub_status.index_bytes / 1e6, 1),
    }
    report["full_index_extrapolated"] = {
        "label": "EXTRAPOLATED from the subset's embedding rate, not measured",
        "unique_chunk_texts": full_unique, "tokens": full_tokens,
        "mean_tokens_per_chunk": round(full_tokens / max(full_unique, 1), 1),
        "embed_eta_s_by_chunks": round(eta_chunks), "embed_eta_s_by_tokens": round(eta_tokens),
        "full_index_eta_s_by_tokens": round(report["sync_full"]["seconds"] + eta_tokens),
    }
    log(f"  embedded {emb.embedded} chunks in {emb.elapsed_s:.1f}s ({rate:.1f}/s)")

    # 4. no-op and incremental updates on the subset ----------------------------------------------------
    clock = Stopwatch()
    _, noop_emb = engine.update()
    report["noop_update_subset"] = {"seconds": round(clock.elapsed, 3), "embedded": noop_emb.embedded}
    sub_counts = chunk_counts(engine)
    target = sub_root / sorted(sub_counts, key=lambda p: (-sub_counts[p], p))[len(sub_counts) // 2]
    original = target.read_bytes()
    inc_runs = []
    try:
        for n in range(1, 4):
            edit_file(target, n)
            clock = Stopwatch()
            s, e = engine.update()
            inc_runs.append({"seconds": round(clock.elapsed, 3), "updated": s.updated, "embedded": e.embedded})
    finally:
        target.write_bytes(original)
        engine.update()
    report["incremental_update_subset"] = {
        "file": str(target.relative_to(sub_root)), "file_chunks": sub_counts[target.relative_to(sub_root).as_posix()],
        "runs": inc_runs, "median_s": round(median([r["seconds"] for r in inc_runs]), 3)}

    # 5. query latency (warm, in process) -------------------------------------------------------------------
    ident = identifier_queries(engine, args.queries - len(nl), IDENTIFIER_STYLE_SEED)
    first = Stopwatch()
    engine.search(nl[0], limit=10)
    first_ms = 1000 * first.elapsed
    time_queries(engine, nl[:5])  # warm-up
    with RssSampler() as rss:
        t_nl = time_queries(engine, nl)
        t_id = time_queries(engine, ident)
    report["latency_fused_subset"] = {"first_query_ms": round(first_ms, 1), "nl": lat(t_nl), "identifier": lat(t_id),
                                      "all": lat(t_nl + t_id), "peak_rss_mb": round(rss.peak / 2**20, 1),
                                      "examples_identifier": ident[:8]}
    report["machine"] = machine_info(encoder)
    engine.close()  # releases the write lock: the children below become the writer, as a user's CLI would

    # 6. cold start ---------------------------------------------------------------------------------------
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = codesearch_command()
    cold: list[dict[str, Any]] = []
    for i in range(args.cold_runs):
        q = nl[(i * 7) % len(nl)]
        wall, rc, child_rss, out = run_child([*cmd, "search", q, "--path", str(sub_root), "--no-wait", "--json"], env)
        hits = len(json.loads(out)) if rc == 0 and out.strip().startswith("[") else 0
        cold.append({"query": q, "seconds": round(wall, 3), "rc": rc, "hits": hits,
                     "peak_rss_mb": round(child_rss / 2**20, 1) if child_rss else None})
    imports = [run_child([sys.executable, "-c", "import codesearch.cli"], env)[0] for _ in range(args.cold_runs)]
    onnx = [run_child([sys.executable, "-c", "import onnxruntime"], env)[0] for _ in range(args.cold_runs)]
    report["cold_start"] = {
        "command": " ".join([*cmd, "search", "QUERY", "--path", str(sub_root), "--no-wait", "--json"]),
        "runs": cold, "median_s": round(median([c["seconds"] for c in cold]), 3),
        "min_s": round(min(c["seconds"] for c in cold), 3), "max_s": round(max(c["seconds"] for c in cold), 3),
        "import_codesearch_cli_median_s": round(median(imports), 3),
        "import_onnxruntime_median_s": round(median(onnx), 3),
    }
    report["peak_rss_process_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["elapsed_s"] = round(total.elapsed, 1)
    report["load_after"] = load_average()
    emit_report(report, args.save, args.json, print_report)
    return 0


def embed_once(root: Path, device: str, model: str) -> dict[str, Any]:
    """Embed the whole subset from an empty index with ``model``: chunks/s and tokens/s."""
    engine = fresh_engine(root, device, None if model == "default" else model)
    try:
        engine.sync()
        emb = engine.embed()
        tokens = count_tokens(engine.encoder, chunk_texts(engine))
        manifest = getattr(engine.encoder, "manifest", None)
        return {"embedded": emb.embedded, "seconds": round(emb.elapsed_s, 2),
                "chunks_per_s": round(emb.embedded / emb.elapsed_s, 2) if emb.elapsed_s else float("nan"),
                "tokens": tokens, "tokens_per_s": round(tokens / emb.elapsed_s, 1) if emb.elapsed_s else float("nan"),
                "model": manifest.id if manifest else model, "max_length": manifest.max_length if manifest else None,
                "precision": manifest.precision if manifest else None,
                "provider": getattr(engine.encoder, "provider", "")}
    finally:
        engine.close()


def compare_models(args: argparse.Namespace, report: dict[str, Any], root: Path, models: list[str],
                   total: Stopwatch) -> int:
    """Embedding speed of several models on one subset, interleaved in rounds."""
    for model in models:  # load (and export, for a model that needs it) before timing anything
        fresh_engine(root, args.device, None if model == "default" else model).close()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    for n in range(args.rounds):
        for model in models:
            run = embed_once(root, args.device, model)
            runs[model].append(run)
            log(f"  round {n + 1}: {model}: {run['embedded']} chunks in {run['seconds']} s "
                f"({run['chunks_per_s']} chunks/s)")
    first = median([r["chunks_per_s"] for r in runs[models[0]]])
    report["compare"] = {m: {"runs": rs, "median_chunks_per_s": median([r["chunks_per_s"] for r in rs]),
                             "ratio_to_first": round(median([r["chunks_per_s"] for r in rs]) / first, 2)}
                         for m, rs in runs.items()}
    report["machine"] = machine_info()
    report["elapsed_s"] = round(total.elapsed, 1)
    report["load_after"] = load_average()
    emit_report(report, args.save, args.json, lambda r: print_comparison(r, root, args.rounds))
    return 0


def print_comparison(report: dict[str, Any], root: Path, rounds: int) -> None:
    m = report["machine"]
    print(f"# embedding speed, side by side\n\ncommand: {report['command']}\nmachine: {m['cpu']} ×{m['affinity']} "
          f"cores; onnxruntime {m.get('onnxruntime')}; load average before/after: {report['load_before']} / "
          f"{report['load_after']}\nsubset: {root} ({rounds} rounds, models interleaved)\n")
    rows = []
    for model, c in report["compare"].items():
        r0 = c["runs"][0]
        rows.append([model, f"{r0['model']} ({r0['precision']}, max_length {r0['max_length']})",
                     ", ".join(str(r["chunks_per_s"]) for r in c["runs"]), c["median_chunks_per_s"],
                     f"{c['ratio_to_first']}×"])
    print(table(["model", "what", "chunks/s per round", "median chunks/s", "vs first"], rows, fmt="{:.1f}"))


def print_report(r: dict[str, Any]) -> None:
    m = r["machine"]
    t = r["tree"]
    print(f"# codesearch speed\n\ncommand: {r['command']}\n"
          f"machine: {m['cpu']} ×{m['affinity']} cores, {m['mem_gb']} GiB; python {m['python']}; "
          f"onnxruntime {m.get('onnxruntime')}\nmodel: {m.get('model')} on {m.get('provider')} "
          f"({m.get('provider_reason')}); max_length {m.get('max_length')}\n"
          f"tree: {r['source']} ({', '.join(t['suffixes'])}, without {', '.join(t['excluded_dirs'])}): "
          f"{t['files']} files, {t['lines']:,} lines, {t['bytes'] / 1e6:.1f} MB\n"
          f"elapsed: {r['elapsed_s']}s; load average before/after: {r['load_before']} / {r['load_after']}")
    if r["chunker_note"]:
        print(f"\nWARNING: {r['chunker_note']}")
    s, e, x = r["sync_full"], r["embed_subset"], r["full_index_extrapolated"]
    inc, noop, incf = r["incremental_update_subset"], r["noop_update_subset"], r["incremental_sync_full"]
    lf, lx, c = r["latency_fused_subset"], r["latency_lexical_full"], r["cold_start"]
    rows = [
        ["sync, full tree, empty index (walk, chunk, lexical)", f"{s['seconds']:.1f} s",
         f"{s['files']} files, {s['chunks']} chunks; {s['files_per_s']} files/s, {s['chunks_per_s']} chunks/s; "
         f"peak RSS {s['peak_rss_mb']} MB"],
        [f"embed, subset of {e['files']} files / {e['chunks']} chunks (all of it)", f"{e['seconds']:.1f} s",
         f"{e['chunks_per_s']} chunks/s, {e['tokens_per_s']} tokens/s ({e['mean_tokens_per_chunk']} tokens/chunk); "
         f"model load {e['model_load_s']} s; peak RSS {e['peak_rss_mb']} MB; index {e['index_mb']} MB"],
        ["full-tree embedding, EXTRAPOLATED (not measured)", f"~{x['embed_eta_s_by_tokens'] / 60:.0f} min",
         f"{x['unique_chunk_texts']} chunk texts, {x['tokens']:,} tokens ({x['mean_tokens_per_chunk']}/chunk) at the "
         f"subset's tokens/s; by chunks/s: ~{x['embed_eta_s_by_chunks'] / 60:.0f} min"],
        ["full index (sync + embed), EXTRAPOLATED", f"~{x['full_index_eta_s_by_tokens'] / 60:.0f} min", ""],
        ["no-op update, subset", f"{noop['seconds'] * 1000:.0f} ms", f"embedded {noop['embedded']}"],
        ["incremental update after editing one file, subset (median of 3)", f"{inc['median_s'] * 1000:.0f} ms",
         f"{inc['file']} ({inc['file_chunks']} chunks); re-embedded {[x['embedded'] for x in inc['runs']]}"],
        ["sync after editing one file, full tree", f"{incf['seconds'] * 1000:.0f} ms", incf["file"]],
        [f"query latency fused, subset, {lf['all']['n']} queries", f"p50 {lf['all']['p50_ms']} ms",
         f"p99 {lf['all']['p99_ms']} ms; NL p50/p99 {lf['nl']['p50_ms']}/{lf['nl']['p99_ms']} ms; identifiers "
         f"{lf['identifier']['p50_ms']}/{lf['identifier']['p99_ms']} ms; first query {lf['first_query_ms']} ms; "
         f"peak RSS {lf['peak_rss_mb']} MB"],
        [f"query latency lexical-only, full tree, {lx['n']} queries", f"p50 {lx['p50_ms']} ms",
         f"p99 {lx['p99_ms']} ms"],
        [f"cold start, `codesearch search --no-wait --json`, {len(c['runs'])} runs", f"median {c['median_s']:.2f} s",
         f"min {c['min_s']:.2f}, max {c['max_s']:.2f} s; child peak RSS "
         f"{median([x['peak_rss_mb'] or 0 for x in c['runs']])} MB (GNU time); `import codesearch.cli` alone "
         f"{c['import_codesearch_cli_median_s']:.2f} s, "
         f"`import onnxruntime` alone {c['import_onnxruntime_median_s']:.2f} s"],
    ]
    print()
    print(table(["measure", "result", "details"], rows))
    print(f"\npeak RSS of the whole benchmark process: {r['peak_rss_process_mb']} MB")


if __name__ == "__main__":
    sys.exit(main())
