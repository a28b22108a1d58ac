"""The training loop: contrastive fine-tuning of an encoder on (query, code) pairs.

AdamW (no decay on biases and LayerNorm) with linear warm-up and linear decay, gradient clipping,
seeds, bf16/fp16 autocast on CUDA, checkpoints each epoch into ``OUTPUT/epoch-N`` (an HF folder
plus ``training_state.pt`` for ``--resume``), ``OUTPUT/best`` selected on the mean dev MRR (the last
checkpoint without dev data), ``OUTPUT/metrics.jsonl``, a tqdm bar with loss and pairs/s, and
DistributedDataParallel under torchrun: ``batch_size`` is per process, each query meets the
codes of the whole global batch, and Soft-InfoNCE weights are computed over the global batch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
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
from .model import DEFAULT_MODEL, TRAINER_CONFIG, Encoder, autocast, load_encoder, read_settings, resolve_model
from .student import Teacher

log = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
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


def save_partial(encoder: Encoder, opt: Optimization, folder: Path, info: dict[str, Any], **progress: Any) -> None:
    """A resumable mid-epoch checkpoint, written beside ``folder`` and then swapped in."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    encoder.save(tmp, extra=info)
    opt.save(tmp / STATE_FILE, **progress)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def copy_checkpoint(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(STATE_FILE))
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


# ---------------------------------------------------------------------------------------------


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

    # --- data
    pairs = load_training_pairs(cfg)
    global_batch = cfg.batch_size * di.world_size
    if len(pairs) < global_batch:
        raise ValueError(f"{len(pairs)} training pairs: fewer than one global batch of {global_batch}")
    steps_per_epoch = len(pairs) // global_batch
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    code_len = cfg.query_max_length if cfg.simcse else cfg.max_length

    # --- model, loss, estimator
    resume_from = find_resume(cfg.resume) if cfg.resume else None
    source = str(resume_from) if resume_from else cfg.model
    # the training lengths only truncate batches: the model keeps its own limit unless they exceed it
    own_limit = read_settings(resolve_model(source)).max_length
    encoder = load_encoder(source, device=device, max_length=max(own_limit, cfg.max_length, cfg.query_max_length))
    loss_fn: nn.Module
    estimator: Estimator | None = None
    teacher: Teacher | None = None
    alpha = beta = t = None
    if cfg.teacher and not cfg.simcse:
        teacher = Teacher(cfg.teacher, device=device, batch_size=cfg.eval_batch_size)
        loss_fn = DistillationLoss(contrastive=cfg.contrastive_weight, kd=cfg.distill_kd,
                                   regression=cfg.distill_regression, scale=cfg.scale, teacher_scale=cfg.scale)
    elif cfg.loss == "soft-infonce" and not cfg.simcse:
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
    else:
        loss_fn = InfoNCELoss(scale=cfg.scale)

    dual: nn.Module = DualEncoder(encoder)
    if di.enabled:
        from torch.nn.parallel import DistributedDataParallel

        dual = DistributedDataParallel(
            dual, device_ids=[device.index] if device.type == "cuda" else None
        )
    opt = Optimization.build(encoder, cfg.lr, cfg.weight_decay, cfg.warmup_ratio, total_steps, use_amp)

    step, start_epoch, skip_batches = 0, 0, 0
    best_mrr: float | None = None
    best_epoch = 0
    if resume_from is not None:
        state, step, start_epoch, skip_batches = opt.restore(resume_from, steps_per_epoch)
        best_mrr, best_epoch = state.get("best_mrr"), int(state.get("best_epoch", 0))
        log.info("resuming from %s at step %d", resume_from, step)
    torch.manual_seed(cfg.seed + 7919 * di.rank + step)  # dropout masks differ across ranks

    # --- dev data (main process only)
    dev_sets: list[Any] = []
    if di.is_main and cfg.dev:
        from .evaluate import load_beir

        dev_sets = [
            load_beir(d, max_queries=cfg.dev_max_queries, max_corpus=cfg.dev_max_corpus, seed=cfg.seed)
            for d in cfg.dev
        ]

    metrics = MetricsLog(out / "metrics.jsonl" if di.is_main else None)
    history: list[dict[str, Any]] = []
    settings = {
        "loss": "infonce (SimCSE)" if cfg.simcse else cfg.loss,
        "weights": cfg.weights if estimator else None,
        "alpha": alpha, "beta": beta, "t": t,
        "pairs": len(pairs), "world_size": di.world_size, "global_batch": global_batch,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "warmup_steps": opt.warmup_steps,
        "device": str(device), "amp": use_amp, "torch": torch.__version__,
        "teacher": cfg.teacher if teacher else None,
    }
    metrics.write({"type": "config", "config": dataclasses.asdict(cfg), **settings})
    if di.is_main:
        print(
            f"training on {len(pairs)} pairs, {steps_per_epoch} steps/epoch × {cfg.epochs} epochs "
            f"(max {total_steps} steps), global batch {global_batch}, loss {settings['loss']}"
            + (f" [{cfg.weights}: α={alpha} β={beta} t={t}]" if estimator else "")
            + (f" + distillation from {cfg.teacher} (InfoNCE ×{cfg.contrastive_weight}, KD ×{cfg.distill_kd}, "
               f"regression ×{cfg.distill_regression})" if teacher else "")
            + f", device {device}" + (" (AMP)" if use_amp else ""),
            file=sys.stderr,
        )

    bar: Any = None
    if di.is_main and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr)

    dual.train()
    last_ckpt: Path | None = None
    loss_ema: float | None = None
    window_pairs, window_t = 0, time.perf_counter()
    pairs_per_s = 0.0
    epoch = start_epoch
    stopped = False
    weight_stats: dict[str, float] = {}
    for epoch in range(start_epoch, cfg.epochs):
        batches = epoch_batches(len(pairs), global_batch, cfg.seed, epoch)
        done_in_epoch = skip_batches if epoch == start_epoch else 0
        for b_idx in range(done_in_epoch, len(batches)):
            if step >= total_steps:
                stopped = True
                break
            batch = [pairs[i] for i in batches[b_idx]]
            q_texts = [p.query for p in batch]
            c_texts = [p.code for p in batch]
            rows = slice(di.rank * cfg.batch_size, (di.rank + 1) * cfg.batch_size)
            q_in = {k: v.to(device) for k, v in encoder.tokenize(q_texts[rows], cfg.query_max_length).items()}
            c_in = {k: v.to(device) for k, v in encoder.tokenize(c_texts[rows], code_len).items()}
            with autocast(device):
                q_emb, c_emb = dual(q_in, c_in)
            q_emb, c_emb = q_emb.float(), c_emb.float()
            c_all = gather_with_grad(c_emb)
            positives = torch.arange(rows.start, rows.stop, device=device)
            if estimator is not None:
                sim = estimator.similarity(q_texts, c_texts, rows=rows).to(device)
                loss = loss_fn(q_emb, c_all, sim, positives)
                if (step + 1) % cfg.log_every == 0 or step == 0:
                    weight_stats = _weight_stats(loss_fn, sim, positives, cfg.min_weight)
            elif teacher is not None:
                t_q = teacher.embed(q_texts[rows], cfg.query_max_length)
                t_c = gather_no_grad(teacher.embed(c_texts[rows], code_len))
                loss = loss_fn(q_emb, c_all, t_q, t_c, positives)
                assert isinstance(loss_fn, DistillationLoss)
                weight_stats = dict(loss_fn.last)
            else:
                loss = loss_fn(q_emb, c_all, positives)
            opt.step(loss, encoder.parameters(), cfg.max_grad_norm)
            step += 1
            done_in_epoch = b_idx + 1

            loss_value = mean_across(float(loss.detach()), device)
            loss_ema = loss_value if loss_ema is None else 0.9 * loss_ema + 0.1 * loss_value
            window_pairs += global_batch
            now = time.perf_counter()
            if now - window_t >= 1.0 or step % cfg.log_every == 0:
                pairs_per_s = window_pairs / max(now - window_t, 1e-9)
                window_pairs, window_t = 0, now
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_ema:.4f}", pairs_s=f"{pairs_per_s:.1f}", epoch=epoch + 1)
            if cfg.save_every and step % cfg.save_every == 0 and done_in_epoch < len(batches) and di.is_main:
                save_partial(encoder, opt, out / f"epoch-{epoch + 1}",
                             {"training": {**settings, "epoch": epoch + 1, "step": step, "partial": True,
                                           "base_model": cfg.model}},
                             step=step, epoch=epoch, batches_done=done_in_epoch, best_mrr=best_mrr,
                             best_epoch=best_epoch, config=dataclasses.asdict(cfg))
            if step % cfg.log_every == 0 or step == 1:
                metrics.write({
                    "type": "train", "step": step, "epoch": epoch + 1, "loss": loss_value,
                    "loss_ema": loss_ema, "lr": opt.lr, "pairs_per_s": pairs_per_s,
                    "elapsed_s": time.perf_counter() - started, "global_batch": global_batch,
                    **weight_stats,
                })
        else:
            stopped = step >= total_steps
        # --- end of epoch (or of the step budget): checkpoint, evaluate, select
        ckpt = out / f"epoch-{epoch + 1}"
        record: dict[str, Any] = {"type": "eval", "epoch": epoch + 1, "step": step,
                                  "elapsed_s": time.perf_counter() - started}
        if di.is_main:
            dev_results = evaluate_dev(encoder, dev_sets, cfg.eval_batch_size) if dev_sets else {}
            dev_mrr = (sum(r["mrr"] for r in dev_results.values()) / len(dev_results)) if dev_results else None
            record.update(dev=dev_results, dev_mrr=dev_mrr)
            info = {"training": {**settings, "epoch": epoch + 1, "step": step, "dev": dev_results,
                                 "dev_mrr": dev_mrr, "base_model": cfg.model}}
            encoder.save(ckpt, extra=info)
            improved = dev_mrr is not None and (best_mrr is None or dev_mrr > best_mrr)
            if improved:
                best_mrr, best_epoch = dev_mrr, epoch + 1
            opt.save(ckpt / STATE_FILE, step=step, epoch=epoch, batches_done=done_in_epoch, best_mrr=best_mrr,
                     best_epoch=best_epoch, config=dataclasses.asdict(cfg))
            if improved or (not dev_sets):
                if not dev_sets:
                    best_epoch = epoch + 1
                copy_checkpoint(ckpt, out / "best")
            record.update(best_epoch=best_epoch, best_dev_mrr=best_mrr, checkpoint=str(ckpt))
            metrics.write(record)
            history.append(record)
            if dev_results:
                summary = ", ".join(f"{name} MRR {r['mrr']:.4f}" for name, r in dev_results.items())
                print(f"epoch {epoch + 1} (step {step}): {summary}; best epoch {best_epoch}", file=sys.stderr)
        last_ckpt = ckpt
        barrier()
        if stopped:
            break
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    metrics.write({"type": "done", "steps": step, "seconds": seconds, "best_epoch": best_epoch,
                   "best_dev_mrr": best_mrr})
    metrics.close()
    if di.is_main and not (out / "best").exists() and last_ckpt is not None:
        copy_checkpoint(last_ckpt, out / "best")
    if di.is_main:
        best_cfg = out / "best" / TRAINER_CONFIG
        if best_cfg.is_file():
            data = json.loads(best_cfg.read_text(encoding="utf-8"))
            data.setdefault("training", {})["seconds_total"] = seconds
            best_cfg.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    barrier()
    return TrainResult(best=out / "best", best_epoch=best_epoch, best_dev_mrr=best_mrr, steps=step,
                       seconds=seconds, history=history)
