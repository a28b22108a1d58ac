"""The ranker's checkpoints: ``OUTPUT/step-N`` (a ranker folder plus ``training_state.pt`` for
``--resume``; only the latest is kept) and ``OUTPUT/best``, the one with the highest dev MRR (the
latest when there are no dev sets)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ranker_model import RANKER_CONFIG, CrossEncoder
from .train import STATE_FILE, Optimization, copy_checkpoint


def prune_checkpoints(out: Path, keep: Path) -> None:
    for d in out.glob("step-*"):
        if d.is_dir() and d.resolve() != keep.resolve():
            shutil.rmtree(d, ignore_errors=True)


@dataclass
class RankerCheckpoints:
    """Saves ``step-N`` checkpoints under ``out`` and keeps ``best`` and its dev MRR up to date."""

    out: Path
    best_mrr: float | None = None
    best_step: int = 0
    last: Path | None = None

    def save(self, model: CrossEncoder, opt: Optimization, *, step: int, epoch: int, batches_done: int,
             dev_mrr: float | None, info: dict[str, Any], config: dict[str, Any]) -> Path:
        """Write ``step-N`` (``dev_mrr`` None: no dev sets, so it becomes ``best``) and prune older ones."""
        ckpt = self.out / f"step-{step}"
        model.save(ckpt, extra=info)
        improved = dev_mrr is not None and (self.best_mrr is None or dev_mrr > self.best_mrr)
        if improved:
            self.best_mrr = dev_mrr
        if improved or dev_mrr is None:  # without dev sets the latest step is the best
            self.best_step = step
        opt.save(ckpt / STATE_FILE, step=step, epoch=epoch, batches_done=batches_done, best_mrr=self.best_mrr,
                 best_step=self.best_step, config=config)
        if improved or dev_mrr is None:
            copy_checkpoint(ckpt, self.out / "best")
        prune_checkpoints(self.out, keep=ckpt)
        self.last = ckpt
        return ckpt

    def holds(self, step: int) -> bool:
        """Whether this run's latest checkpoint is the one of ``step``."""
        return self.last is not None and self.last.name == f"step-{step}"

    def record_total_seconds(self, seconds: float) -> None:
        best_cfg = self.out / "best" / RANKER_CONFIG
        if best_cfg.is_file():
            data = json.loads(best_cfg.read_text(encoding="utf-8"))
            data.setdefault("training", {})["seconds_total"] = seconds
            best_cfg.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
