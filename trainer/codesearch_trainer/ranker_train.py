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
import logging
import random
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
from .ranker_checkpoints import RankerCheckpoints
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
from .train import LossMeter, MetricsLog, Optimization, epoch_batches, find_resume, seed_everything

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
# Preparation: training data, negatives, dev sets; model, optimiser and resume point


@dataclass(frozen=True)
class RankerTrainingData:
    """What the steps and the dev evaluations draw on, prepared once before the model is loaded."""

    pairs: list[Pair]
    duplicates: DuplicateFilter
    mined: MinedNegatives | None  # hard negatives only
    dev_sets: list[RerankSet]  # ranked once by the frozen retriever
    retriever_key: str


def load_training_pairs(cfg: RankerTrainConfig) -> list[Pair]:
    pairs = load_ranker_pairs(cfg)
    if len(pairs) < cfg.batch_size:
        raise ValueError(f"{len(pairs)} training pairs: fewer than one batch of {cfg.batch_size}")
    return pairs


def prepare_training_data(cfg: RankerTrainConfig, pairs: list[Pair], out: Path, metrics: MetricsLog
                          ) -> RankerTrainingData:
    """Duplicates, hard negatives (``cfg.negatives == "hard"``) and the dev sets; the retriever is
    opened only when needed and released on return, before training."""
    cache_dir = Path(cfg.mining_cache) if cfg.mining_cache else out / "cache"
    duplicates = DuplicateFilter([p.code for p in pairs], queries=[p.query for p in pairs],
                                 near_dup_cosine=cfg.near_dup_cosine, near_dup_jaccard=cfg.near_dup_jaccard)
    key = retriever_key(cfg.retriever)
    retriever: TextEncoder | None = None
    mined: MinedNegatives | None = None
    if cfg.negatives == "hard":
        retriever, mined = _mine_hard_negatives(cfg, pairs, out, cache_dir, metrics)
    dev_sets: list[RerankSet] = []
    if cfg.dev:
        retriever = retriever or open_retriever(cfg.retriever, device=cfg.device)
        dev_sets = [retrieve_set(load_beir(d, max_queries=cfg.dev_max_queries, max_corpus=cfg.dev_max_corpus,
                                           seed=cfg.seed),
                                 retriever, key=key, depth=cfg.dev_rerank_k, cache_dir=cache_dir)
                    for d in cfg.dev]
    return RankerTrainingData(pairs, duplicates, mined, dev_sets, key)


def _mine_hard_negatives(cfg: RankerTrainConfig, pairs: list[Pair], out: Path, cache_dir: Path,
                         metrics: MetricsLog) -> tuple[TextEncoder, MinedNegatives]:
    t0 = time.perf_counter()
    retriever = open_retriever(cfg.retriever, device=cfg.device)
    mined = mine_for_pairs(pairs, cfg.retriever, cfg.mining, cache_dir=cache_dir,
                           negatives_file=out / NEGATIVES_FILE, encoder=retriever)
    stats = mined.stats()
    metrics.write({"type": "mining", "seconds": time.perf_counter() - t0, **stats})
    print(f"mined hard negatives for {len(pairs)} pairs in {time.perf_counter() - t0:.0f} s: gold rank "
          f"median {stats['gold_rank_median']:.0f}, gold@1 {stats['gold_at_1']:.2f}, "
          f"{int(stats['duplicates_skipped'])} duplicates skipped", file=sys.stderr)
    return retriever, mined


@dataclass(frozen=True)
class StepPlan:
    steps_per_epoch: int
    total_steps: int  # over all epochs, capped by --max-steps

    @classmethod
    def for_run(cls, cfg: RankerTrainConfig, n_pairs: int) -> StepPlan:
        steps_per_epoch = n_pairs // cfg.batch_size
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        return cls(steps_per_epoch, total_steps)


@dataclass(frozen=True)
class StartPoint:
    """Where the steps start: all zero for a fresh run, a checkpoint's saved progress on ``--resume``."""

    checkpoint: Path | None = None
    step: int = 0
    epoch: int = 0
    batches_done: int = 0  # of ``epoch``
    best_mrr: float | None = None
    best_step: int = 0


def build_model(cfg: RankerTrainConfig, device: torch.device, use_amp: bool, plan: StepPlan
                ) -> tuple[CrossEncoder, Optimization, StartPoint]:
    """The ranker and its optimisation, fresh from ``cfg.model`` or restored from ``cfg.resume``."""
    resume_from = find_resume(cfg.resume, prefix="step", what="ranker checkpoint") if cfg.resume else None
    model = load_cross_encoder(str(resume_from) if resume_from else cfg.model, device=device,
                               max_length=cfg.max_length, query_max_length=cfg.query_max_length,
                               pooling=None if resume_from else cfg.pooling, seed=cfg.seed)
    opt = Optimization.build(model, cfg.lr, cfg.weight_decay, cfg.warmup_ratio, plan.total_steps, use_amp)
    start = StartPoint()
    if resume_from is not None:
        state, step, epoch, batches_done = opt.restore(resume_from, plan.steps_per_epoch)
        start = StartPoint(resume_from, step, epoch, batches_done, state.get("best_mrr"),
                           int(state.get("best_step", 0)))
        log.info("resuming from %s at step %d", resume_from, step)
    torch.manual_seed(cfg.seed + start.step)
    return model, opt, start


# ---------------------------------------------------------------------------------------------
# Training


class RankerTrainer:
    """The step loop over epochs, with the periodic dev evaluation and checkpoint."""

    def __init__(self, cfg: RankerTrainConfig, data: RankerTrainingData, model: CrossEncoder, opt: Optimization,
                 *, plan: StepPlan, start: StartPoint, device: torch.device, metrics: MetricsLog,
                 settings: dict[str, Any], started: float) -> None:
        self.cfg, self.data, self.model, self.opt = cfg, data, model, opt
        self.plan, self.start, self.device = plan, start, device
        self.metrics, self.settings, self.started = metrics, settings, started
        self.checkpoints = RankerCheckpoints(Path(cfg.output), best_mrr=start.best_mrr, best_step=start.best_step)
        self.history: list[dict[str, Any]] = []
        self.step, self.epoch, self.done_in_epoch = start.step, start.epoch, start.batches_done
        self.meter = LossMeter()
        self.bar: Any = None

    def evaluate_retriever(self) -> None:
        """The dev metrics of the retriever alone, the baseline the ranker has to beat."""
        base = {r.name: rerank_metrics(r, None, 0) for r in self.data.dev_sets}
        self.metrics.write({"type": "eval-retriever", "dev": base,
                            "dev_mrr": sum(m["mrr"] for m in base.values()) / len(base)})
        print("retriever alone: " + ", ".join(f"{n} MRR {m['mrr']:.4f}" for n, m in base.items()), file=sys.stderr)

    def run(self) -> None:
        """Train up to ``plan.total_steps``, checkpointing every ``eval_every`` steps, at the end of
        each full epoch, and at the end, each step saved once. A checkpoint records the epoch its
        last step belongs to, so that a run stopped by ``--max-steps`` resumes where it stopped."""
        self.model.train()
        for epoch in range(self.start.epoch, self.cfg.epochs):
            if self.step >= self.plan.total_steps:
                break
            self.epoch = epoch
            self._run_epoch(epoch, self.start.batches_done if epoch == self.start.epoch else 0)
            if self.step < self.plan.total_steps and not self.checkpoints.holds(self.step):  # end of an epoch
                self.checkpoint(epoch, self.done_in_epoch)
                self.model.train()
        if not self.checkpoints.holds(self.step):
            self.checkpoint(self.epoch, self.done_in_epoch)

    def _run_epoch(self, epoch: int, first: int) -> None:
        batches = epoch_batches(len(self.data.pairs), self.cfg.batch_size, self.cfg.seed, epoch)
        self.done_in_epoch = first
        for b_idx in range(first, len(batches)):
            if self.step >= self.plan.total_steps:
                break
            loss_value, n_pairs = self._train_step(batches[b_idx])
            self.step += 1
            self.done_in_epoch = b_idx + 1
            self._log_step(epoch, loss_value, n_pairs)
            every = self.cfg.eval_every
            if every and self.step % every == 0 and self.step < self.plan.total_steps:
                self.checkpoint(epoch, self.done_in_epoch)
                self.model.train()

    def _train_step(self, batch: list[int]) -> tuple[float, int]:
        """One optimiser step on ``batch``; returns its loss and the number of (query, code) pairs scored."""
        cfg, data = self.cfg, self.data
        rng = random.Random(cfg.seed * 1_000_003 + self.step)
        negatives = sample_negatives(batch, cfg.negatives_per_query, rng, mode=cfg.negatives,
                                     corpus_size=len(data.pairs), duplicates=data.duplicates, mined=data.mined)
        q_texts, c_texts, width = build_groups(data.pairs, batch, negatives)
        feeds = {k: v.to(self.device) for k, v in self.model.encode(q_texts, c_texts).items()}
        with autocast(self.device):
            scores = self.model(**feeds)
        loss = group_loss(scores, width, cfg.temperature)
        self.opt.step(loss, self.model.parameters(), cfg.max_grad_norm)
        return float(loss.detach()), len(q_texts)

    def _log_step(self, epoch: int, loss_value: float, n_pairs: int) -> None:
        meter, step = self.meter, self.step
        meter.update(loss_value, n_pairs, step, self.cfg.log_every)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{meter.loss_ema:.4f}", pairs_s=f"{meter.pairs_per_s:.1f}", epoch=epoch + 1)
        if step % self.cfg.log_every == 0 or step == 1:
            self.metrics.write({"type": "train", "step": step, "epoch": epoch + 1, "loss": loss_value,
                                "loss_ema": meter.loss_ema, "lr": self.opt.lr, "pairs_per_s": meter.pairs_per_s,
                                "elapsed_s": time.perf_counter() - self.started})

    def _rerank_dev(self) -> dict[str, dict[str, float]]:
        k = self.cfg.dev_rerank_k
        return {rset.name: rerank_metrics(rset, score_candidates(self.model, rset, k, self.cfg.eval_batch_size), k)
                for rset in self.data.dev_sets}

    def checkpoint(self, epoch: int, batches_done: int) -> None:
        """Evaluate on dev, save ``step-N`` (and ``best`` when it improved), log and print the result."""
        cfg, step = self.cfg, self.step
        record: dict[str, Any] = {"type": "eval", "step": step, "epoch": epoch + 1,
                                  "elapsed_s": time.perf_counter() - self.started}
        t0 = time.perf_counter()
        dev_results = self._rerank_dev()
        dev_mrr = (sum(r["mrr"] for r in dev_results.values()) / len(dev_results)) if dev_results else None
        record.update(dev=dev_results, dev_mrr=dev_mrr, eval_seconds=time.perf_counter() - t0)
        info = {"training": {**self.settings, "step": step, "epoch": epoch + 1, "negatives": cfg.negatives,
                             "window_start": cfg.window_start, "window_size": cfg.window_size,
                             "temperature": cfg.temperature, "dev": dev_results, "dev_mrr": dev_mrr,
                             "dev_rerank_k": cfg.dev_rerank_k, "base_model": cfg.model,
                             "retriever": cfg.retriever}}
        ckpt = self.checkpoints.save(self.model, self.opt, step=step, epoch=epoch, batches_done=batches_done,
                                     dev_mrr=dev_mrr, info=info, config=dataclasses.asdict(cfg))
        best_step = self.checkpoints.best_step
        record.update(best_step=best_step, best_dev_mrr=self.checkpoints.best_mrr, checkpoint=str(ckpt))
        self.metrics.write(record)
        self.history.append(record)
        if dev_results:
            summary = ", ".join(f"{name} MRR@rerank{cfg.dev_rerank_k} {r['mrr']:.4f}"
                                for name, r in dev_results.items())
            print(f"\nstep {step}: {summary}; best step {best_step}", file=sys.stderr)


def _run_settings(cfg: RankerTrainConfig, data: RankerTrainingData, plan: StepPlan, model: CrossEncoder,
                  opt: Optimization, device: torch.device, use_amp: bool) -> dict[str, Any]:
    """The run's derived settings, logged in the config record and saved with each checkpoint."""
    return {
        "pairs": len(data.pairs), "steps_per_epoch": plan.steps_per_epoch, "total_steps": plan.total_steps,
        "warmup_steps": opt.warmup_steps, "group_size": 1 + cfg.negatives_per_query, "device": str(device),
        "amp": use_amp, "torch": torch.__version__, "retriever_key": data.retriever_key,
        "pooling": model.settings.pooling, "max_length": model.settings.max_length,
    }


def _announce(cfg: RankerTrainConfig, plan: StepPlan, n_pairs: int, device: torch.device, use_amp: bool) -> None:
    print(f"training a ranker on {n_pairs} pairs, {plan.steps_per_epoch} steps/epoch × {cfg.epochs} epochs "
          f"(max {plan.total_steps} steps), {cfg.batch_size} queries × (1 + {cfg.negatives_per_query}) "
          f"{cfg.negatives} negatives per step, device {device}" + (" (AMP)" if use_amp else ""),
          file=sys.stderr)


def _progress_bar(cfg: RankerTrainConfig, plan: StepPlan, start: StartPoint) -> Any:
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=plan.total_steps, initial=start.step, unit="step", dynamic_ncols=True, file=sys.stderr)


def train_ranker(cfg: RankerTrainConfig) -> RankerTrainResult:
    cfg.validate()
    started = time.perf_counter()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_amp = device.type == "cuda" if cfg.amp is None else cfg.amp and device.type == "cuda"
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)

    pairs = load_training_pairs(cfg)
    metrics = MetricsLog(out / "metrics.jsonl")
    data = prepare_training_data(cfg, pairs, out, metrics)
    plan = StepPlan.for_run(cfg, len(pairs))
    model, opt, start = build_model(cfg, device, use_amp, plan)
    settings = _run_settings(cfg, data, plan, model, opt, device, use_amp)
    metrics.write({"type": "config", "config": dataclasses.asdict(cfg), **settings})
    _announce(cfg, plan, len(pairs), device, use_amp)

    trainer = RankerTrainer(cfg, data, model, opt, plan=plan, start=start, device=device, metrics=metrics,
                            settings=settings, started=started)
    trainer.bar = _progress_bar(cfg, plan, start)
    if start.step == 0 and data.dev_sets and start.checkpoint is None:
        trainer.evaluate_retriever()
    trainer.run()
    if trainer.bar is not None:
        trainer.bar.close()
    seconds = time.perf_counter() - started
    best = trainer.checkpoints
    metrics.write({"type": "done", "steps": trainer.step, "seconds": seconds, "best_step": best.best_step,
                   "best_dev_mrr": best.best_mrr})
    metrics.close()
    best.record_total_seconds(seconds)
    return RankerTrainResult(best=out / "best", best_step=best.best_step, best_dev_mrr=best.best_mrr,
                             steps=trainer.step, seconds=seconds, history=trainer.history)
