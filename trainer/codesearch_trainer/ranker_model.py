"""The cross-encoder ranker: a Hugging Face encoder over ``[CLS] query [SEP] code [SEP]`` and a
scalar relevance head, and how to load and save it.

The pair encoding is the engine's own (``codesearch.query.rerank.encode_pairs``: query first, at most
``query_max_length`` tokens, the code gets the rest of ``max_length``), run on the folder's
``tokenizer.json`` with padding and truncation off, so training, export and serving cut texts the
same way.

Head: dropout and a linear layer on a pooled vector: the mean of the last hidden states over the
pair's tokens (``pooling="mean"``, the default: the embedded all-MiniLM-L6-v2 was trained with mean
pooling) or the ``[CLS]`` state (``"cls"``, as in the paper's CodeBERT ranker).

A checkpoint is a Hugging Face model folder (transformer + tokenizer) plus ``ranker_head.pt`` and
``codesearch_ranker.json`` (settings and training record). Loading a plain encoder (the default,
any folder or hub id) starts a fresh, seeded head.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from codesearch.embed.source_model import load_tokenizer_json
from torch import Tensor, nn

from .model import autocast, resolve_model

RANKER_CONFIG = "codesearch_ranker.json"
HEAD_FILE = "ranker_head.pt"
POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class RankerSettings:
    max_length: int = 256  # tokens of the whole pair, special tokens included
    query_max_length: int = 64
    pooling: str = "mean"


def read_ranker_settings(folder: str | os.PathLike[str]) -> RankerSettings | None:
    path = Path(folder) / RANKER_CONFIG
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    known = RankerSettings.__dataclass_fields__
    return RankerSettings(**{k: v for k, v in data.items() if k in known})


def is_ranker_checkpoint(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / RANKER_CONFIG).is_file() and (Path(folder) / HEAD_FILE).is_file()


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass


def load_pair_tokenizer(source: str | os.PathLike[str]) -> Any:
    """The folder's ``tokenizers.Tokenizer`` with padding and truncation off."""
    return load_tokenizer_json(source)


class CrossEncoder(nn.Module):
    """``forward(input_ids, attention_mask, token_type_ids=None) -> scores [batch]``."""

    def __init__(self, transformer: nn.Module, tokenizer: Any, settings: RankerSettings,
                 hf_tokenizer: Any = None, dropout: float | None = None) -> None:
        super().__init__()
        if settings.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {settings.pooling!r}")
        self.transformer = transformer
        self.tokenizer = tokenizer  # tokenizers.Tokenizer (pair encoding)
        self.hf_tokenizer = hf_tokenizer  # transformers tokenizer, only to save HF tokenizer files
        self.settings = settings
        config: Any = transformer.config
        hidden = int(config.hidden_size)
        p = float(getattr(config, "hidden_dropout_prob", 0.1) if dropout is None else dropout)
        self.dropout = nn.Dropout(p)
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.use_token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 0
        pooler = getattr(transformer, "pooler", None)
        if isinstance(pooler, nn.Module):  # never used: keep it out of training
            pooler.requires_grad_(False)

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("input_ids", "attention_mask") + (("token_type_ids",) if self.use_token_types else ())

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        kwargs: dict[str, Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.transformer(**kwargs).last_hidden_state
        if self.settings.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        scores: Tensor = self.head(self.dropout(pooled)).squeeze(-1)
        return scores

    def encode(self, queries: Sequence[str] | str, documents: Sequence[str]) -> dict[str, Tensor]:
        """Tensors for (query, document) pairs, the engine's pair encoding."""
        from codesearch.query.rerank import encode_pairs

        feeds = encode_pairs(self.tokenizer, queries, documents, self.settings.max_length,
                             self.settings.query_max_length, self.input_names)
        return {k: torch.from_numpy(v) for k, v in feeds.items()}

    def score(self, queries: Sequence[str] | str, documents: Sequence[str], batch_size: int = 64,
              amp: bool = True) -> Tensor:
        """Scores [len(documents)] (float32, CPU), in eval mode and without gradient; ``amp``: bf16/fp16
        autocast on CUDA (``False`` scores in fp32, like the exported graph)."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        out = torch.empty(len(documents))
        per_doc = [queries] * len(documents) if isinstance(queries, str) else list(queries)
        order = sorted(range(len(documents)), key=lambda i: len(documents[i]))
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    idx = order[start : start + batch_size]
                    batch = self.encode([per_doc[i] for i in idx], [documents[i] for i in idx])
                    batch = {k: v.to(device) for k, v in batch.items()}
                    with autocast(device, enabled=amp):
                        scores = self(**batch)
                    out[idx] = scores.float().cpu()
        finally:
            self.train(was_training)
        return out

    def save(self, folder: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.transformer.save_pretrained(folder)  # type: ignore[operator]
        if self.hf_tokenizer is not None:
            self.hf_tokenizer.save_pretrained(folder)
        self.tokenizer.save(str(folder / "tokenizer.json"))  # padding/truncation off, as used
        torch.save({"head": self.head.state_dict()}, folder / HEAD_FILE)
        own = {**asdict(self.settings), **(extra or {})}
        (folder / RANKER_CONFIG).write_text(json.dumps(own, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_cross_encoder(
    name: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    max_length: int | None = None,
    query_max_length: int | None = None,
    pooling: str | None = None,
    seed: int = 0,
    attn_implementation: str | None = "sdpa",
) -> CrossEncoder:
    """A ranker checkpoint (head restored) or any encoder (default name, folder, hub id; fresh head)."""
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    source = resolve_model(name)
    saved = read_ranker_settings(source) if Path(source).is_dir() else None
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        transformer = AutoModel.from_pretrained(source, **kwargs)
    except (ValueError, ImportError):  # an architecture without SDPA support
        transformer = AutoModel.from_pretrained(source)
    hf_tokenizer = AutoTokenizer.from_pretrained(source)
    base = saved or RankerSettings()
    positions = int(getattr(transformer.config, "max_position_embeddings", 512) or 512)
    limit = min(max_length or base.max_length, positions)
    settings = RankerSettings(
        max_length=limit,
        query_max_length=min(query_max_length or base.query_max_length, limit - 4),
        pooling=pooling or base.pooling,
    )
    if saved is not None and pooling and pooling != saved.pooling:
        raise ValueError(f"{source} was trained with pooling {saved.pooling!r}, not {pooling!r}")
    torch.manual_seed(seed)
    model = CrossEncoder(transformer, load_pair_tokenizer(source), settings, hf_tokenizer=hf_tokenizer)
    if saved is not None:
        head_file = Path(source) / HEAD_FILE
        if head_file.is_file():
            state = torch.load(head_file, map_location="cpu", weights_only=True)
            model.head.load_state_dict(state["head"])
    return model.to(device)


def build_cross_encoder(config: Any, tokenizer: Any, settings: RankerSettings = RankerSettings(),
                        seed: int = 0) -> CrossEncoder:
    """A randomly initialised cross-encoder from a transformers config (tests and smoke runs)."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    transformer = AutoModel.from_config(config, attn_implementation="sdpa")
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return CrossEncoder(transformer, tokenizer, settings)


def ranker_training_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / RANKER_CONFIG
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"training": data["training"]} if "training" in data else {}
