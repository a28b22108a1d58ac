"""Index shards: query latency over many shards, and build throughput through Ray against the single-process engine.

``latency``: the Python standard library of this interpreter (``*.py`` without tests) dealt round-robin into
``--shards`` folders (100 by default: about 25,000 chunks in all, 250 per shard), each built into a shard with a
stub encoder (:class:`TermHashEncoder`: a sum of seeded random vectors per identifier term, 384 dimensions like
the default model; no model runs). Then: mounting (``ShardSet.open``), the first query (every shard's HNSW graph
loaded), and warm per-query latency p50/p99 over natural-language and identifier queries, fused and lexical;
for reference the same files as one index. Query embedding is the stub's (microseconds): a real model adds one
query embedding per search, however many shards (see docs/benchmarks.md for its cost).

``throughput``: ``--repos`` repositories of about ``--chunks-per-repo`` chunks each (whole stdlib files), embedded
with the same model by (1) the single-process engine (``Engine.update``, as ``codesearch index`` does), with the
runtime's default threads and with one thread, (2) the shard builder in this process without Ray (its batches of
256 texts through one encoder), and (3) ``build_shards`` on Ray in local mode with ``--num-cpus`` CPUs, side by
side in one run, in the order ``--runs`` gives. chunks/s = chunks embedded / wall time of the build (Ray's
start-up reported apart).

    python bench/shards.py latency                   # 100 shards
    python bench/shards.py throughput                # 3 repos x 150 chunks, default model, Ray local 2 CPUs
    python bench/shards.py throughput --device cuda --repos 8 --chunks-per-repo 3000 --num-cpus 16  # a GPU box
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK_DIR, RssSampler, Stopwatch, load_average, machine_info, percentile, table
from speed import DEFAULT_EXCLUDE_DIRS, NL_QUERIES, default_source, list_tree


class TermHashEncoder:
    """A stub encoder: the normalised sum of one seeded random vector per identifier term (cached)."""

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.model_key = f"term-hash-{dimension}"
        self.model_id = "term-hash stub"
        self.provider = "none"
        self.provider_reason = "stub encoder for latency measurements"
        self._terms: dict[str, np.ndarray] = {}

    def _term(self, term: str) -> np.ndarray:
        vec = self._terms.get(term)
        if vec is None:
            seed = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")
            vec = self._terms[term] = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return vec

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        from codesearch.index.identifiers import identifier_terms

        out = np.zeros((len(texts), self.dimension), np.float32)
        for i, text in enumerate(texts):
            for term in identifier_terms(text)[:200] or ["<empty>"]:
                out[i] += self._term(term)
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_queries(texts)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def lat(times: list[float]) -> dict[str, float]:
    return {"n": len(times), "p50_ms": round(percentile(times, 50), 2), "p90_ms": round(percentile(times, 90), 2),
            "p99_ms": round(percentile(times, 99), 2), "max_ms": round(max(times), 2)}


def stdlib_files() -> tuple[Path, list[Path]]:
    source = default_source().resolve()
    return source, list_tree(source, DEFAULT_EXCLUDE_DIRS, (".py",))


def write_repo(dest: Path, source: Path, files: list[Path]) -> None:
    """Copy once; a re-run with the same file list keeps the copy (and its mtimes)."""
    listing = "\n".join(p.as_posix() for p in files)
    marker = dest.parent / f"{dest.name}.files"
    if marker.exists() and marker.read_text() == listing:
        return
    shutil.rmtree(dest, ignore_errors=True)
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, dest / rel)
    marker.write_text(listing)


# latency ---------------------------------------------------------------------------------------------------
def build_synthetic_shards(work: Path, count: int, encoder: TermHashEncoder) -> tuple[Path, Path, float]:
    from codesearch.shards.manifest import ShardsManifest
    from codesearch.shards.repo_shard import BuildOptions, LocalEmbedders, ShardJob, build_repo_shard

    source, files = stdlib_files()
    repos, out = work / "repos", work / "shards"
    clock = Stopwatch()
    manifest = ShardsManifest.read_or_empty(out)
    previous = manifest.by_source()
    for i in range(count):
        repo = repos / f"repo-{i:03d}"
        write_repo(repo, source, files[i::count])
        job = ShardJob(source=str(repo.resolve()), repo=repo.name, shard=f"shards/{repo.name}")
        outcome = build_repo_shard(out, job, BuildOptions(), LocalEmbedders(encoder), previous.get(job.source))
        if outcome.action == "failed":
            raise SystemExit(f"{repo}: {outcome.record.error}")
        manifest = manifest.with_record(outcome.record)
        if i % 10 == 9:
            log(f"  {i + 1}/{count} shards ({outcome.action})")
    manifest.write(out)
    return repos, out, clock.elapsed


def identifier_queries(shards: Any, n: int, seed: int) -> list[str]:
    names: set[str] = set()
    for shard in shards.shards:
        rows = shard.engine.store.read.execute(
            "SELECT DISTINCT symbol FROM chunks WHERE symbol != '' AND kind IN ('function','method','class')")
        names.update(r[0] for r in rows if len(r[0]) > 3 and not r[0].startswith("__"))
    return random.Random(seed).sample(sorted(names), min(n, len(names)))


def hit_keys(result: Any) -> set[tuple[str, str, int]]:
    return {(h.repo, h.hit.path, h.hit.start_line) for h in result.hits}


def time_queries(search: Any, queries: list[str], mode: str) -> list[float]:
    times = []
    for query in queries:
        clock = Stopwatch()
        search(query, limit=10, mode=mode)
        times.append(1000 * clock.elapsed)
    return times


def latency(args: argparse.Namespace) -> dict[str, Any]:
    from codesearch.engine import Engine
    from codesearch.shards.search import MAX_THREADS, ShardSet

    work = args.work_dir / f"shards-latency-{args.shards}"
    encoder = TermHashEncoder(args.dimension)
    log(f"building {args.shards} synthetic shards in {work} (stub encoder) …")
    repos, out, build_s = build_synthetic_shards(work, args.shards, encoder)
    report: dict[str, Any] = {"shards": args.shards, "build_s": round(build_s, 1), "threads": MAX_THREADS,
                              "load_before": load_average()}
    with RssSampler() as rss:
        clock = Stopwatch()
        shards = ShardSet.open(out, encoder=encoder)
        report["mount_s"] = round(clock.elapsed, 3)
        report["chunks"] = sum(s.record.chunks for s in shards.shards)
        clock = Stopwatch()
        shards.search("open a file", limit=10)
        report["first_query_s"] = round(clock.elapsed, 3)
        queries = [*NL_QUERIES[: args.queries // 2], *identifier_queries(shards, args.queries - args.queries // 2, 7)]
        for query in queries[:10]:  # warm-up
            shards.search(query, limit=10)
        report["fused"] = lat(time_queries(shards.search, queries, "fused"))
        report["lexical"] = lat(time_queries(shards.search, queries, "lexical"))
        full = {q: hit_keys(shards.search(q, limit=10)) for q in queries}
        shards.close()
    report["peak_rss_mb"] = round(rss.peak / 1e6, 1)
    report["depths"] = {}
    for depth in args.candidates:
        shallow = ShardSet.open(out, encoder=encoder, candidates=depth)
        shallow.search("open a file", limit=10)
        times = time_queries(shallow.search, queries, "fused")
        overlap = sum(len(full[q] & hit_keys(shallow.search(q, limit=10))) for q in queries)
        share = overlap / max(sum(len(v) for v in full.values()), 1)
        report["depths"][depth] = {**lat(times), "overlap_at_10": round(share, 3)}
        shallow.close()

    log("the same files as one index …")
    engine = Engine(repos, encoder=encoder, index_dir=work / "combined")
    with engine.writing():
        engine.update()
    report["one_index_fused"] = lat(time_queries(engine.search, queries, "fused"))
    report["one_index_lexical"] = lat(time_queries(engine.search, queries, "lexical"))
    engine.close()
    report["load_after"] = load_average()
    return report


# throughput ---------------------------------------------------------------------------------------------------
def throughput_repos(work: Path, count: int, chunks_per_repo: int, seed: int) -> list[Path]:
    """``count`` repositories of whole stdlib files, about ``chunks_per_repo`` chunks each."""
    from codesearch.chunk.chunker import chunk_file

    source, files = stdlib_files()
    random.Random(seed).shuffle(files)
    repos: list[Path] = []
    pool = iter(files)
    for i in range(count):
        chosen: list[Path] = []
        chunks = 0
        for rel in pool:
            n = len(chunk_file(rel.as_posix(), (source / rel).read_text(errors="replace"), "python").chunks)
            if chunks + n > chunks_per_repo * 1.2:
                continue
            chosen.append(rel)
            chunks += n
            if chunks >= chunks_per_repo:
                break
        repo = work / f"repo-{i}"
        write_repo(repo, source, sorted(chosen))
        repos.append(repo)
    return repos


def single_process(repos: list[Path], model: str | None, device: str, work: Path, threads: int | None
                   ) -> dict[str, Any]:
    from codesearch.embed.loading import forget_loaded
    from codesearch.engine import Engine, EngineConfig

    forget_loaded()
    if threads:
        os.environ["CODESEARCH_THREADS"] = str(threads)
    else:
        os.environ.pop("CODESEARCH_THREADS", None)
    shutil.rmtree(work, ignore_errors=True)
    clock = Stopwatch()
    embedded = 0
    embed_s = 0.0
    for i, repo in enumerate(repos):
        engine = Engine(repo, EngineConfig(model=model, device=device), index_dir=work / f"index-{i}")
        with engine.writing():
            _, report = engine.update()
        embedded += report.embedded
        embed_s += report.elapsed_s
        provider = engine.status().provider
        engine.close()
    wall = clock.elapsed
    os.environ.pop("CODESEARCH_THREADS", None)
    return {"embedded": embedded, "wall_s": round(wall, 1), "chunks_per_s": round(embedded / wall, 2),
            "embed_only_chunks_per_s": round(embedded / embed_s, 2) if embed_s else None, "provider": provider,
            "threads": threads or "runtime default"}


def local_builder(repos: list[Path], model: str | None, device: str, work: Path) -> dict[str, Any]:
    """The shard builder without Ray: the same batches (256 texts) through one encoder in this process."""
    from codesearch.embed.loading import forget_loaded, load_encoder
    from codesearch.shards.repo_shard import BuildOptions, LocalEmbedders, ShardJob, build_repo_shard

    forget_loaded()
    shutil.rmtree(work, ignore_errors=True)
    embedders = LocalEmbedders(load_encoder(model, device))
    clock = Stopwatch()
    embedded = 0
    for repo in repos:
        job = ShardJob(source=str(repo.resolve()), repo=repo.name, shard=f"shards/{repo.name}")
        outcome = build_repo_shard(work, job, BuildOptions(model=model), embedders)
        if outcome.action != "built":
            raise SystemExit(f"{repo}: {outcome.record.error}")
        embedded += outcome.record.embedded
    wall = clock.elapsed
    return {"embedded": embedded, "wall_s": round(wall, 1), "chunks_per_s": round(embedded / wall, 2),
            "provider": embedders.info.provider, "threads": "runtime default",
            "plan": "the shard builder in this process, batches of 256"}


def through_ray(repos: list[Path], model: str | None, device: str, work: Path, num_cpus: int) -> dict[str, Any]:
    from codesearch.shards.ray_build import RayOptions, build_shards
    from codesearch.shards.repo_shard import BuildOptions

    shutil.rmtree(work, ignore_errors=True)
    clock = Stopwatch()
    report = build_shards(work / "out", repos, BuildOptions(model=model), device=device,
                          ray_options=RayOptions(num_cpus=num_cpus))
    total = clock.elapsed
    failed = report.of("failed")
    if failed:
        raise SystemExit(f"ray build failed: {[r.error for r in failed]}")
    return {"embedded": report.embedded_chunks, "wall_s": round(report.wall_s, 1),
            "startup_s": round(report.startup_s, 1), "total_s": round(total, 1),
            "chunks_per_s": round(report.chunks_per_s, 2), "plan": report.plan.describe(),
            "provider": report.info.provider}


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work_dir / "shards-throughput"
    repos = throughput_repos(work / "repos", args.repos, args.chunks_per_repo, args.seed)
    result: dict[str, Any] = {"repos": args.repos, "chunks_per_repo": args.chunks_per_repo, "model": args.model,
                              "device": args.device, "load_before": load_average(), "runs": {}}
    runs = result["runs"]
    for what in args.runs:
        log(f"{what} …")
        if what == "engine":
            runs["engine"] = single_process(repos, args.model, args.device, work / "engine", None)
        elif what == "engine-1-thread":
            runs["engine_1_thread"] = single_process(repos, args.model, args.device, work / "engine-1", 1)
        elif what == "builder":
            runs["builder_no_ray"] = local_builder(repos, args.model, args.device, work / "builder")
        else:
            for cpus in args.num_cpus:
                runs[f"ray_local_{cpus}_cpus"] = through_ray(repos, args.model, args.device, work / f"ray-{cpus}",
                                                             cpus)
    result["load_after"] = load_average()
    return result


def print_latency(r: dict[str, Any]) -> None:
    print(f"{r['shards']} shards, {r['chunks']} chunks; mount {r['mount_s']} s, first query {r['first_query_s']} s "
          f"(graphs loaded), peak RSS {r['peak_rss_mb']} MB; {r['threads']} search threads; "
          f"load {r['load_before']} → {r['load_after']}")
    n = r["shards"]
    runs = [(f"{n} shards, fused", r["fused"], 1.0), (f"{n} shards, lexical", r["lexical"], None),
            *((f"{n} shards, fused, {d} candidates per shard", v, v["overlap_at_10"]) for d, v in r["depths"].items()),
            ("one index, fused", r["one_index_fused"], None), ("one index, lexical", r["one_index_lexical"], None)]
    rows = [[name, v["n"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"], overlap] for name, v, overlap in runs]
    print(table(["search", "queries", "p50 ms", "p90 ms", "p99 ms", "max ms", "top-10 overlap with full depth"], rows,
                "{:.2f}"))


def print_throughput(r: dict[str, Any]) -> None:
    print(f"{r['repos']} repos x ~{r['chunks_per_repo']} chunks, model {r['model'] or 'default'}, device "
          f"{r['device']}; load {r['load_before']} → {r['load_after']}")
    rows = [[name, v["embedded"], v["wall_s"], v.get("startup_s"), v["chunks_per_s"], v.get("plan") or
             f"threads: {v['threads']}", v["provider"]] for name, v in r["runs"].items()]
    print(table(["run", "chunks", "build s", "Ray start-up s", "chunks/s", "embedders", "provider"], rows, "{:.1f}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="what", required=True)
    lat_p = sub.add_parser("latency")
    lat_p.add_argument("--shards", type=int, default=100)
    lat_p.add_argument("--queries", type=int, default=100)
    lat_p.add_argument("--dimension", type=int, default=384)
    lat_p.add_argument("--candidates", type=int, nargs="*", default=[30],
                       help="also measure with this many candidates per shard (ShardSet.open(candidates=))")
    thr = sub.add_parser("throughput")
    thr.add_argument("--repos", type=int, default=3)
    thr.add_argument("--chunks-per-repo", type=int, default=150)
    thr.add_argument("--model", default=None)
    thr.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    thr.add_argument("--num-cpus", type=int, nargs="+", default=[2], help="Ray local CPUs (one run per value)")
    thr.add_argument("--seed", type=int, default=3)
    thr.add_argument("--runs", nargs="+", default=["engine", "engine-1-thread", "builder", "ray"],
                     choices=["engine", "engine-1-thread", "builder", "ray"], help="variants, in this order")
    args = parser.parse_args(argv)
    report = latency(args) if args.what == "latency" else throughput(args)
    report["machine"] = machine_info()
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.what == "latency":
        print_latency(report)
    else:
        print_throughput(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
