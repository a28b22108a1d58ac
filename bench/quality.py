"""Retrieval quality of the real engine on BEIR-style folders: dense-only, lexical-only and fused.

Each corpus document is written into a stable workspace as one source file named after its id, the
workspace is indexed with the real default model (``Engine.update()``), and every query is run
through ``Engine.search(..., mode=...)``. A hit maps back to its file's id; several chunks of one
file count once, at the best rank. Re-runs with the same options reuse the workspace and its index,
so only the first run pays for embedding; ``--sweep`` then evaluates ``RankingWeights`` variants.

    python bench/quality.py fresh/python/dev --max-docs 300 --max-queries 50     # quick check
    python bench/quality.py --dev                                                 # all dev sets
    python bench/quality.py --dev --sweep                                         # weight grid
    python bench/quality.py --dev --variant "lex.3:lexical=0.3" --variant ...     # chosen variants
    python bench/quality.py --test --weights lexical=0.1                          # test sets
    python bench/quality.py --dev --modes fused --ranker RANKER --rerank-k 5,10    # + a ranker

With ``--ranker`` the fused mode is also run through the engine with that ranker re-ranking the top K
chunks (``EngineConfig(ranker=..., rerank_k=K)``, the product's path), on the same queries as the
retriever-only rows: ``--ranker-max-queries`` samples them, as a CPU ranker is slow.

Metrics: MRR (reciprocal rank of the first relevant file within the top 100, 0 if absent), NDCG@10
and Recall@1/5/10/100, averaged over queries. Select weights on dev sets only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DEFAULT_WORK_DIR,
    REPO,
    CachingEncoder,
    MemoIndex,
    MemoStore,
    Stopwatch,
    emit_report,
    ensure_chunker,
    load_average,
    machine_info,
    table,
)

DATA_ROOT = (REPO.parent / "shared" / "data") if (REPO.parent / "shared" / "data").is_dir() \
    else Path("/work/shared/data")

# folder -> (split, file extension (None: from each document's "language"), BM25 MRR from the data README)
DATASETS: dict[str, tuple[str, str | None, float | None]] = {
    "fresh/python/dev": ("dev", ".py", 0.470),
    "fresh/python/dev-masked": ("dev", ".py", 0.351),
    "fresh/javascript/dev": ("dev", None, 0.538),
    "fresh/javascript/dev-masked": ("dev", None, 0.389),
    "cosqa/dev-nodoc": ("dev", ".py", 0.199),
    "cosqa/dev": ("dev", ".py", 0.335),
    "docstring-corpus/valid": ("dev", ".py", 0.582),
    "conala/test": ("test", ".py", 0.628),
    "humaneval/test": ("test", ".py", 0.542),
    "statcodesearch-r/test": ("test", ".R", 0.427),
    "ncs-android/test": ("test", ".java", 0.451),
}
# What --dev selects weights on (cosqa/dev keeps docstrings a code index rarely sees; docstring-corpus
# echoes names: both can be named explicitly).
DEV_SETS = ["fresh/python/dev", "fresh/python/dev-masked", "fresh/javascript/dev", "fresh/javascript/dev-masked",
            "cosqa/dev-nodoc"]
TEST_SETS = ["conala/test", "humaneval/test", "statcodesearch-r/test", "ncs-android/test"]
LANGUAGE_EXT = {"python": ".py", "javascript": ".js", "typescript": ".ts", "java": ".java", "r": ".R"}
MODES = ("dense", "lexical", "fused")
CUTOFF = 100  # ranked files kept per query
SEARCH_LIMIT = 400  # chunks asked for: more than the candidate pool, so dedup by file loses nothing
RRF_K = 60


# data -----------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    name: str
    split: str
    corpus: dict[str, dict[str, Any]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    bm25_mrr: float | None
    ext: str | None
    sampled: str = "full"
    full_docs: int = 0
    full_queries: int = 0


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_dataset(name: str, data_root: Path) -> Dataset:
    folder = Path(name) if Path(name).is_dir() and not (data_root / name).is_dir() else data_root / name
    split, ext, bm25 = DATASETS.get(name, ("dev" if "dev" in name else "test", None, None))
    corpus = {str(d["_id"]): d for d in read_jsonl(folder / "corpus.jsonl")}
    queries = {str(q["_id"]): str(q["text"]) for q in read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels.tsv", encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            qid, did, score = parts[0], parts[1], int(float(parts[2]))
            if score > 0 and did in corpus and qid in queries:
                qrels.setdefault(qid, {})[did] = score
    queries = {q: t for q, t in queries.items() if q in qrels}
    return Dataset(name, split, corpus, queries, qrels, bm25, ext, full_docs=len(corpus), full_queries=len(queries))


def subsample(ds: Dataset, max_docs: int | None, max_queries: int | None, seed: int) -> Dataset:
    """Keep ``max_queries`` random queries, all their relevant docs, then random distractors up to
    ``max_docs``. Deterministic for a seed; the corpus sample depends only on (max_docs, max_queries, seed)."""
    rng = random.Random(seed)
    qids = sorted(ds.queries)
    if max_queries and len(qids) > max_queries:
        qids = sorted(rng.sample(qids, max_queries))
    corpus = ds.corpus
    note = []
    if max_queries and max_queries < ds.full_queries:
        note.append(f"{len(qids)}/{ds.full_queries} queries")
    if max_docs and max_docs < len(ds.corpus):
        relevant = sorted({d for q in qids for d in ds.qrels[q]})
        rest = sorted(set(ds.corpus) - set(relevant))
        rng2 = random.Random(seed + 1)
        extra = rng2.sample(rest, max(0, min(len(rest), max_docs - len(relevant))))
        keep = set(relevant) | set(extra)
        corpus = {d: ds.corpus[d] for d in sorted(keep)}
        note.append(f"{len(corpus)}/{ds.full_docs} docs ({len(relevant)} relevant + {len(extra)} random "
                    f"distractors, seed {seed})")
    return dataclasses.replace(
        ds, corpus=corpus, queries={q: ds.queries[q] for q in qids}, qrels={q: ds.qrels[q] for q in qids},
        sampled="; ".join(note) or "full",
    )


# workspace ------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def workspace_name(ds: Dataset, max_docs: int | None, max_queries: int | None, seed: int) -> str:
    name = slug(ds.name)
    if max_docs and max_docs < ds.full_docs:
        name += f"-d{max_docs}-q{max_queries or 'all'}-s{seed}"
    return name


def write_workspace(ds: Dataset, src: Path) -> dict[str, str]:
    """One file per document, named by id; only changed files are rewritten (stable mtimes)."""
    src.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, str] = {}
    used: set[str] = set()
    for did, doc in ds.corpus.items():
        ext = ds.ext or LANGUAGE_EXT.get(str(doc.get("language", "")).lower(), ".py")
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", did) or "doc"
        fname, n = base + ext, 1
        while fname.lower() in used:
            n += 1
            fname = f"{base}__{n}{ext}"
        used.add(fname.lower())
        by_file[fname] = did
        text = str(doc["text"])
        if not text.endswith("\n"):
            text += "\n"
        path = src / fname
        data = text.encode("utf-8", "surrogatepass")
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    for stale in src.iterdir():
        if stale.name not in by_file and stale.is_file():
            stale.unlink()
    return by_file


# metrics --------------------------------------------------------------------------------------------
def query_metrics(ranked: Sequence[str], relevant: dict[str, int]) -> dict[str, float]:
    rr = 0.0
    for rank, did in enumerate(ranked[:CUTOFF], 1):
        if did in relevant:
            rr = 1.0 / rank
            break
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    out = {"mrr": rr, "ndcg@10": dcg / idcg if idcg else 0.0}
    for k in (1, 5, 10, 100):
        out[f"r@{k}"] = len(set(ranked[:k]) & set(relevant)) / len(relevant)
    return out


def mean_metrics(per_query: list[dict[str, float]]) -> dict[str, float]:
    keys = ("mrr", "ndcg@10", "r@1", "r@5", "r@10", "r@100")
    n = max(len(per_query), 1)
    return {k: sum(m[k] for m in per_query) / n for k in keys}


METRIC_HEAD = ["MRR", "NDCG@10", "R@1", "R@5", "R@10", "R@100"]
METRIC_KEYS = ["mrr", "ndcg@10", "r@1", "r@5", "r@10", "r@100"]


# running --------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    ds: Dataset
    engine: Any
    by_file: dict[str, str]
    index: dict[str, Any] = field(default_factory=dict)


def prepare(ds: Dataset, args: argparse.Namespace, encoder: Any) -> Prepared:
    from codesearch.engine import Engine, EngineConfig

    base = Path(args.work_dir) / "quality" / workspace_name(ds, args.max_docs, args.max_queries, args.seed)
    src = base / "src"
    clock = Stopwatch()
    by_file = write_workspace(ds, src)
    rechunk = invalidate_if_chunker_changed(base / "index")
    engine = Engine(src, EngineConfig(device=args.device), encoder=encoder, index_dir=base / "index",
                    on_message=lambda m: log(f"  engine: {m}"))
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if p.phase == "embed" and now - last[0] > 30:
            last[0] = now
            eta = f", ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
            log(f"  embedding {p.embedded}/{p.to_embed} ({p.rate:.1f} chunks/s{eta})")

    sync_clock = Stopwatch()
    sync = engine.sync(progress=progress)
    sync_s = sync_clock.elapsed
    embed = engine.embed(progress=progress)
    status = engine.status()
    skipped = [p for p, _ in sync.skipped]
    info = {
        "workspace": str(base), "files": status.files, "chunks": status.chunks, "pending": status.pending,
        "skipped_files": len(skipped), "skipped_reasons": sorted({r for _, r in sync.skipped}),
        "parse_failures": len(status.parse_failures), "sync_s": round(sync_s, 2),
        "embedded_now": embed.embedded, "embed_s": round(embed.elapsed_s, 2),
        "embed_rate": round(embed.embedded / embed.elapsed_s, 1) if embed.embedded and embed.elapsed_s else None,
        "prepare_s": round(clock.elapsed, 2), "rechunked_for_new_chunker": rechunk,
    }
    log(f"  {ds.name}: {status.files} files, {status.chunks} chunks, {len(skipped)} skipped, "
        f"{info['parse_failures']} parse failures; embedded {embed.embedded} now"
        + (f" at {info['embed_rate']} chunks/s" if info["embed_rate"] else " (all cached)")
        + f"; ready in {clock.elapsed:.1f}s")
    return Prepared(ds, engine, by_file, info)


def chunker_fingerprint() -> str:
    """Hash of the chunker's and the language table's source: the index does not record it."""
    import hashlib

    import codesearch.chunk.chunker
    import codesearch.languages

    digest = hashlib.sha256()
    for module in (codesearch.chunk.chunker, codesearch.languages):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


def invalidate_if_chunker_changed(index_dir: Path) -> bool:
    """Workaround: the engine re-chunks a file only when its bytes change, so an index built with an
    older chunker keeps its old chunks. When the chunker's source changed since this index was built,
    clear the stored file hashes (the vector cache stays) so the next sync re-chunks every file."""
    import sqlite3

    marker = index_dir / "bench-chunker.sha"
    current = chunker_fingerprint()
    db = index_dir / "index.db"
    previous = marker.read_text().strip() if marker.exists() else None
    changed = db.exists() and previous != current
    if changed:
        con = sqlite3.connect(str(db))
        try:
            con.execute("UPDATE files SET hash='', size=-1")
            con.commit()
        finally:
            con.close()
        log("  chunker changed since this index was built: every file will be re-chunked")
    index_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(current + "\n")
    return changed


def ranked_files(engine: Any, by_file: dict[str, str], query: str, mode: str) -> list[str]:
    result = engine.search(query, limit=SEARCH_LIMIT, mode=mode)
    seen: dict[str, None] = {}
    for hit in result.hits:
        did = by_file.get(hit.path)
        if did is not None and did not in seen:
            seen[did] = None
            if len(seen) >= CUTOFF:
                break
    return list(seen)


def run_mode(prep: Prepared, mode: str, weights: Any | None = None, qids: Sequence[str] | None = None
             ) -> tuple[dict[str, float], dict[str, list[str]], float]:
    if weights is not None:
        prep.engine.weights = weights
    qids = list(prep.ds.queries) if qids is None else list(qids)
    rankings: dict[str, list[str]] = {}
    clock = Stopwatch()
    for qid in qids:
        rankings[qid] = ranked_files(prep.engine, prep.by_file, prep.ds.queries[qid], mode)
    per_query_ms = 1000 * clock.elapsed / max(len(qids), 1)
    metrics = mean_metrics([query_metrics(rankings[q], prep.ds.qrels[q]) for q in qids])
    return metrics, rankings, per_query_ms


def run_ranker(prep: Prepared, ranker: str, ks: Sequence[int], max_queries: int | None, seed: int,
               weights: Any) -> dict[str, Any]:
    """Fused retrieval alone and re-ranked by ``ranker`` at each K, on one seeded query sample."""
    qids = sorted(prep.ds.queries)
    if max_queries and len(qids) > max_queries:
        qids = sorted(random.Random(seed).sample(qids, max_queries))
    base = prep.engine.config
    out: dict[str, Any] = {"queries": len(qids)}
    out["fused"], _, out["ms_fused"] = run_mode(prep, "fused", weights, qids)
    prep.engine.config = dataclasses.replace(base, ranker=ranker)
    problem = prep.engine.search(prep.ds.queries[qids[0]], limit=1).rerank_skipped  # loads it once
    if problem:
        raise SystemExit(f"the ranker was not applied: {problem}")
    for k in ks:
        prep.engine.config = dataclasses.replace(base, ranker=ranker, rerank_k=k)
        metrics, _, ms = run_mode(prep, "fused", weights, qids)
        out[f"K={k}"] = {**metrics, "ms_per_query": round(ms, 1)}
        log(f"  fused + ranker K={k}: MRR {metrics['mrr']:.3f} (fused alone {out['fused']['mrr']:.3f}, "
            f"{len(qids)} queries, {ms:.0f} ms/query)")
    prep.engine.config = base
    return out


SWEEP_LIMIT = 150  # chunks per query in the sweep (MRR/NDCG@10 need only the head of the list)


def run_sweep(prep: Prepared, grid: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Fused metrics for every weight variant; each query's retrieval is done once (memoised)."""
    from codesearch.query.search import run_search

    engine = prep.engine
    index = engine._vector_index()
    encoder = engine.encoder
    variants = [(label, make_weights(w)) for label, w in grid]
    per_query: dict[str, list[dict[str, float]]] = {label: [] for label, _ in variants}
    for qid, text in prep.ds.queries.items():
        store, vindex = MemoStore(engine.store), MemoIndex(index)
        for label, weights in variants:
            outcome = run_search(store, vindex, encoder, text, limit=SWEEP_LIMIT, weights=weights, mode="fused")
            seen: dict[str, None] = {}
            for hit in outcome.hits:
                did = prep.by_file.get(hit.path)
                if did is not None:
                    seen.setdefault(did, None)
            per_query[label].append(query_metrics(list(seen)[:CUTOFF], prep.ds.qrels[qid]))
    return {label: mean_metrics(rows) for label, rows in per_query.items()}


def rrf(dense: dict[str, list[str]], lexical: dict[str, list[str]]) -> dict[str, list[str]]:
    """Reciprocal-rank fusion of the dense and lexical file rankings (a bench-side reference point)."""
    out: dict[str, list[str]] = {}
    for qid in dense:
        scores: dict[str, float] = {}
        for ranking in (dense[qid], lexical.get(qid, [])):
            for rank, did in enumerate(ranking, 1):
                scores[did] = scores.get(did, 0.0) + 1.0 / (RRF_K + rank)
        out[qid] = sorted(scores, key=lambda d: (-scores[d], d))[:CUTOFF]
    return out


def parse_weights(spec: str | None) -> dict[str, Any]:
    """``field=value,...`` or a JSON object; ``lexical=X`` sets the lexical weight of every query kind."""
    if not spec:
        return {}
    if spec.strip().startswith("{"):
        raw = dict(json.loads(spec).items())
    else:
        raw = {}
        for part in spec.split(","):
            key, _, value = part.partition("=")
            raw[key.strip()] = value.strip()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        for field_name in LEXICAL_FIELDS if key == "lexical" else (key,):
            out[field_name] = value
    return out


LEXICAL_FIELDS = ("lexical_language", "lexical_mixed", "lexical_identifier")


def make_weights(overrides: dict[str, Any]) -> Any:
    from codesearch.query.scoring import RankingWeights

    fields = {f.name: f for f in dataclasses.fields(RankingWeights)}
    bad = set(overrides) - set(fields)
    if bad:
        raise SystemExit(f"unknown RankingWeights fields: {', '.join(sorted(bad))}")
    return RankingWeights(**{k: _cast(fields[k].default, v) for k, v in overrides.items()})


def _cast(default: Any, value: Any) -> Any:
    return type(default)(float(value)) if isinstance(default, (int, float)) else type(default)(value)


def sweep_grid(base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """lexical weight (every query kind) × name/path-term boosts (off, default, doubled), plus
    one-at-a-time checks around the defaults."""
    from codesearch.query.scoring import RankingWeights

    d = RankingWeights()
    grid: list[tuple[str, dict[str, Any]]] = []
    for lexical in (0.0, 0.05, 0.1, 0.15, 0.25, 0.4):
        for terms, (nt, pt) in (("off", (0.0, 0.0)), ("default", (d.name_terms, d.path_terms)),
                                ("x2", (2 * d.name_terms, 2 * d.path_terms))):
            w = dict(base, **{f: lexical for f in LEXICAL_FIELDS}, name_terms=nt, path_terms=pt)
            grid.append((f"lex={lexical:g} terms={terms}", w))
    grid.append(("defaults, non_def_penalty=0", dict(base, non_definition_penalty=0.0)))
    grid.append(("defaults, name only (path 0)", dict(base, path_terms=0.0)))
    grid.append(("defaults, candidates 200/200", dict(base, dense_candidates=200, lexical_candidates=200)))
    return grid


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", help="folders under --data-root, e.g. fresh/python/dev")
    parser.add_argument("--dev", action="store_true",
                        help=f"add the dev sets used for selection: {', '.join(DEV_SETS)}")
    parser.add_argument("--test", action="store_true", help=f"add the test sets: {', '.join(TEST_SETS)}")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="stable folder for workspaces and indexes (re-runs reuse them)")
    parser.add_argument("--max-docs", type=int, default=None, help="corpus subsample: relevant docs + distractors")
    parser.add_argument("--max-queries", type=int, default=None, help="query subsample")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: dense,lexical,fused")
    parser.add_argument("--weights", default=None,
                        help="RankingWeights overrides for fused mode, e.g. 'lexical=0.1,name_terms=0.08' or JSON")
    parser.add_argument("--sweep", action="store_true", help="evaluate a grid of RankingWeights (fused) variants")
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL:field=value,... a fused variant to sweep instead of the grid (repeatable)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None,
                        help="encoder as the engine takes it (default: the embedded model); use a separate "
                             "--work-dir so the default model's indexes stay as they are")
    parser.add_argument("--ranker", default=None, help="an exported ranker: also run fused + ranker (see above)")
    parser.add_argument("--rerank-k", default="5,10", help="comma-separated K values for --ranker")
    parser.add_argument("--ranker-max-queries", type=int, default=100,
                        help="queries sampled per set for the --ranker rows (0: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--save", type=Path, default=None, help="also write the JSON report to this file")
    args = parser.parse_args(argv)

    names = list(dict.fromkeys(args.datasets + (DEV_SETS if args.dev else []) + (TEST_SETS if args.test else [])))
    if not names:
        parser.error("name at least one dataset, or --dev / --test")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        parser.error(f"modes are {', '.join(MODES)}")

    chunker_note = ensure_chunker()
    from codesearch.embed.loading import load_encoder
    from codesearch.query.scoring import RankingWeights

    overrides = parse_weights(args.weights)
    fused_weights = make_weights(overrides)
    encoder = CachingEncoder(load_encoder(args.model, args.device, log))
    report: dict[str, Any] = {
        "command": "python bench/quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(encoder), "chunker_note": chunker_note,
        "weights": dataclasses.asdict(fused_weights), "weight_overrides": overrides, "ranker": args.ranker,
        "defaults": dataclasses.asdict(RankingWeights()),
        "cutoff": CUTOFF, "datasets": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": load_average(),
    }
    if any(DATASETS.get(n, ("dev",))[0] == "test" for n in names) and args.sweep:
        log("note: --sweep runs on dev sets only; test sets get the --weights given")
    grid = [(label, {**overrides, **parse_weights(spec)})
            for label, _, spec in (v.partition(":") for v in args.variant)]
    if args.variant:
        grid.insert(0, ("defaults", dict(overrides)))
    elif args.sweep:
        grid = sweep_grid(overrides)
    sweep_results: dict[str, dict[str, dict[str, float]]] = {}
    total = Stopwatch()
    for name in names:
        ds = subsample(load_dataset(name, args.data_root), args.max_docs, args.max_queries, args.seed)
        log(f"{name} ({ds.split}): {len(ds.corpus)} docs, {len(ds.queries)} queries [{ds.sampled}]")
        prep = prepare(ds, args, encoder)
        entry: dict[str, Any] = {"split": ds.split, "docs": len(ds.corpus), "queries": len(ds.queries),
                                 "sampled": ds.sampled, "bm25_mrr_readme": ds.bm25_mrr, "index": prep.index,
                                 "modes": {}, "ms_per_query": {}}
        rankings: dict[str, dict[str, list[str]]] = {}
        for mode in modes:
            metrics, ranks, ms = run_mode(prep, mode, fused_weights)
            rankings[mode] = ranks
            entry["modes"][mode] = metrics
            entry["ms_per_query"][mode] = round(ms, 2)
            entry.setdefault("reciprocal_ranks", {})[mode] = {  # per query: compare_quality's paired intervals
                q: round(query_metrics(r, ds.qrels[q])["mrr"], 6) for q, r in ranks.items()}
            log(f"  {mode:8s} MRR {metrics['mrr']:.3f}  NDCG@10 {metrics['ndcg@10']:.3f}  "
                f"R@10 {metrics['r@10']:.3f}  ({ms:.1f} ms/query)")
        if "dense" in rankings and "lexical" in rankings:
            fused = rrf(rankings["dense"], rankings["lexical"])
            entry["modes"]["rrf (bench-side)"] = mean_metrics(
                [query_metrics(fused[q], ds.qrels[q]) for q in ds.queries])
        if args.ranker:
            entry["ranker"] = run_ranker(prep, args.ranker, [int(k) for k in args.rerank_k.split(",")],
                                         args.ranker_max_queries or None, args.seed, fused_weights)
        if grid and ds.split == "dev":
            clock = Stopwatch()
            sweep_results[name] = run_sweep(prep, grid)
            log(f"  sweep: {len(grid)} variants in {clock.elapsed:.0f}s")
        prep.engine.close()
        report["datasets"][name] = entry
    report["elapsed_s"] = round(total.elapsed, 1)
    report["load_after"] = load_average()
    if grid:
        report["sweep"] = {"grid": {label: w for label, w in grid}, "results": sweep_results,
                           "summary": sweep_summary(sweep_results, grid)}
    emit_report(report, args.save, args.json, lambda r: print_report(r, modes))
    return 0


def sweep_summary(results: dict[str, dict[str, dict[str, float]]], grid: list[tuple[str, dict[str, Any]]]
                  ) -> list[dict[str, Any]]:
    rows = []
    for label, _ in grid:
        per_set = {name: results[name][label] for name in results}
        n = max(len(per_set), 1)
        rows.append({"variant": label,
                     "mean_mrr": sum(m["mrr"] for m in per_set.values()) / n,
                     "mean_ndcg@10": sum(m["ndcg@10"] for m in per_set.values()) / n,
                     "mrr": {name: m["mrr"] for name, m in per_set.items()}})
    return sorted(rows, key=lambda r: -r["mean_mrr"])


def print_report(report: dict[str, Any], modes: list[str]) -> None:
    m = report["machine"]
    print(f"# codesearch retrieval quality\n\ncommand: {report['command']}\n"
          f"model: {m.get('model')} [{m.get('model_key')}] on {m.get('provider')} ({m.get('provider_reason')}); "
          f"cpu: {m['cpu']} ×{m['affinity']}; onnxruntime {m.get('onnxruntime')}; python {m['python']}\n"
          f"fused weights: {report['weight_overrides'] or 'RankingWeights() defaults'}\n"
          f"files ranked per query: {report['cutoff']} (chunks of one file count once, best rank)\n"
          f"elapsed: {report['elapsed_s']}s; load average before/after: {report['load_before']} / "
          f"{report['load_after']}")
    if report["chunker_note"]:
        print(f"\nWARNING: {report['chunker_note']}")
    for name, e in report["datasets"].items():
        idx = e["index"]
        print(f"\n## {name} ({e['split']})\n\n{e['docs']} docs, {e['queries']} queries [{e['sampled']}]; "
              f"{idx['chunks']} chunks, {idx['skipped_files']} files skipped by the walker "
              f"{idx['skipped_reasons'] or ''}, {idx['parse_failures']} parse failures; "
              f"ms/query (query vectors cached after the first dense/fused mode; see bench/speed.py for latency): "
              f"{e['ms_per_query']}\n")
        rows = [[mode] + [e["modes"][mode][k] for k in METRIC_KEYS] for mode in e["modes"]]
        rows.append(["BM25 (data README, full corpus)", e["bm25_mrr_readme"], None, None, None, None, None])
        print(table(["mode", *METRIC_HEAD], rows))
    print("\n## summary (MRR)\n")
    cols = [m for m in ("dense", "lexical", "fused", "rrf (bench-side)") if any(
        m in e["modes"] for e in report["datasets"].values())]
    rows = [[name, e["split"], e["docs"], e["queries"], e["bm25_mrr_readme"]]
            + [e["modes"].get(c, {}).get("mrr") for c in cols] for name, e in report["datasets"].items()]
    print(table(["set", "split", "docs", "queries", "BM25 (README)", *cols], rows))
    ranked = {name: e["ranker"] for name, e in report["datasets"].items() if "ranker" in e}
    if ranked:
        ks = [key for key in next(iter(ranked.values())) if key.startswith("K=")]
        print(f"\n## fused + ranker {report['ranker']} (MRR; ms/query on {report['machine'].get('provider')})\n")
        rows = [[name, r["queries"], r["fused"]["mrr"]] + [r[k]["mrr"] for k in ks]
                + [r["ms_fused"]] + [r[k]["ms_per_query"] for k in ks] for name, r in ranked.items()]
        print(table(["set", "queries", "fused", *[f"+ ranker {k}" for k in ks], "ms fused",
                     *[f"ms {k}" for k in ks]], rows))
    if "sweep" in report:
        names = list(report["sweep"]["results"])
        print(f"\n## sweep (fused MRR on dev sets; sorted by mean MRR over {len(names)} sets)\n")
        rows = [[r["variant"], r["mean_mrr"], r["mean_ndcg@10"]] + [r["mrr"][n] for n in names]
                for r in report["sweep"]["summary"]]
        print(table(["variant", "mean MRR", "mean NDCG@10", *names], rows))


if __name__ == "__main__":
    sys.exit(main())
