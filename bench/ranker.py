"""Retriever alone vs retriever + ranker (random / hard negatives) on the dev sets, and the latency
the ranker adds to a query.

The retriever ranks each dev set once (its top ``--depth`` per query and the full-ranking rank of
every relevant document are cached); each ranker scores every query's top ``depth`` once; re-ranking
at K (5, 10, 20, 50) then sorts the first K by ranker score and leaves the rest (the engine's rule,
``codesearch.query.rerank.rerank``). A re-ranked list changes only inside the top K, so the metrics need
no more than those ranks. Metrics as ``trainer eval``: MRR over the full ranking, NDCG@10, Recall@k.

    python bench/ranker.py retrieve --retriever EXPORTED_OR_HF_DIR --work DIR [--max-queries N]
    python bench/ranker.py score --checkpoint RUN/best --name hard --work DIR      # PyTorch (GPU if any)
    python bench/ranker.py score --ranker EXPORTED_RANKER --name hard --work DIR   # onnxruntime (engine)
    python bench/ranker.py quality --work DIR --names random,hard
    python bench/ranker.py latency --ranker EXPORTED_RANKER --work DIR [--device cpu]
    python bench/ranker.py latency-torch --checkpoint RUN/best --work DIR --device cuda
    python bench/ranker.py table --work DIR           # Markdown for docs/ranker.md

Latency is the ranker's whole share of a query as the engine pays it: tokenising the K (query,
code) pairs and one onnxruntime call (``OnnxRanker.score``), median over the sampled queries.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, load_average, machine_info, median, percentile, table

DATA_ROOT = (REPO.parent / "shared" / "data") if (REPO.parent / "shared" / "data").is_dir() \
    else Path("/work/shared/data")
DEV_SETS = ["fresh/python/dev", "fresh/python/dev-masked", "fresh/javascript/dev", "fresh/javascript/dev-masked",
            "cosqa/dev", "cosqa/dev-nodoc", "docstring-corpus/valid"]
KS = (5, 10, 20, 50)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# retrieval -------------------------------------------------------------------------------------------


def load_set(work: Path, name: str, data_root: Path) -> Any:
    """The cached retrieval of one dev set, with its texts, as a ``RerankSet``."""
    from codesearch_trainer.evaluate import load_beir
    from codesearch_trainer.ranker_train import RerankSet

    meta = _read_json(work / "retrieval.json")
    info = meta["sets"][name]
    data = load_beir(data_root / name, max_queries=meta["max_queries"], seed=meta["seed"])
    arrays = np.load(work / "retrieval" / f"{slug(name)}.npz")
    q_ids = [str(x) for x in arrays["query_ids"]]
    if q_ids != list(data.queries) or len(data.corpus) != info["documents"]:
        raise SystemExit(f"{name}: the cached retrieval does not match the data; run `retrieve` again")
    relevant: list[dict[int, tuple[int, float]]] = [{} for _ in q_ids]
    for q, c, r, g in zip(arrays["rel_q"].tolist(), arrays["rel_col"].tolist(), arrays["rel_rank"].tolist(),
                          arrays["rel_gain"].tolist(), strict=True):
        relevant[q][c] = (r, g)
    doc_ids = list(data.corpus)
    return RerankSet(data.name, q_ids, [data.queries[q] for q in q_ids], doc_ids,
                     [data.corpus[d] for d in doc_ids], arrays["top"].astype(np.int64), relevant)


def cmd_retrieve(args: argparse.Namespace) -> None:
    from codesearch_trainer.evaluate import load_beir
    from codesearch_trainer.ranker_data import open_retriever, retriever_key
    from codesearch_trainer.ranker_train import rerank_metrics, retrieve_set

    work = Path(args.work)
    encoder = open_retriever(args.retriever, device=args.device)
    key = retriever_key(args.retriever)
    meta: dict[str, Any] = {"retriever": args.retriever, "retriever_key": key, "depth": args.depth,
                            "max_queries": args.max_queries, "seed": args.seed, "sets": {},
                            "machine": machine_info(), "load_average_start": load_average()}
    for name in args.sets:
        t0 = time.perf_counter()
        data = load_beir(Path(args.data_root) / name, max_queries=args.max_queries, seed=args.seed)
        rset = retrieve_set(data, encoder, key=key, depth=args.depth, cache_dir=Path(args.cache or work / "embeddings"))
        rq, rc, rr, rg = [], [], [], []
        for q, rel in enumerate(rset.relevant):
            for c, (rank, gain) in rel.items():
                rq.append(q)
                rc.append(c)
                rr.append(rank)
                rg.append(gain)
        out = work / "retrieval" / f"{slug(name)}.npz"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, query_ids=np.asarray(rset.query_ids), top=rset.top.astype(np.int32),
                            rel_q=np.asarray(rq, np.int32), rel_col=np.asarray(rc, np.int32),
                            rel_rank=np.asarray(rr, np.int32), rel_gain=np.asarray(rg, np.float32))
        metrics = rerank_metrics(rset, None, 0)
        meta["sets"][name] = {"queries": len(rset.query_ids), "documents": len(rset.doc_ids), "metrics": metrics,
                              "seconds": time.perf_counter() - t0}
        print(f"{name}: {len(rset.query_ids)} queries, {len(rset.doc_ids)} docs, retriever MRR "
              f"{metrics['mrr']:.4f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        _write_json(work / "retrieval.json", meta)


# scoring ---------------------------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> None:
    work = Path(args.work)
    meta = _read_json(work / "retrieval.json")
    depth = min(args.depth or meta["depth"], meta["depth"])
    out_dir = work / "scores" / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    model: Any = None
    ranker: Any = None
    if args.checkpoint:
        import torch
        from codesearch_trainer.ranker_model import load_cross_encoder

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_cross_encoder(args.checkpoint, device=device)
        amp = device.startswith("cuda") and not args.fp32
        engine = f"pytorch on {device} ({'bf16 autocast' if amp else 'fp32'})"
    else:
        from codesearch.query.rerank import OnnxRanker

        ranker = OnnxRanker.from_folder(args.ranker, device=args.device or "auto")
        engine = f"onnxruntime {ranker.provider}"
    info: dict[str, Any] = {"name": args.name, "source": args.checkpoint or args.ranker, "engine": engine,
                            "depth": depth, "sets": {}}
    for name in meta["sets"]:
        rset = load_set(work, name, Path(args.data_root))
        t0 = time.perf_counter()
        rows = list(range(len(rset.queries)))
        if args.max_queries is not None and args.max_queries < len(rows):
            rows = sorted(random.Random(args.seed).sample(rows, args.max_queries))
        depth_here = min(depth, rset.top.shape[1])
        scores = np.full((len(rset.queries), depth_here), np.nan, dtype=np.float32)
        if model is not None:
            from codesearch_trainer.ranker_train import score_candidates

            scores[rows] = score_candidates(model, subset(rset, rows), depth_here, batch_size=args.batch_size,
                                            amp=amp)
        else:
            for q in rows:
                scores[q] = ranker.score(rset.queries[q], rset.candidates(q, depth_here))
        np.save(out_dir / f"{slug(name)}.npy", scores.astype(np.float32))
        pairs = len(rows) * depth_here
        info["sets"][name] = {"pairs": pairs, "queries": len(rows), "seconds": time.perf_counter() - t0}
        print(f"{args.name} on {name}: {pairs} pairs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        _write_json(out_dir / "info.json", info)


def subset(rset: Any, rows: list[int]) -> Any:
    """The same retrieval restricted to the queries ``rows``."""
    from codesearch_trainer.ranker_train import RerankSet

    return RerankSet(rset.name, [rset.query_ids[q] for q in rows], [rset.queries[q] for q in rows], rset.doc_ids,
                     rset.docs, rset.top[rows], [rset.relevant[q] for q in rows])


def blended_scores(scores: np.ndarray, weight: float) -> np.ndarray:
    """Scores whose order is a weighted rank blend inside each row's top K (an alternative to the
    engine's pure ranker order, evaluated here only): ``-(1 - w) * retriever_rank - w * ranker_rank``,
    with the retriever's rank being the column index. Applied to the first K columns by the caller."""
    k = scores.shape[1]
    ranker_rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable")
    retriever_rank = np.broadcast_to(np.arange(k), scores.shape)
    return -((1.0 - weight) * retriever_rank + weight * ranker_rank).astype(np.float64)


def evaluate(rset: Any, scores: np.ndarray | None, k: int) -> tuple[dict[str, float], np.ndarray]:
    """Metrics after re-ranking the top ``k`` (``rerank_metrics``) and each query's reciprocal rank,
    from one pass over the re-ranked ranks."""
    from codesearch_trainer.ranker_train import metrics_from_ranks, reranked_ranks

    ranked = [reranked_ranks(rset, q, None if scores is None else scores[q], k) for q in range(len(rset.query_ids))]
    return metrics_from_ranks(ranked), np.asarray([1.0 / min(r for r, _ in rel.values()) for rel in ranked])


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int, resamples: int = 2000) -> dict[str, float]:
    """Mean of ``a - b`` over the same queries and its 95 % percentile-bootstrap interval."""
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return {"mean": float(diff.mean()), "ci_low": float(np.percentile(means, 2.5)),
            "ci_high": float(np.percentile(means, 97.5)), "queries": len(diff)}


def cmd_quality(args: argparse.Namespace) -> None:
    """Metrics on the queries every listed ranker scored (all of them unless ``score --max-queries``)."""
    work = Path(args.work)
    meta = _read_json(work / "retrieval.json")
    results: dict[str, Any] = {"ks": list(args.ks), "sets": {}}
    pooled: dict[str, list[np.ndarray]] = {}  # per-query reciprocal ranks, set after set
    for name, info in meta["sets"].items():
        rset = load_set(work, name, Path(args.data_root))
        found = {n: np.load(p) for n in args.names
                 if (p := work / "scores" / n / f"{slug(name)}.npy").is_file()}
        scored = np.ones(len(rset.queries), dtype=bool)
        for scores in found.values():
            scored &= ~np.isnan(scores).any(axis=1)
        rows = np.flatnonzero(scored).tolist()
        part = subset(rset, rows)
        row: dict[str, Any] = {"queries": len(rows), "queries_total": info["queries"],
                               "documents": info["documents"]}
        row["retriever"], rr = evaluate(part, None, 0)
        pooled.setdefault("retriever", []).append(rr)
        for ranker_name, scores in found.items():
            ks = [k for k in args.ks if k <= scores.shape[1]]
            row[ranker_name] = {}
            for k in ks:
                row[ranker_name][str(k)], rr = evaluate(part, scores[rows], k)
                pooled.setdefault(f"{ranker_name} K={k}", []).append(rr)
            for weight in args.blend:
                row[f"{ranker_name} blend {weight:g}"] = {
                    str(k): evaluate(part, blended_scores(scores[rows][:, :k], weight), k)[0] for k in ks}
        results["sets"][name] = row
    rr_all = {name: np.concatenate(parts) for name, parts in pooled.items()}
    comparisons = [(name, name, "retriever") for name in rr_all if name != "retriever"]  # (label, a, b)
    present = [n for n in args.names if any(key.startswith(f"{n} K=") for key in rr_all)]
    if len(present) == 2:
        first, second = present
        comparisons += [(f"{first} - {second} K={k}", f"{first} K={k}", f"{second} K={k}") for k in args.ks
                        if f"{first} K={k}" in rr_all and f"{second} K={k}" in rr_all]
    results["paired_mrr"] = {label: paired_difference(rr_all[a], rr_all[b], args.seed)
                             for label, a, b in comparisons if len(rr_all[a]) == len(rr_all[b])}
    _write_json(work / "quality.json", results)
    print(json.dumps(results, indent=1)[:4000])


# latency ---------------------------------------------------------------------------------------------


def _latency_queries(work: Path, data_root: Path, n: int, seed: int) -> list[tuple[str, list[str]]]:
    """``n`` (query, top-50 texts) samples spread evenly over the dev sets."""
    meta = _read_json(work / "retrieval.json")
    names = list(meta["sets"])
    rng = random.Random(seed)
    out: list[tuple[str, list[str]]] = []
    per = max(1, -(-n // len(names)))
    for name in names:
        rset = load_set(work, name, data_root)
        for q in rng.sample(range(len(rset.queries)), min(per, len(rset.queries))):
            out.append((rset.queries[q], rset.candidates(q, max(KS))))
    rng.shuffle(out)
    return out[:n]


def _summary(times: list[float]) -> dict[str, float]:
    ms = [t * 1000 for t in times]
    return {"median_ms": median(ms), "p90_ms": percentile(ms, 90), "mean_ms": float(np.mean(ms)), "n": len(ms)}


def cmd_latency(args: argparse.Namespace) -> None:
    from codesearch.query.rerank import OnnxRanker

    work = Path(args.work)
    samples = _latency_queries(work, Path(args.data_root), args.queries, args.seed)
    ranker = OnnxRanker.from_folder(args.ranker, device=args.device)
    for query, docs in samples[:3]:  # warm-up
        ranker.score(query, docs[:10])
    result: dict[str, Any] = {"ranker": args.ranker, "provider": ranker.provider, "reason": ranker.provider_reason,
                              "machine": machine_info(), "load_average_start": load_average(), "ks": {}}
    if args.retriever:
        from codesearch.embed.encoder import OnnxEncoder

        encoder = OnnxEncoder.from_folder(args.retriever, device=args.device)
        encoder.encode_queries([samples[0][0]])
        times = []
        for query, _ in samples:
            t0 = time.perf_counter()
            encoder.encode_queries([query])
            times.append(time.perf_counter() - t0)
        result["retriever_query_encoding"] = _summary(times)
    for k in args.ks:
        times = []
        tokens = []
        for query, docs in samples:
            t0 = time.perf_counter()
            ranker.score(query, docs[:k])
            times.append(time.perf_counter() - t0)
            tokens.append(int(ranker.feeds(query, docs[:k])["attention_mask"].shape[1]))
        result["ks"][str(k)] = {**_summary(times), "padded_length_mean": float(np.mean(tokens))}
        print(f"K={k}: median {result['ks'][str(k)]['median_ms']:.1f} ms on {ranker.provider}", file=sys.stderr)
    result["load_average_end"] = load_average()
    tag = "cpu" if ranker.provider == "CPUExecutionProvider" else "cuda"
    _write_json(work / f"latency-onnx-{tag}.json", result)


def cmd_latency_torch(args: argparse.Namespace) -> None:
    import torch
    from codesearch_trainer.ranker_model import load_cross_encoder

    work = Path(args.work)
    samples = _latency_queries(work, Path(args.data_root), args.queries, args.seed)
    device = torch.device(args.device)
    model = load_cross_encoder(args.checkpoint, device=device).eval()
    result: dict[str, Any] = {"checkpoint": args.checkpoint, "device": str(device), "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                              "modes": {}}

    def run(query: str, docs: list[str], dtype: Any) -> None:
        with torch.inference_mode():
            feeds = {k: v.to(device) for k, v in model.encode(query, docs).items()}
            if dtype is None:
                model(**feeds).float().cpu()
            else:
                with torch.autocast(device.type, dtype=dtype):
                    model(**feeds).float().cpu()

    for mode, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        for query, docs in samples[:5]:
            run(query, docs, dtype)
        result["modes"][mode] = {}
        for k in args.ks:
            times = []
            for query, docs in samples:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                run(query, docs[:k], dtype)
                times.append(time.perf_counter() - t0)
            result["modes"][mode][str(k)] = _summary(times)
            print(f"{mode} K={k}: median {result['modes'][mode][str(k)]['median_ms']:.1f} ms", file=sys.stderr)
    _write_json(work / f"latency-torch-{device.type}.json", result)


# table -----------------------------------------------------------------------------------------------


def cmd_table(args: argparse.Namespace) -> None:
    work = Path(args.work)
    quality = _read_json(work / "quality.json")
    ks = [str(k) for k in quality["ks"]]
    names = [n for n in args.names if any(n in row for row in quality["sets"].values())]
    for metric in args.metrics:
        headers = ["dev set", "queries", "retriever"] + [f"{n} K={k}" for n in names for k in ks]
        rows = []
        mean: dict[str, list[float]] = {}
        for name, row in quality["sets"].items():
            cells: list[Any] = [name, row["queries"], row["retriever"][metric]]
            mean.setdefault("retriever", []).append(row["retriever"][metric])
            for n in names:
                for k in ks:
                    value = row.get(n, {}).get(k, {}).get(metric)
                    cells.append(value)
                    if value is not None:
                        mean.setdefault(f"{n}{k}", []).append(value)
            rows.append(cells)
        rows.append(["**mean**", "", float(np.mean(mean["retriever"]))]
                    + [float(np.mean(mean[f"{n}{k}"])) if mean.get(f"{n}{k}") else None for n in names for k in ks])
        print(f"\n{metric.upper() if metric == 'mrr' else metric}:\n")
        print(table(headers, rows))
    paired = quality.get("paired_mrr", {})
    if paired:
        print("\nMRR difference over all scored queries pooled (mean, 95 % paired bootstrap interval; "
              "a plain name is compared with the retriever alone):\n")
        print(table(["comparison", "queries", "mean difference", "95 % low", "95 % high"],
                    [[name, d["queries"], d["mean"], d["ci_low"], d["ci_high"]] for name, d in paired.items()]))
    lat_rows = []
    for path in sorted(work.glob("latency-*.json")):
        lat = _read_json(path)
        if "ks" in lat:
            label = f"onnxruntime {lat['provider']}"
            lat_rows.append([label] + [lat["ks"].get(k, {}).get("median_ms") for k in ks]
                            + [lat.get("retriever_query_encoding", {}).get("median_ms")])
        for mode, per_k in lat.get("modes", {}).items():
            lat_rows.append([f"pytorch {lat['device']} {mode} ({lat.get('gpu') or ''})"]
                            + [per_k.get(k, {}).get("median_ms") for k in ks] + [None])
    if lat_rows:
        print("\nAdded latency per query (median ms):\n")
        print(table(["engine"] + [f"K={k}" for k in ks] + ["retriever query encoding"], lat_rows, fmt="{:.1f}"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/codesearch-bench/ranker", help="Cache and results folder.")
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("retrieve")
    p.add_argument("--retriever", required=True)
    p.add_argument("--sets", nargs="+", default=DEV_SETS)
    p.add_argument("--max-queries", type=int, default=None)
    p.add_argument("--depth", type=int, default=max(KS))
    p.add_argument("--device", default=None)
    p.add_argument("--cache", help="Embedding cache folder (default WORK/embeddings; share it with train-ranker's).")
    p = sub.add_parser("score")
    p.add_argument("--name", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint")
    src.add_argument("--ranker")
    p.add_argument("--device", default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--fp32", action="store_true",
                   help="Score in fp32 on CUDA too (default there: bf16 autocast; fp32 attention is ~10x slower).")
    p.add_argument("--max-queries", type=int, help="Score only the first N queries of each set (CPU runs).")
    p = sub.add_parser("quality")
    p.add_argument("--names", type=lambda s: s.split(","), default=["random", "hard"])
    p.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=list(KS))
    p.add_argument("--blend", type=lambda s: [float(x) for x in s.split(",")], default=[],
                   help="Also evaluate rank blends with these ranker weights (0..1), e.g. 0.5 (see blended_scores).")
    p = sub.add_parser("latency")
    p.add_argument("--ranker", required=True)
    p.add_argument("--retriever", help="Also time the retriever's query encoding (an exported encoder).")
    p.add_argument("--device", default="cpu")
    p.add_argument("--queries", type=int, default=35)
    p.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=list(KS))
    p = sub.add_parser("latency-torch")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--queries", type=int, default=70)
    p.add_argument("--ks", type=lambda s: [int(x) for x in s.split(",")], default=list(KS))
    p = sub.add_parser("table")
    p.add_argument("--names", type=lambda s: s.split(","), default=["random", "hard"])
    p.add_argument("--metrics", type=lambda s: s.split(","), default=["mrr", "ndcg@10", "recall@1"])
    args = parser.parse_args(argv)
    {"retrieve": cmd_retrieve, "score": cmd_score, "quality": cmd_quality, "latency": cmd_latency,
     "latency-torch": cmd_latency_torch, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()
