"""A smaller student made from a teacher's configuration and weights, and the frozen teacher itself.

``make_student`` keeps a subset of the teacher's transformer layers (by default evenly spaced,
always the first and the last: 6 → 3 keeps 0, 3, 5) together with its embeddings, tokenizer,
pooling and normalisation. Starting from the teacher's own layers, rather than from random ones,
is what lets a short distillation on CPU recover most of the teacher's ability (the layer-dropped
student starts at a cosine of about 0.6 to the teacher's embeddings; distillation pulls it up).

``Teacher`` wraps a frozen encoder for :class:`~codesearch_trainer.losses.DistillationLoss`:
eval mode, no gradient, embeddings memoised by (length, text), so a second epoch costs nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import Encoder, load_encoder, resolve_model

STUDENT_KEY = "student"  # in the student's codesearch_training.json


def even_layers(teacher_layers: int, keep: int) -> list[int]:
    """``keep`` evenly spaced layer indices out of ``teacher_layers``, first and last included."""
    if not 1 <= keep <= teacher_layers:
        raise ValueError(f"a student keeps between 1 and {teacher_layers} layers, not {keep}")
    if keep == 1:
        return [teacher_layers - 1]
    return sorted({math.ceil(i * (teacher_layers - 1) / (keep - 1)) for i in range(keep)})


def _layer_list(transformer: nn.Module) -> nn.ModuleList:
    encoder = getattr(transformer, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"{type(transformer).__name__} has no encoder.layer list (BERT-style models only)"
        )
    return layers


def make_student(
    teacher: str | os.PathLike[str],
    *,
    layers: Sequence[int] | None = None,
    num_layers: int | None = None,
    max_length: int | None = None,
) -> tuple[Encoder, list[int]]:
    """A student encoder holding the teacher's layers ``layers`` (or ``num_layers`` evenly spaced).

    Returns the encoder and the kept layer indices. Everything else (embeddings, tokenizer,
    pooling, normalisation, hidden size) is the teacher's; ``max_length`` overrides its limit.
    """
    encoder = load_encoder(teacher, max_length=max_length)
    transformer = encoder.transformer
    all_layers = _layer_list(transformer)
    n = len(all_layers)
    if layers is None:
        layers = even_layers(n, num_layers if num_layers is not None else max(1, n // 2))
    kept = list(layers)
    if not kept or sorted(set(kept)) != kept or kept[0] < 0 or kept[-1] >= n:
        raise ValueError(f"layers must be increasing indices in 0..{n - 1}, not {kept}")
    transformer.encoder.layer = nn.ModuleList(all_layers[i] for i in kept)  # type: ignore[union-attr]
    config: Any = transformer.config
    config.num_hidden_layers = len(kept)
    if getattr(config, "layer_types", None):  # recent transformers keep one entry per layer
        config.layer_types = [config.layer_types[i] for i in kept]
    return encoder, kept


def save_student(encoder: Encoder, kept: Sequence[int], teacher: str, folder: str | os.PathLike[str]) -> Path:
    """Write the student as a trainer checkpoint, recording where it came from."""
    folder = Path(folder)
    encoder.save(folder, extra={STUDENT_KEY: {"teacher": teacher, "layers": list(kept)}})
    return folder


class Teacher:
    """A frozen encoder giving detached, L2-normalised embeddings, memoised per (length, text)."""

    def __init__(self, name: str, *, device: str | torch.device = "cpu", batch_size: int = 64,
                 memoise: bool = True) -> None:
        self.name = name
        self.encoder = load_encoder(resolve_model(name), device=device)
        self.encoder.eval()
        self.encoder.requires_grad_(False)
        self.batch_size = batch_size
        self.memoise = memoise
        self._memo: dict[tuple[int, str], Tensor] = {}

    @property
    def dimension(self) -> int:
        return self.encoder.dimension

    @torch.no_grad()
    def embed(self, texts: Sequence[str], max_length: int) -> Tensor:
        device = next(self.encoder.parameters()).device
        missing = list(dict.fromkeys(t for t in texts if (max_length, t) not in self._memo))
        fresh: dict[str, Tensor] = {}
        if missing:
            emb = self.encoder.encode(missing, max_length=max_length, batch_size=self.batch_size)
            fresh = dict(zip(missing, F.normalize(emb.float(), dim=-1), strict=True))
            if self.memoise:
                self._memo.update(((max_length, t), v) for t, v in fresh.items())
        rows = [fresh[t] if t in fresh else self._memo[(max_length, t)] for t in texts]
        return torch.stack(rows).to(device)



def interpolate(a: str | os.PathLike[str], b: str | os.PathLike[str], weight: float,
                out: str | os.PathLike[str]) -> Path:
    """Write ``weight · A + (1 − weight) · B`` (two checkpoints of one architecture, e.g. two
    fine-tunings from the same start) to ``out``: a dial between them chosen on dev sets
    (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"). A's tokenizer, settings and
    training record are kept, and the mix is recorded beside them."""
    import json

    from .model import TRAINER_CONFIG

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the weight of A must be in [0, 1], not {weight}")
    enc_a, enc_b = load_encoder(a), load_encoder(b)
    state_a, state_b = enc_a.transformer.state_dict(), enc_b.transformer.state_dict()
    if state_a.keys() != state_b.keys() or any(state_a[k].shape != state_b[k].shape for k in state_a):
        raise ValueError(f"{a} and {b} do not have the same architecture")
    mixed = {k: (weight * v.float() + (1 - weight) * state_b[k].float()).to(v.dtype)
             if v.is_floating_point() else v for k, v in state_a.items()}
    enc_a.transformer.load_state_dict(mixed)
    record_path = Path(resolve_model(str(a))) / TRAINER_CONFIG
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    extra = {k: v for k, v in record.items() if k in ("training", STUDENT_KEY)}
    extra["interpolation"] = {"a": str(a), "b": str(b), "weight_of_a": weight}
    folder = Path(out)
    enc_a.save(folder, extra=extra)
    return folder
