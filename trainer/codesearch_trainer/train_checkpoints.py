"""The encoder trainer's checkpoints: ``OUTPUT/epoch-N`` (an HF folder plus ``training_state.pt`` for
``--resume``), written at the end of each epoch and, with ``--save-every``, in the middle of one, and
``OUTPUT/best``, the epoch with the highest dev MRR (the latest without dev sets)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import TRAINER_CONFIG, Encoder

if TYPE_CHECKING:
    from .train import Optimization

STATE_FILE = "training_state.pt"


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


@dataclass
class EncoderCheckpoints:
    """Saves ``epoch-N`` checkpoints under ``out`` and keeps ``best`` and its dev MRR up to date."""

    out: Path
    best_mrr: float | None = None
    best_epoch: int = 0
    last: Path | None = None

    def save_epoch(self, encoder: Encoder, opt: Optimization, *, step: int, epoch: int, batches_done: int,
                   dev_mrr: float | None, info: dict[str, Any], config: dict[str, Any]) -> Path:
        """Write ``epoch-N`` (N = ``epoch`` + 1; ``dev_mrr`` None: no dev sets, so it becomes ``best``)."""
        ckpt = self.out / f"epoch-{epoch + 1}"
        encoder.save(ckpt, extra=info)
        improved = dev_mrr is not None and (self.best_mrr is None or dev_mrr > self.best_mrr)
        if improved:
            self.best_mrr = dev_mrr
        if improved or dev_mrr is None:  # chosen before its state is saved, so that a resume knows it
            self.best_epoch = epoch + 1
        opt.save(ckpt / STATE_FILE, step=step, epoch=epoch, batches_done=batches_done, best_mrr=self.best_mrr,
                 best_epoch=self.best_epoch, config=config)
        if improved or dev_mrr is None:
            copy_checkpoint(ckpt, self.out / "best")
        self.last = ckpt
        return ckpt

    def save_partial(self, encoder: Encoder, opt: Optimization, *, step: int, epoch: int, batches_done: int,
                     info: dict[str, Any], config: dict[str, Any]) -> None:
        """Write the resumable mid-epoch ``epoch-N``, with the best so far for the resumed run to beat."""
        save_partial(encoder, opt, self.out / f"epoch-{epoch + 1}", info, step=step, epoch=epoch,
                     batches_done=batches_done, best_mrr=self.best_mrr, best_epoch=self.best_epoch, config=config)

    def finish(self, seconds: float) -> None:
        """``best`` from this run's last checkpoint when none was chosen; the run's total time recorded in it."""
        best = self.out / "best"
        if not best.exists() and self.last is not None:
            copy_checkpoint(self.last, best)
        best_cfg = best / TRAINER_CONFIG
        if best_cfg.is_file():
            data = json.loads(best_cfg.read_text(encoding="utf-8"))
            data.setdefault("training", {})["seconds_total"] = seconds
            best_cfg.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
