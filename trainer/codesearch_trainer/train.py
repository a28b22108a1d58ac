"""The training loop: contrastive fine-tuning of an encoder on (query, code) pairs.

AdamW (no decay on biases and LayerNorm) with linear warm-up and linear decay, gradient clipping,
seeds, bf16/fp16 autocast on CUDA, checkpoints each epoch into ``OUTPUT/epoch-N`` (an HF folder
plus ``training_state.pt`` for ``--resume``; ``--save-every`` also writes it mid-epoch, see
``train_checkpoints``), ``OUTPUT/best`` selected on the mean dev MRR (the last checkpoint without
dev data), ``OUTPUT/metrics.jsonl``, a tqdm bar with loss and pairs/s, and
DistributedDataParallel under torchrun: ``batch_size`` is per process, each query meets the
codes of the whole global batch, and Soft-InfoNCE weights are computed over the global batch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from .data import Pair, clean_pairs, load_pairs, mine_workspace
from .distributed import (
    DistInfo,
    barrier,
    cleanup_distributed,
    gather_no_grad,
    gather_with_grad,
    init_distributed,
    mean_across,
)
from .estimators import PAPER_DEFAULTS, Estimator, build_estimator
from .losses import DEFAULT_MIN_WEIGHT, DEFAULT_SCALE, DistillationLoss, InfoNCELoss, SoftInfoNCELoss
from .model import DEFAULT_MODEL, Encoder, autocast, load_encoder, read_settings, resolve_model
from .student import Teacher
from .train_checkpoints import STATE_FILE, EncoderCheckpoints
from .train_checkpoints import copy_checkpoint as copy_checkpoint  # imported from here by ranker_checkpoints

log = logging.getLogger(__name__)

LOSSES = ("infonce", "soft-infonce")
ESTIMATORS = tuple(PAPER_DEFAULTS)


@dataclass
class TrainConfig:
    output: str
    data: list[str] = field(default_factory=list)
    from_workspace: list[str] = field(default_factory=list)
    dev: list[str] = field(default_factory=list)
    model: str = DEFAULT_MODEL
    loss: str = "infonce"
    weights: str = "bm25"
    estimator_model: str | None = None
    alpha: float | None = None  # None: the paper's value for the estimator
    beta: float | None = None
    t: float | None = None
    scale: float = DEFAULT_SCALE
    min_weight: float = DEFAULT_MIN_WEIGHT
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32  # per process
    max_length: int = 256  # code side
    query_max_length: int = 64
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 42
    amp: bool | None = None  # None: on CUDA only
    device: str | None = None
    max_pairs: int | None = None  # seeded random subset of the cleaned training pairs
    min_query_words: int = 1
    dedupe: bool = True
    dev_max_queries: int | None = None
    dev_max_corpus: int | None = None
    eval_batch_size: int = 64
    resume: str | None = None
    log_every: int = 10
    save_every: int | None = None  # also checkpoint (resumable, no evaluation) every N steps
    progress: bool = True
    simcse: bool = False  # unsupervised SimCSE: (query, query) pairs, InfoNCE, dropout as noise
    teacher: str | None = None  # distillation from this frozen encoder (see losses.DistillationLoss)
    contrastive_weight: float = 1.0  # with a teacher: weight of InfoNCE on the labelled pairs
    distill_kd: float = 1.0  # with a teacher: KL to the teacher's in-batch score distribution
    distill_regression: float = 1.0  # with a teacher: squared distance to the teacher's embeddings

    def resolved_weights(self) -> tuple[float, float, float]:
        d = PAPER_DEFAULTS[self.weights]
        return (
            d.alpha if self.alpha is None else self.alpha,
            d.beta if self.beta is None else self.beta,
            d.t if self.t is None else self.t,
        )

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {LOSSES}, not {self.loss!r}")
        if self.weights not in ESTIMATORS:
            raise ValueError(f"--weights must be one of {ESTIMATORS}, not {self.weights!r}")
        if not self.data and not self.from_workspace:
            raise ValueError("give training data: --data PATH and/or --from-workspace PATH")
        if self.batch_size < 2:
            raise ValueError("--batch-size must be at least 2 (in-batch negatives)")
        if self.loss == "soft-infonce" and self.weights == "trained" and not self.estimator_model:
            raise ValueError("--weights trained needs --estimator-model (an InfoNCE-trained checkpoint)")
        if self.teacher and self.loss != "infonce":
            raise ValueError("--teacher combines distillation with InfoNCE: use --loss infonce")
        if self.teacher and min(self.contrastive_weight, self.distill_kd, self.distill_regression) < 0:
            raise ValueError("--contrastive-weight, --distill-kd and --distill-regression must be ≥ 0")


@dataclass
class TrainResult:
    best: Path
    best_epoch: int
    best_dev_mrr: float | None
    steps: int
    seconds: float
    history: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover
        pass


def load_training_pairs(cfg: TrainConfig) -> list[Pair]:
    pairs: list[Pair] = []
    for path in cfg.data:
        pairs.extend(load_pairs(path))
    for root in cfg.from_workspace:
        mined = mine_workspace(root)
        log.info("mined %d pairs from %s", len(mined), root)
        pairs.extend(mined)
    if cfg.simcse:
        pairs = [Pair(query=p.query, code=p.query, language=p.language) for p in pairs]
    pairs = clean_pairs(pairs, min_query_words=cfg.min_query_words, dedupe=cfg.dedupe)
    if cfg.max_pairs is not None and len(pairs) > cfg.max_pairs:
        pairs = random.Random(cfg.seed).sample(pairs, cfg.max_pairs)
    return pairs


def epoch_batches(n_pairs: int, global_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled global batches of pair indices for one epoch (incomplete last batch dropped)."""
    order = list(range(n_pairs))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + global_batch] for i in range(0, n_pairs - global_batch + 1, global_batch)]


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


@dataclass
class Optimization:
    """AdamW with linear warm-up/decay and the AMP scaler: built, stepped, saved and resumed together."""

    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    warmup_steps: int

    @classmethod
    def build(cls, model: nn.Module, lr: float, weight_decay: float, warmup_ratio: float, total_steps: int,
              use_amp: bool) -> Optimization:
        optimizer = make_optimizer(model, lr, weight_decay)
        warmup = round(warmup_ratio * total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup, total_steps))
        amp_fp16 = use_amp and not torch.cuda.is_bf16_supported()
        return cls(optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=amp_fp16), warmup)

    def step(self, loss: Tensor, params: Iterable[nn.Parameter], max_grad_norm: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, path: Path, **progress: Any) -> None:
        """The resume state: optimisation, random generators, and the caller's progress fields."""
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(), **progress,
                    "python_rng": random.getstate(), "torch_rng": torch.get_rng_state()}, path)

    def restore(self, checkpoint: Path, steps_per_epoch: int) -> tuple[dict[str, Any], int, int, int]:
        """Load a saved state: (the state, step, epoch to start in, batches of it already done)."""
        state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        step, start_epoch, skip_batches = int(state["step"]), int(state["epoch"]), int(state["batches_done"])
        if skip_batches >= steps_per_epoch:
            start_epoch, skip_batches = start_epoch + 1, 0
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        return state, step, start_epoch, skip_batches


class DualEncoder(nn.Module):
    """Encodes queries and codes in one forward call (one DDP forward per step)."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, queries: dict[str, Tensor], codes: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.encoder(**queries), self.encoder(**codes)


class MetricsLog:
    def __init__(self, path: Path | None) -> None:
        self.fh: TextIO | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self.fh:
            self.fh.write(json.dumps(record, sort_keys=True) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh:
            self.fh.close()


def find_resume(path: str, prefix: str = "epoch", what: str = "checkpoint") -> Path:
    """A ``PREFIX-N`` checkpoint, or the latest one inside a training output folder."""
    p = Path(path)
    if (p / STATE_FILE).is_file():
        return p
    found = sorted(
        (d for d in p.glob(f"{prefix}-*") if (d / STATE_FILE).is_file()),
        key=lambda d: int(d.name.split("-")[1]),
    )
    if not found:
        raise FileNotFoundError(f"{p}: no {what} with {STATE_FILE} to resume from")
    return found[-1]


def evaluate_dev(encoder: Encoder, dev: Sequence[Any], batch_size: int) -> dict[str, dict[str, float]]:
    from .evaluate import TorchTextEncoder, evaluate

    text_encoder = TorchTextEncoder(encoder, batch_size=batch_size)
    return {data.name: evaluate(text_encoder, data) for data in dev}


def _weight_stats(loss_fn: nn.Module, sim: Tensor, positives: Tensor, min_weight: float) -> dict[str, float]:
    """How far the Soft-InfoNCE weights of this batch are from InfoNCE's (all 1), for the log."""
    assert isinstance(loss_fn, SoftInfoNCELoss)
    w = loss_fn.weights(sim, positives)
    neg = w.masked_select(~torch.nn.functional.one_hot(positives, w.shape[1]).bool())
    return {"w_min": float(neg.min()), "w_max": float(neg.max()), "w_std": float(neg.std()),
            "w_clamped": float((neg <= min_weight + 1e-6).float().mean())}


# ---------------------------------------------------------------------------------------------
# Preparation: step plan, encoder, objective, optimiser and resume point


@dataclass(frozen=True)
class StepPlan:
    global_batch: int  # pairs per step over all processes
    steps_per_epoch: int
    total_steps: int  # over all epochs, capped by --max-steps

    @classmethod
    def for_run(cls, cfg: TrainConfig, n_pairs: int, world_size: int) -> StepPlan:
        global_batch = cfg.batch_size * world_size
        if n_pairs < global_batch:
            raise ValueError(f"{n_pairs} training pairs: fewer than one global batch of {global_batch}")
        steps_per_epoch = n_pairs // global_batch
        total_steps = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        return cls(global_batch, steps_per_epoch, total_steps)


@dataclass(frozen=True)
class StartPoint:
    """Where the steps start: all zero for a fresh run, a checkpoint's saved progress on ``--resume``."""

    checkpoint: Path | None = None
    step: int = 0
    epoch: int = 0
    batches_done: int = 0  # of ``epoch``
    best_mrr: float | None = None
    best_epoch: int = 0


@dataclass(frozen=True)
class Objective:
    """The loss, and what it needs besides the two embeddings: Soft-InfoNCE's frozen similarity
    estimator (with its α, β, t), or the frozen teacher of a distillation."""

    loss_fn: nn.Module
    estimator: Estimator | None = None
    teacher: Teacher | None = None
    weights: tuple[float | None, float | None, float | None] = (None, None, None)


@dataclass(frozen=True)
class TrainingData:
    """What the steps and the dev evaluations draw on."""

    pairs: list[Pair]
    dev_sets: list[Any]  # evaluate.BeirData, loaded by the main process only


def load_training_encoder(cfg: TrainConfig, resume_from: Path | None, device: torch.device) -> Encoder:
    """The encoder to train: ``cfg.model``, or the checkpoint resumed from."""
    source = str(resume_from) if resume_from else cfg.model
    # the training lengths only truncate batches: the model keeps its own limit unless they exceed it
    own_limit = read_settings(resolve_model(source)).max_length
    return load_encoder(source, device=device, max_length=max(own_limit, cfg.max_length, cfg.query_max_length))


def build_objective(cfg: TrainConfig, pairs: Sequence[Pair], plan: StepPlan, device: torch.device,
                    di: DistInfo) -> Objective:
    """Distillation with ``--teacher``, Soft-InfoNCE with ``--loss soft-infonce``, InfoNCE otherwise
    (always InfoNCE for SimCSE)."""
    if cfg.teacher and not cfg.simcse:
        teacher = Teacher(cfg.teacher, device=device, batch_size=cfg.eval_batch_size)
        loss_fn = DistillationLoss(contrastive=cfg.contrastive_weight, kd=cfg.distill_kd,
                                   regression=cfg.distill_regression, scale=cfg.scale, teacher_scale=cfg.scale)
        return Objective(loss_fn, teacher=teacher)
    if cfg.loss == "soft-infonce" and not cfg.simcse:
        return _soft_infonce(cfg, pairs, plan.global_batch, device, di)
    return Objective(InfoNCELoss(scale=cfg.scale))


def _soft_infonce(cfg: TrainConfig, pairs: Sequence[Pair], global_batch: int, device: torch.device,
                  di: DistInfo) -> Objective:
    alpha, beta, t = cfg.resolved_weights()
    if alpha and beta - alpha / (global_batch - 1) <= 0:
        raise ValueError(
            f"global batch {global_batch} is too small for α={alpha}, β={beta}: "
            f"need batch > {1 + alpha / beta:.1f}"
        )
    loss_fn = SoftInfoNCELoss(alpha, beta, t, scale=cfg.scale, min_weight=cfg.min_weight)
    estimator = build_estimator(
        cfg.weights,
        model=cfg.estimator_model,
        base_model=cfg.model,
        device=device,
        fit_corpus=[p.query for p in pairs],
        query_max_length=cfg.query_max_length,
        code_max_length=cfg.max_length,
        score_scale=cfg.scale,
    )
    if di.enabled and hasattr(estimator, "gather"):
        estimator.gather = gather_no_grad
    return Objective(loss_fn, estimator=estimator, weights=(alpha, beta, t))


def build_model(cfg: TrainConfig, encoder: Encoder, resume_from: Path | None, plan: StepPlan,
                device: torch.device, di: DistInfo, use_amp: bool) -> tuple[nn.Module, Optimization, StartPoint]:
    """The dual encoder (under DistributedDataParallel with torchrun) and the encoder's optimisation,
    fresh or restored from ``resume_from``; and where the steps start."""
    dual: nn.Module = DualEncoder(encoder)
    if di.enabled:
        from torch.nn.parallel import DistributedDataParallel

        dual = DistributedDataParallel(
            dual, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = Optimization.build(encoder, cfg.lr, cfg.weight_decay, cfg.warmup_ratio, plan.total_steps, use_amp)
    start = StartPoint()
    if resume_from is not None:
        state, step, epoch, batches_done = opt.restore(resume_from, plan.steps_per_epoch)
        start = StartPoint(resume_from, step, epoch, batches_done, state.get("best_mrr"),
                           int(state.get("best_epoch", 0)))
        log.info("resuming from %s at step %d", resume_from, step)
    torch.manual_seed(cfg.seed + 7919 * di.rank + start.step)  # dropout masks differ across ranks
    return dual, opt, start


def load_dev_sets(cfg: TrainConfig, di: DistInfo) -> list[Any]:
    """The dev sets, loaded by the main process only (the one that evaluates)."""
    if not (di.is_main and cfg.dev):
        return []
    from .evaluate import load_beir

    return [load_beir(d, max_queries=cfg.dev_max_queries, max_corpus=cfg.dev_max_corpus, seed=cfg.seed)
            for d in cfg.dev]


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class LossMeter:
    """The smoothed loss and the pairs/s throughput shown on the bar and logged."""

    loss_ema: float | None = None
    pairs_per_s: float = 0.0
    window_pairs: int = 0
    window_t: float = field(default_factory=time.perf_counter)

    def update(self, loss: float, pairs: int, step: int, log_every: int) -> None:
        self.loss_ema = loss if self.loss_ema is None else 0.9 * self.loss_ema + 0.1 * loss
        self.window_pairs += pairs
        now = time.perf_counter()
        if now - self.window_t >= 1.0 or step % log_every == 0:
            self.pairs_per_s = self.window_pairs / max(now - self.window_t, 1e-9)
            self.window_pairs, self.window_t = 0, now


class EncoderTrainer:
    """The step loop over epochs; each epoch ends with a dev evaluation and a checkpoint, and
    ``--save-every`` adds resumable mid-epoch ones. Under torchrun every process steps on its rows of
    the global batch; only the main one logs, evaluates and saves."""

    def __init__(self, cfg: TrainConfig, data: TrainingData, encoder: Encoder, dual: nn.Module,
                 objective: Objective, opt: Optimization, *, plan: StepPlan, start: StartPoint,
                 device: torch.device, di: DistInfo, metrics: MetricsLog, settings: dict[str, Any],
                 started: float) -> None:
        self.cfg, self.data, self.objective = cfg, data, objective
        self.encoder, self.dual, self.opt = encoder, dual, opt
        self.plan, self.start, self.device, self.di = plan, start, device, di
        self.metrics, self.settings, self.started = metrics, settings, started
        self.checkpoints = EncoderCheckpoints(Path(cfg.output), best_mrr=start.best_mrr, best_epoch=start.best_epoch)
        self.code_len = cfg.query_max_length if cfg.simcse else cfg.max_length
        self.history: list[dict[str, Any]] = []
        self.step, self.done_in_epoch = start.step, start.batches_done
        self.meter = LossMeter()
        self.weight_stats: dict[str, float] = {}  # logged with each train record: Soft-InfoNCE's or distillation's
        self.bar: Any = None

    def run(self) -> None:
        """Train up to ``plan.total_steps``; every epoch run, the last one perhaps cut short by the
        step budget, ends with a checkpoint."""
        self.dual.train()
        for epoch in range(self.start.epoch, self.cfg.epochs):
            stopped = self._run_epoch(epoch, self.start.batches_done if epoch == self.start.epoch else 0)
            if self.di.is_main:
                self.checkpoint(epoch)
            barrier()
            if stopped:
                break

    def _run_epoch(self, epoch: int, first: int) -> bool:
        """The epoch's steps from batch ``first`` on; whether the step budget is spent."""
        batches = epoch_batches(len(self.data.pairs), self.plan.global_batch, self.cfg.seed, epoch)
        self.done_in_epoch = first
        for b_idx in range(first, len(batches)):
            if self.step >= self.plan.total_steps:
                return True
            loss_value = self._train_step(batches[b_idx])
            self.step += 1
            self.done_in_epoch = b_idx + 1
            self._show_progress(epoch, loss_value)
            every = self.cfg.save_every
            if every and self.step % every == 0 and self.done_in_epoch < len(batches) and self.di.is_main:
                self._save_partial(epoch)
            self._log_step(epoch, loss_value)
        return self.step >= self.plan.total_steps

    def _train_step(self, batch: list[int]) -> float:
        """One optimiser step on the global batch ``batch``; returns its loss, averaged over processes."""
        cfg, di = self.cfg, self.di
        pairs = [self.data.pairs[i] for i in batch]
        q_texts = [p.query for p in pairs]
        c_texts = [p.code for p in pairs]
        rows = slice(di.rank * cfg.batch_size, (di.rank + 1) * cfg.batch_size)
        q_emb, c_all = self._embed(q_texts[rows], c_texts[rows])
        positives = torch.arange(rows.start, rows.stop, device=self.device)
        loss = self._loss(q_emb, c_all, q_texts, c_texts, rows, positives)
        self.opt.step(loss, self.encoder.parameters(), cfg.max_grad_norm)
        return mean_across(float(loss.detach()), self.device)

    def _embed(self, q_texts: list[str], c_texts: list[str]) -> tuple[Tensor, Tensor]:
        """This process's query embeddings, and the code embeddings of the whole global batch."""
        device = self.device
        q_in = {k: v.to(device) for k, v in self.encoder.tokenize(q_texts, self.cfg.query_max_length).items()}
        c_in = {k: v.to(device) for k, v in self.encoder.tokenize(c_texts, self.code_len).items()}
        with autocast(device):
            q_emb, c_emb = self.dual(q_in, c_in)
        return q_emb.float(), gather_with_grad(c_emb.float())

    def _loss(self, q_emb: Tensor, c_all: Tensor, q_texts: list[str], c_texts: list[str], rows: slice,
              positives: Tensor) -> Tensor:
        cfg, loss_fn = self.cfg, self.objective.loss_fn
        estimator, teacher = self.objective.estimator, self.objective.teacher
        if estimator is not None:
            sim = estimator.similarity(q_texts, c_texts, rows=rows).to(self.device)
            loss: Tensor = loss_fn(q_emb, c_all, sim, positives)
            if (self.step + 1) % cfg.log_every == 0 or self.step == 0:
                self.weight_stats = _weight_stats(loss_fn, sim, positives, cfg.min_weight)
            return loss
        if teacher is not None:
            t_q = teacher.embed(q_texts[rows], cfg.query_max_length)
            t_c = gather_no_grad(teacher.embed(c_texts[rows], self.code_len))
            loss = loss_fn(q_emb, c_all, t_q, t_c, positives)
            assert isinstance(loss_fn, DistillationLoss)
            self.weight_stats = dict(loss_fn.last)
            return loss
        return loss_fn(q_emb, c_all, positives)

    def _show_progress(self, epoch: int, loss_value: float) -> None:
        meter = self.meter
        meter.update(loss_value, self.plan.global_batch, self.step, self.cfg.log_every)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{meter.loss_ema:.4f}", pairs_s=f"{meter.pairs_per_s:.1f}", epoch=epoch + 1)

    def _log_step(self, epoch: int, loss_value: float) -> None:
        step, meter = self.step, self.meter
        if step % self.cfg.log_every == 0 or step == 1:
            self.metrics.write({
                "type": "train", "step": step, "epoch": epoch + 1, "loss": loss_value,
                "loss_ema": meter.loss_ema, "lr": self.opt.lr, "pairs_per_s": meter.pairs_per_s,
                "elapsed_s": time.perf_counter() - self.started, "global_batch": self.plan.global_batch,
                **self.weight_stats,
            })

    def _save_partial(self, epoch: int) -> None:
        info = {"training": {**self.settings, "epoch": epoch + 1, "step": self.step, "partial": True,
                             "base_model": self.cfg.model}}
        self.checkpoints.save_partial(self.encoder, self.opt, step=self.step, epoch=epoch,
                                      batches_done=self.done_in_epoch, info=info, config=dataclasses.asdict(self.cfg))

    def checkpoint(self, epoch: int) -> None:
        """Evaluate on dev, save ``epoch-N`` (and ``best`` when it improved), log and print the result."""
        cfg, step = self.cfg, self.step
        record: dict[str, Any] = {"type": "eval", "epoch": epoch + 1, "step": step,
                                  "elapsed_s": time.perf_counter() - self.started}
        dev_results = evaluate_dev(self.encoder, self.data.dev_sets, cfg.eval_batch_size) if self.data.dev_sets else {}
        dev_mrr = (sum(r["mrr"] for r in dev_results.values()) / len(dev_results)) if dev_results else None
        record.update(dev=dev_results, dev_mrr=dev_mrr)
        info = {"training": {**self.settings, "epoch": epoch + 1, "step": step, "dev": dev_results,
                             "dev_mrr": dev_mrr, "base_model": cfg.model}}
        ckpt = self.checkpoints.save_epoch(self.encoder, self.opt, step=step, epoch=epoch,
                                           batches_done=self.done_in_epoch, dev_mrr=dev_mrr, info=info,
                                           config=dataclasses.asdict(cfg))
        best_epoch = self.checkpoints.best_epoch
        record.update(best_epoch=best_epoch, best_dev_mrr=self.checkpoints.best_mrr, checkpoint=str(ckpt))
        self.metrics.write(record)
        self.history.append(record)
        if dev_results:
            summary = ", ".join(f"{name} MRR {r['mrr']:.4f}" for name, r in dev_results.items())
            print(f"epoch {epoch + 1} (step {step}): {summary}; best epoch {best_epoch}", file=sys.stderr)


def _run_settings(cfg: TrainConfig, plan: StepPlan, objective: Objective, opt: Optimization, n_pairs: int,
                  device: torch.device, di: DistInfo, use_amp: bool) -> dict[str, Any]:
    """The run's derived settings, logged in the config record and saved with each checkpoint."""
    alpha, beta, t = objective.weights
    return {
        "loss": "infonce (SimCSE)" if cfg.simcse else cfg.loss,
        "weights": cfg.weights if objective.estimator else None,
        "alpha": alpha, "beta": beta, "t": t,
        "pairs": n_pairs, "world_size": di.world_size, "global_batch": plan.global_batch,
        "steps_per_epoch": plan.steps_per_epoch, "total_steps": plan.total_steps, "warmup_steps": opt.warmup_steps,
        "device": str(device), "amp": use_amp, "torch": torch.__version__,
        "teacher": cfg.teacher if objective.teacher else None,
    }


def _announce(cfg: TrainConfig, plan: StepPlan, objective: Objective, settings: dict[str, Any],
              device: torch.device, use_amp: bool) -> None:
    alpha, beta, t = objective.weights
    print(
        f"training on {settings['pairs']} pairs, {plan.steps_per_epoch} steps/epoch × {cfg.epochs} epochs "
        f"(max {plan.total_steps} steps), global batch {plan.global_batch}, loss {settings['loss']}"
        + (f" [{cfg.weights}: α={alpha} β={beta} t={t}]" if objective.estimator else "")
        + (f" + distillation from {cfg.teacher} (InfoNCE ×{cfg.contrastive_weight}, KD ×{cfg.distill_kd}, "
           f"regression ×{cfg.distill_regression})" if objective.teacher else "")
        + f", device {device}" + (" (AMP)" if use_amp else ""),
        file=sys.stderr,
    )


def _progress_bar(cfg: TrainConfig, plan: StepPlan, start: StartPoint, di: DistInfo) -> Any:
    if not (di.is_main and cfg.progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=plan.total_steps, initial=start.step, unit="step", dynamic_ncols=True, file=sys.stderr)


def train(cfg: TrainConfig) -> TrainResult:
    """Run a training (single process, or one rank under torchrun)."""
    cfg.validate()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist_info = init_distributed(device.type)
    try:
        if dist_info.enabled and device.type == "cuda":
            device = torch.device("cuda", dist_info.local_rank)
        return _train(cfg, device, dist_info)
    finally:
        cleanup_distributed()


def _train(cfg: TrainConfig, device: torch.device, di: DistInfo) -> TrainResult:
    started = time.perf_counter()
    out = Path(cfg.output)
    if di.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier()
    seed_everything(cfg.seed)
    use_amp = device.type == "cuda" if cfg.amp is None else cfg.amp and device.type == "cuda"

    pairs = load_training_pairs(cfg)
    plan = StepPlan.for_run(cfg, len(pairs), di.world_size)
    resume_from = find_resume(cfg.resume) if cfg.resume else None
    encoder = load_training_encoder(cfg, resume_from, device)
    objective = build_objective(cfg, pairs, plan, device, di)
    dual, opt, start = build_model(cfg, encoder, resume_from, plan, device, di, use_amp)
    data = TrainingData(pairs, load_dev_sets(cfg, di))
    metrics = MetricsLog(out / "metrics.jsonl" if di.is_main else None)
    settings = _run_settings(cfg, plan, objective, opt, len(pairs), device, di, use_amp)
    metrics.write({"type": "config", "config": dataclasses.asdict(cfg), **settings})
    if di.is_main:
        _announce(cfg, plan, objective, settings, device, use_amp)

    trainer = EncoderTrainer(cfg, data, encoder, dual, objective, opt, plan=plan, start=start, device=device, di=di,
                             metrics=metrics, settings=settings, started=started)
    trainer.bar = _progress_bar(cfg, plan, start, di)
    trainer.run()
    if trainer.bar is not None:
        trainer.bar.close()
    seconds = time.perf_counter() - started
    best = trainer.checkpoints
    metrics.write({"type": "done", "steps": trainer.step, "seconds": seconds, "best_epoch": best.best_epoch,
                   "best_dev_mrr": best.best_mrr})
    metrics.close()
    if di.is_main:
        best.finish(seconds)
    barrier()
    return TrainResult(best=out / "best", best_epoch=best.best_epoch, best_dev_mrr=best.best_mrr, steps=trainer.step,
                       seconds=seconds, history=trainer.history)
