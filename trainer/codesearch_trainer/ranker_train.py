"""``trainer train-ranker``: train the cross-encoder ranker on (query, code) pairs.

Each step takes ``batch_size`` training queries; every query is scored against its gold code and
``negatives_per_query`` negatives (``hard``: from the windows mined below the gold item by the
frozen retriever, see ``ranker_data``; ``random``: other codes of the same batch, the baseline),
and the loss is the softmax cross-entropy of the positive among them, on scores divided by
``temperature``.

Engineering as in ``trainer train``: AdamW with warm-up and linear decay, gradient clipping, seeds,
bf16/fp16 autocast on CUDA, ``OUTPUT/step-N`` checkpoints (a ranker folder plus
``training_state.pt`` for ``--resume``; older ones are removed), ``OUTPUT/best`` selected on dev,
``OUTPUT/metrics.jsonl``, a tqdm bar.

Dev selection: the frozen retriever ranks each dev corpus, the ranker re-scores each query's top
``dev_rerank_k``, and the mean MRR over the dev sets of the re-ranked lists (top K in ranker order
above the rest in retriever order, the engine's rule) picks ``best``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import Pair, clean_pairs, load_pairs
from .evaluate import BeirData, load_beir
from .model import DEFAULT_MODEL, autocast
from .ranker_data import (
    NEGATIVE_MODES,
    NEGATIVES_FILE,
    DuplicateFilter,
    MinedNegatives,
    MiningConfig,
    TextEncoder,
    embed_cached,
    mine_for_pairs,
    open_retriever,
    retriever_key,
    sample_negatives,
)
from .ranker_model import POOLINGS, CrossEncoder, load_cross_encoder
from .train import (
    STATE_FILE,
    MetricsLog,
    Optimization,
    copy_checkpoint,
    epoch_batches,
    find_resume,
    seed_everything,
)

log = logging.getLogger(__name__)



@dataclass
class RankerTrainConfig:
    output: str
    retriever: str
    data: list[str] = field(default_factory=list)
    dev: list[str] = field(default_factory=list)
    model: str = DEFAULT_MODEL
    negatives: str = "hard"
    window_start: int = 1
    window_size: int = 16
    negatives_per_query: int = 7
    near_dup_cosine: float = 0.98
    near_dup_jaccard: float = 0.9
    pooling: str | None = None  # None: "mean" for a fresh head, the checkpoint's own otherwise
    temperature: float = 1.0
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 16  # queries per step; each brings 1 + negatives_per_query pairs
    max_length: int = 256  # tokens of a (query, code) pair
    query_max_length: int = 64
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 42
    amp: bool | None = None
    device: str | None = None
    max_pairs: int | None = None
    min_query_words: int = 1
    dedupe: bool = True
    mining_cache: str | None = None  # default OUTPUT/cache
    dev_max_queries: int | None = None
    dev_max_corpus: int | None = None
    dev_rerank_k: int = 20
    eval_every: int | None = None  # steps; default: at the end of each epoch (and of the run)
    eval_batch_size: int = 128
    resume: str | None = None
    log_every: int = 10
    progress: bool = True

    @property
    def mining(self) -> MiningConfig:
        return MiningConfig(window_start=self.window_start, window_size=self.window_size,
                            near_dup_cosine=self.near_dup_cosine, near_dup_jaccard=self.near_dup_jaccard)

    def validate(self) -> None:
        if self.negatives not in NEGATIVE_MODES:
            raise ValueError(f"--negatives must be one of {NEGATIVE_MODES}, not {self.negatives!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ValueError(f"--pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if not self.data:
            raise ValueError("give training data: --data PATH")
        if not self.retriever:
            raise ValueError("give the frozen retriever: --retriever EXPORTED_DIR")
        if self.negatives_per_query < 1:
            raise ValueError("--negatives-per-query must be at least 1")
        if self.negatives == "random" and self.batch_size < 2:
            raise ValueError("in-batch random negatives need --batch-size of at least 2")
        if self.temperature <= 0:
            raise ValueError("--temperature must be positive")
        if self.max_length < 16 or self.query_max_length < 1:
            raise ValueError("--max-length must be at least 16 and --query-max-length at least 1")
        self.mining.validate()


@dataclass
class RankerTrainResult:
    best: Path
    best_step: int
    best_dev_mrr: float | None
    steps: int
    seconds: float
    history: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Data


def load_ranker_pairs(cfg: RankerTrainConfig) -> list[Pair]:
    pairs: list[Pair] = []
    for path in cfg.data:
        pairs.extend(load_pairs(path))
    pairs = clean_pairs(pairs, min_query_words=cfg.min_query_words, dedupe=cfg.dedupe)
    if cfg.max_pairs is not None and len(pairs) > cfg.max_pairs:
        pairs = random.Random(cfg.seed).sample(pairs, cfg.max_pairs)
    return pairs


def build_groups(pairs: Sequence[Pair], batch: Sequence[int], negatives: Sequence[Sequence[int]]
                 ) -> tuple[list[str], list[str], int]:
    """Flattened (query, code) pairs, each query's gold first; and the group size (1 + negatives).

    Queries with fewer negatives than the largest group are padded by repeating their last
    negative (a repeated negative only re-weights it; it never becomes a positive)."""
    width = 1 + max((len(n) for n in negatives), default=0)
    queries: list[str] = []
    codes: list[str] = []
    for i, negs in zip(batch, negatives, strict=True):
        group = [i, *negs]
        group += [group[-1]] * (width - len(group))
        queries += [pairs[i].query] * width
        codes += [pairs[j].code for j in group]
    return queries, codes, width


def group_loss(scores: torch.Tensor, width: int, temperature: float) -> torch.Tensor:
    """Softmax cross-entropy of each group's first (gold) score among its group."""
    logits = scores.float().view(-1, width) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return nn.functional.cross_entropy(logits, target)


# ---------------------------------------------------------------------------------------------
# Re-ranking evaluation (also used by bench/ranker.py)


@dataclass
class RerankSet:
    """A BEIR set ranked once by the retriever: each query's top candidates and, for each relevant
    document, its 1-based rank in the retriever's full ranking (re-ranking the top K moves nothing
    below K, so these ranks are all the metrics need)."""

    name: str
    query_ids: list[str]
    queries: list[str]
    doc_ids: list[str]
    docs: list[str]
    top: np.ndarray  # [queries, depth] document columns, retriever order
    relevant: list[dict[int, tuple[int, float]]]  # per query: document column -> (rank, gain)

    def candidates(self, q: int, k: int) -> list[str]:
        return [self.docs[j] for j in self.top[q, :k].tolist()]


def retrieve_set(data: BeirData, retriever: TextEncoder, *, key: str, depth: int = 50,
                 cache_dir: str | Path | None = None, block: int = 256) -> RerankSet:
    q_ids = list(data.queries)
    doc_ids = list(data.corpus)
    queries = [data.queries[q] for q in q_ids]
    docs = [data.corpus[d] for d in doc_ids]
    d_vecs = embed_cached(retriever, docs, kind="documents", key=key, cache_dir=cache_dir)
    q_vecs = embed_cached(retriever, queries, kind="queries", key=key, cache_dir=cache_dir)
    depth = min(depth, len(doc_ids))
    col = {d: i for i, d in enumerate(doc_ids)}
    tops: list[np.ndarray] = []
    relevant: list[dict[int, tuple[int, float]]] = []
    for start in range(0, len(q_ids), block):
        scores = (q_vecs[start : start + block] @ d_vecs.T).astype(np.float32)
        part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        tops.append(np.take_along_axis(part, order, axis=1))
        for row in range(scores.shape[0]):
            rel = data.qrels[q_ids[start + row]]
            s = scores[row]
            relevant.append({col[d]: (1 + int((s > s[col[d]]).sum()), float(g)) for d, g in rel.items()})
    top = np.concatenate(tops) if tops else np.zeros((0, depth), dtype=np.int64)
    return RerankSet(data.name, q_ids, queries, doc_ids, docs, top, relevant)


def reranked_ranks(rset: RerankSet, q: int, ranker_scores: np.ndarray | None, k: int
                   ) -> dict[int, tuple[int, float]]:
    """Ranks of query ``q``'s relevant documents after its top ``k`` are sorted by ranker score
    (``ranker_scores[i]`` scores ``rset.top[q, i]``; retriever order breaks ties); below ``k``
    nothing moves."""
    rel = rset.relevant[q]
    k = min(k, rset.top.shape[1])
    if ranker_scores is None or k <= 1:
        return rel
    cols = rset.top[q, :k].tolist()
    order = sorted(range(k), key=lambda i: (-float(ranker_scores[i]), i))
    position = {cols[i]: r + 1 for r, i in enumerate(order)}
    return {c: (position[c], g) if c in position else (rank, g) for c, (rank, g) in rel.items()}


def metrics_from_ranks(ranked: Sequence[dict[int, tuple[int, float]]], ks: Sequence[int] = (1, 5, 10, 100)
                       ) -> dict[str, float]:
    """MRR, NDCG@10 and Recall@k (``evaluate.retrieval_metrics``' definitions) from relevant ranks."""
    import math

    names = ("mrr", "ndcg@10", *(f"recall@{k}" for k in ks))
    if not ranked:
        return dict.fromkeys(names, float("nan"))
    totals = dict.fromkeys(names, 0.0)
    for rel in ranked:
        ranks = sorted(r for r, _ in rel.values())
        totals["mrr"] += 1.0 / ranks[0]
        dcg = sum(g / math.log2(r + 1) for r, g in rel.values() if r <= 10)
        ideal = sorted((g for _, g in rel.values()), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        totals["ndcg@10"] += dcg / idcg if idcg else 0.0
        for k in ks:
            totals[f"recall@{k}"] += sum(1 for r in ranks if r <= k) / len(ranks)
    return {name: value / len(ranked) for name, value in totals.items()}


def rerank_metrics(rset: RerankSet, ranker_scores: np.ndarray | None, k: int) -> dict[str, float]:
    """Metrics of the retriever alone (``ranker_scores`` None or ``k`` ≤ 1) or re-ranked at ``k``;
    ``ranker_scores[q, i]`` scores ``rset.top[q, i]``."""
    return metrics_from_ranks([
        reranked_ranks(rset, q, None if ranker_scores is None else ranker_scores[q], k)
        for q in range(len(rset.query_ids))
    ])


def score_candidates(model: CrossEncoder, rset: RerankSet, k: int, batch_size: int = 128,
                     amp: bool = True) -> np.ndarray:
    """Ranker scores [queries, k] of each query's top ``k`` candidates."""
    k = min(k, rset.top.shape[1])
    queries: list[str] = []
    docs: list[str] = []
    for q in range(len(rset.queries)):
        queries += [rset.queries[q]] * k
        docs += rset.candidates(q, k)
    flat = model.score(queries, docs, batch_size=batch_size, amp=amp).numpy()
    return flat.reshape(len(rset.queries), k)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _prune_checkpoints(out: Path, keep: Path) -> None:
    for d in out.glob("step-*"):
        if d.is_dir() and d.resolve() != keep.resolve():
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Training


def train_ranker(cfg: RankerTrainConfig) -> RankerTrainResult:
    cfg.validate()
    started = time.perf_counter()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_amp = device.type == "cuda" if cfg.amp is None else cfg.amp and device.type == "cuda"
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cfg.mining_cache) if cfg.mining_cache else out / "cache"
    seed_everything(cfg.seed)

    # --- data and negatives
    pairs = load_ranker_pairs(cfg)
    if len(pairs) < cfg.batch_size:
        raise ValueError(f"{len(pairs)} training pairs: fewer than one batch of {cfg.batch_size}")
    codes = [p.code for p in pairs]
    duplicates = DuplicateFilter(codes, queries=[p.query for p in pairs], near_dup_cosine=cfg.near_dup_cosine,
                                 near_dup_jaccard=cfg.near_dup_jaccard)
    retriever: TextEncoder | None = None
    key = retriever_key(cfg.retriever)
    mined: MinedNegatives | None = None
    metrics = MetricsLog(out / "metrics.jsonl")
    if cfg.negatives == "hard":
        t0 = time.perf_counter()
        retriever = open_retriever(cfg.retriever, device=cfg.device)
        mined = mine_for_pairs(pairs, cfg.retriever, cfg.mining, cache_dir=cache_dir,
                               negatives_file=out / NEGATIVES_FILE, encoder=retriever)
        stats = mined.stats()
        metrics.write({"type": "mining", "seconds": time.perf_counter() - t0, **stats})
        print(f"mined hard negatives for {len(pairs)} pairs in {time.perf_counter() - t0:.0f} s: gold rank "
              f"median {stats['gold_rank_median']:.0f}, gold@1 {stats['gold_at_1']:.2f}, "
              f"{int(stats['duplicates_skipped'])} duplicates skipped", file=sys.stderr)

    # --- dev sets, ranked once by the frozen retriever
    dev_sets: list[RerankSet] = []
    if cfg.dev:
        retriever = retriever or open_retriever(cfg.retriever, device=cfg.device)
        for d in cfg.dev:
            data = load_beir(d, max_queries=cfg.dev_max_queries, max_corpus=cfg.dev_max_corpus, seed=cfg.seed)
            dev_sets.append(retrieve_set(data, retriever, key=key, depth=cfg.dev_rerank_k, cache_dir=cache_dir))
    retriever = None  # free the retriever's memory before training

    # --- model and optimisation
    steps_per_epoch = len(pairs) // cfg.batch_size
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    resume_from = find_resume(cfg.resume, prefix="step", what="ranker checkpoint") if cfg.resume else None
    model = load_cross_encoder(str(resume_from) if resume_from else cfg.model, device=device,
                               max_length=cfg.max_length, query_max_length=cfg.query_max_length,
                               pooling=None if resume_from else cfg.pooling, seed=cfg.seed)
    opt = Optimization.build(model, cfg.lr, cfg.weight_decay, cfg.warmup_ratio, total_steps, use_amp)

    step, start_epoch, skip_batches = 0, 0, 0
    best_mrr: float | None = None
    best_step = 0
    if resume_from is not None:
        state, step, start_epoch, skip_batches = opt.restore(resume_from, steps_per_epoch)
        best_mrr, best_step = state.get("best_mrr"), int(state.get("best_step", 0))
        log.info("resuming from %s at step %d", resume_from, step)
    torch.manual_seed(cfg.seed + step)

    settings = {
        "pairs": len(pairs), "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "warmup_steps": opt.warmup_steps, "group_size": 1 + cfg.negatives_per_query, "device": str(device),
        "amp": use_amp, "torch": torch.__version__, "retriever_key": key,
        "pooling": model.settings.pooling, "max_length": model.settings.max_length,
    }
    metrics.write({"type": "config", "config": dataclasses.asdict(cfg), **settings})
    print(f"training a ranker on {len(pairs)} pairs, {steps_per_epoch} steps/epoch × {cfg.epochs} epochs "
          f"(max {total_steps} steps), {cfg.batch_size} queries × (1 + {cfg.negatives_per_query}) "
          f"{cfg.negatives} negatives per step, device {device}" + (" (AMP)" if use_amp else ""),
          file=sys.stderr)

    bar: Any = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)

    history: list[dict[str, Any]] = []
    last_ckpt: Path | None = None
    loss_ema: float | None = None
    window_pairs, window_t, pairs_per_s = 0, time.perf_counter(), 0.0

    def checkpoint(epoch: int, done_in_epoch: int) -> None:
        nonlocal best_mrr, best_step, last_ckpt
        record: dict[str, Any] = {"type": "eval", "step": step, "epoch": epoch + 1,
                                  "elapsed_s": time.perf_counter() - started}
        dev_results: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        for rset in dev_sets:
            ranker_scores = score_candidates(model, rset, cfg.dev_rerank_k, cfg.eval_batch_size)
            dev_results[rset.name] = rerank_metrics(rset, ranker_scores, cfg.dev_rerank_k)
        dev_mrr = (sum(r["mrr"] for r in dev_results.values()) / len(dev_results)) if dev_results else None
        record.update(dev=dev_results, dev_mrr=dev_mrr, eval_seconds=time.perf_counter() - t0)
        ckpt = out / f"step-{step}"
        info = {"training": {**settings, "step": step, "epoch": epoch + 1, "negatives": cfg.negatives,
                             "window_start": cfg.window_start, "window_size": cfg.window_size,
                             "temperature": cfg.temperature, "dev": dev_results, "dev_mrr": dev_mrr,
                             "dev_rerank_k": cfg.dev_rerank_k, "base_model": cfg.model,
                             "retriever": cfg.retriever}}
        model.save(ckpt, extra=info)
        improved = dev_mrr is not None and (best_mrr is None or dev_mrr > best_mrr)
        if improved:
            best_mrr, best_step = dev_mrr, step
        opt.save(ckpt / STATE_FILE, step=step, epoch=epoch, batches_done=done_in_epoch, best_mrr=best_mrr,
                 best_step=best_step, config=dataclasses.asdict(cfg))
        if improved or not dev_sets:
            if not dev_sets:
                best_step = step
            copy_checkpoint(ckpt, out / "best")
        _prune_checkpoints(out, keep=ckpt)
        last_ckpt = ckpt
        record.update(best_step=best_step, best_dev_mrr=best_mrr, checkpoint=str(ckpt))
        metrics.write(record)
        history.append(record)
        if dev_results:
            summary = ", ".join(f"{name} MRR@rerank{cfg.dev_rerank_k} {r['mrr']:.4f}"
                                for name, r in dev_results.items())
            print(f"\nstep {step}: {summary}; best step {best_step}", file=sys.stderr)

    if step == 0 and dev_sets and resume_from is None:
        base = {r.name: rerank_metrics(r, None, 0) for r in dev_sets}
        metrics.write({"type": "eval-retriever", "dev": base,
                       "dev_mrr": sum(m["mrr"] for m in base.values()) / len(base)})
        print("retriever alone: " + ", ".join(f"{n} MRR {m['mrr']:.4f}" for n, m in base.items()), file=sys.stderr)

    model.train()
    epoch = start_epoch
    done_in_epoch = skip_batches
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total_steps:
            break
        batches = epoch_batches(len(pairs), cfg.batch_size, cfg.seed, epoch)
        first = skip_batches if epoch == start_epoch else 0
        done_in_epoch = first
        for b_idx in range(first, len(batches)):
            if step >= total_steps:
                break
            batch = batches[b_idx]
            rng = random.Random(cfg.seed * 1_000_003 + step)
            negatives = sample_negatives(batch, cfg.negatives_per_query, rng, mode=cfg.negatives,
                                         corpus_size=len(pairs), duplicates=duplicates, mined=mined)
            q_texts, c_texts, width = build_groups(pairs, batch, negatives)
            feeds = {k: v.to(device) for k, v in model.encode(q_texts, c_texts).items()}
            with autocast(device):
                scores = model(**feeds)
            loss = group_loss(scores, width, cfg.temperature)
            opt.step(loss, model.parameters(), cfg.max_grad_norm)
            step += 1
            done_in_epoch = b_idx + 1

            loss_value = float(loss.detach())
            loss_ema = loss_value if loss_ema is None else 0.9 * loss_ema + 0.1 * loss_value
            window_pairs += len(q_texts)
            now = time.perf_counter()
            if now - window_t >= 1.0 or step % cfg.log_every == 0:
                pairs_per_s = window_pairs / max(now - window_t, 1e-9)
                window_pairs, window_t = 0, now
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_ema:.4f}", pairs_s=f"{pairs_per_s:.1f}", epoch=epoch + 1)
            if step % cfg.log_every == 0 or step == 1:
                metrics.write({"type": "train", "step": step, "epoch": epoch + 1, "loss": loss_value,
                               "loss_ema": loss_ema, "lr": opt.lr,
                               "pairs_per_s": pairs_per_s, "elapsed_s": time.perf_counter() - started})
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                checkpoint(epoch, done_in_epoch)
                model.train()
        if step < total_steps:  # end of a full epoch
            checkpoint(epoch, done_in_epoch)
            model.train()
    if last_ckpt is None or last_ckpt.name != f"step-{step}":
        checkpoint(max(epoch, start_epoch), done_in_epoch)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    metrics.write({"type": "done", "steps": step, "seconds": seconds, "best_step": best_step,
                   "best_dev_mrr": best_mrr})
    metrics.close()
    best_cfg = out / "best" / "codesearch_ranker.json"
    if best_cfg.is_file():
        data = json.loads(best_cfg.read_text(encoding="utf-8"))
        data.setdefault("training", {})["seconds_total"] = seconds
        best_cfg.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return RankerTrainResult(best=out / "best", best_step=best_step, best_dev_mrr=best_mrr, steps=step,
                             seconds=seconds, history=history)
