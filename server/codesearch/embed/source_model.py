"""What a source model folder says about its use: pooling, normalisation, maximum length, prefixes.

A source model is what gets exported or trained: a sentence-transformers folder, a plain Hugging Face
folder, or a checkpoint written by the trainer (a sentence-transformers folder plus
``codesearch_training.json``). The exporter (``onnx_export``) and the trainer both read it here, so an
exported model and the trainer's view of the same folder cannot disagree.

Where the settings come from, later sources overriding earlier ones:

1. defaults: mean pooling, L2-normalised, no prefixes;
2. sentence-transformers' files: the pooling module's ``config.json`` (path from ``modules.json``, else
   ``1_Pooling``), a ``Normalize`` module in ``modules.json`` (a folder that has ``modules.json`` and
   no such module is not normalised), ``max_seq_length`` in ``sentence_bert_config.json``;
3. ``codesearch_training.json``, the trainer's own record (it also holds the prefixes).

One deliberate difference from sentence-transformers: a plain Hugging Face folder (no ``modules.json``)
is normalised, because the engine's index compares unit vectors (see ``manifest``).

This module reads JSON files only; tokenizers and transformers are imported when a tokenizer is
loaded, never torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .manifest import POOLINGS

TRAINER_CONFIG = "codesearch_training.json"
FALLBACK_MAX_LENGTH = 512
# transformers writes model_max_length = int(1e30) for "no limit"; anything this large means unset.
_UNSET_LENGTH = 10**9
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


class SourceModelError(ValueError):
    """A source model folder whose settings cannot be read or are not supported."""


@dataclass(frozen=True)
class SourceModelSettings:
    """How a source model is used; ``position_limit`` is the model's ``max_position_embeddings``."""

    pooling: str = "mean"
    normalize: bool = True
    max_length: int = FALLBACK_MAX_LENGTH
    query_prefix: str = ""
    document_prefix: str = ""
    position_limit: int | None = None

    def limit(self, requested: int | None = None) -> int:
        """``requested`` tokens (else ``max_length``), never more than the model has positions for."""
        length = requested or self.max_length
        return min(length, self.position_limit) if self.position_limit else length


def read_source_settings(source: str | os.PathLike[str], *, config: Any = None) -> SourceModelSettings:
    """The settings of the model folder ``source`` (see the module docstring for the sources).

    ``config`` is the model's loaded transformers config, when the caller has it; otherwise the
    folder's ``config.json`` gives ``max_position_embeddings``. A hub id (not a folder) has no files to
    read here: it gets the defaults, with the length rule applied to ``config``.

    The maximum length follows sentence-transformers (``models.Transformer``): ``max_seq_length`` from
    ``sentence_bert_config.json`` when set, else the smaller of the tokenizer's ``model_max_length``
    (``tokenizer_config.json``) and the model's ``max_position_embeddings``; else 512 when neither is
    known. Unlike sentence-transformers, a configured length is also capped by the positions: past
    them the model fails (an index error), it does not truncate.
    """
    folder = Path(source)
    positions = _positive(getattr(config, "max_position_embeddings", None)) if config is not None else None
    if not folder.is_dir():
        return SourceModelSettings(max_length=positions or FALLBACK_MAX_LENGTH, position_limit=positions)
    if positions is None:
        positions = _positive(_read_json(folder / "config.json").get("max_position_embeddings"))
    modules = _modules(folder)
    own = _read_json(folder / TRAINER_CONFIG)
    pooling = str(own.get("pooling") or _pooling(folder, modules))
    if pooling not in POOLINGS:
        raise SourceModelError(f"{folder}: pooling {pooling!r} is not supported (use one of {POOLINGS})")
    length = (
        _positive(own.get("max_length"))
        or _positive(_read_json(folder / "sentence_bert_config.json").get("max_seq_length"))
        or _tokenizer_length(folder, positions)
    )
    settings = SourceModelSettings(
        pooling=pooling,
        normalize=bool(own.get("normalize", _normalize(modules))),
        max_length=length,
        query_prefix=str(own.get("query_prefix") or ""),
        document_prefix=str(own.get("document_prefix") or ""),
        position_limit=positions,
    )
    return replace(settings, max_length=settings.limit())


def load_tokenizer_json(source: str | os.PathLike[str]) -> Any:
    """The folder's ``tokenizers.Tokenizer`` with padding and truncation off (callers set both per batch).

    Reads ``tokenizer.json``; a folder or hub id without one goes through transformers' fast tokenizer.
    """
    from tokenizers import Tokenizer

    path = Path(source) / "tokenizer.json"
    if path.is_file():
        tok = Tokenizer.from_file(str(path))
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(source), use_fast=True).backend_tokenizer
    tok.no_padding()
    tok.no_truncation()
    return tok


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SourceModelError(f"{path} does not hold a JSON object")
    return data


def _modules(folder: Path) -> list[dict[str, Any]] | None:
    """sentence-transformers' module list, or None for a folder without ``modules.json``."""
    path = folder / "modules.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise SourceModelError(f"{path} does not hold a list of modules")
    return data


def _module_class(module: dict[str, Any]) -> str:
    """``sentence_transformers.models.Normalize`` -> ``Normalize``."""
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def _normalize(modules: list[dict[str, Any]] | None) -> bool:
    if modules is None:
        return True
    return any(_module_class(m) == "Normalize" for m in modules)


def _pooling(folder: Path, modules: list[dict[str, Any]] | None) -> str:
    """The pooling mode set in the pooling module's config; mean when there is none."""
    path = next((str(m.get("path", "")) for m in modules or [] if _module_class(m) == "Pooling"), "1_Pooling")
    cfg = _read_json(folder / path / "config.json")
    modes = [mode for key, mode in _POOLING_KEYS.items() if cfg.get(key)]
    if len(modes) > 1:
        raise SourceModelError(f"{folder / path / 'config.json'}: combined pooling modes {modes} are not supported")
    return modes[0] if modes else "mean"


def _tokenizer_length(folder: Path, positions: int | None) -> int:
    model_max = _positive(_read_json(folder / "tokenizer_config.json").get("model_max_length"))
    known = [n for n in (model_max, positions) if n is not None and n < _UNSET_LENGTH]
    return min(known) if known else FALLBACK_MAX_LENGTH


def _positive(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
