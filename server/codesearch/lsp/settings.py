"""The settings object shared with the editor extensions, defined once.

``{"model": str|null, "device": "auto"|"cpu"|"cuda", "exclude": [globs], "maxFileSize": int,
"ranker": str|null, "rerankK": int, "shards": str|null}``,
given as ``initializationOptions`` directly and in ``workspace/didChangeConfiguration`` under
``settings.codesearch`` (a flat object is accepted too).  A missing key keeps its current value
(the default at start), ``null`` sets the default, a bad value is reported and ignored, never fatal.

``SPECS`` is the one description of these settings: the defaults are the engine's own
(``EngineConfig``), and the VS Code extension's ``package.json`` and the settings tables of
docs/lsp.md and extension/README.md are generated from it by ``scripts/sync_settings.py``
(``tests/test_settings_sync.py`` fails when they disagree).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..embed.encoder import DEVICES
from ..engine import EngineConfig
from ..query.rerank import MAX_RERANK_K, MIN_RERANK_K

SECTION = "codesearch"
_ENGINE = EngineConfig()

Parsed = tuple[bool, Any]  # (valid, value)


@dataclass(frozen=True)
class Settings:
    model: str | None = _ENGINE.model
    device: str = _ENGINE.device
    exclude: tuple[str, ...] = _ENGINE.exclude
    max_file_size: int = _ENGINE.max_file_size
    ranker: str | None = _ENGINE.ranker
    rerank_k: int = _ENGINE.rerank_k
    shards: str | None = None  # a shards folder (`codesearch shards build`), searched read-only with the folders

    def engine_config(self) -> EngineConfig:
        return EngineConfig(model=self.model, device=self.device, exclude=self.exclude,
                            max_file_size=self.max_file_size, ranker=self.ranker, rerank_k=self.rerank_k)

    def to_json(self) -> dict[str, Any]:
        return {spec.key: spec.to_json(getattr(self, spec.attribute)) for spec in SPECS}


# --- value parsers: raw JSON value (not null) -> (valid, value) ----------------------------------

def _optional_text(value: Any, unset: tuple[str, ...] = ("",)) -> Parsed:
    """A stripped string; the ``unset`` words mean the default (None)."""
    if isinstance(value, str):
        return True, None if value.strip() in unset else value.strip()
    return False, None


def _model(value: Any) -> Parsed:
    return _optional_text(value, unset=("", "default"))


def _device(value: Any) -> Parsed:
    ok = isinstance(value, str) and value.lower() in DEVICES
    return ok, value.lower() if ok else None


def _globs(value: Any) -> Parsed:
    if isinstance(value, str):
        return True, (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(g, str) for g in value):
        return True, tuple(g for g in value if g.strip())
    return False, None


def _whole_number(value: Any, low: int, high: int | None) -> Parsed:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and int(value) == value
          and value >= low and (high is None or value <= high))
    return ok, int(value) if ok else None


@dataclass(frozen=True)
class SettingSpec:
    """One setting as every client sees it: its key, default, JSON schema and meaning."""

    key: str  # the JSON key (``codesearch.<key>`` in VS Code)
    attribute: str  # the ``Settings`` attribute
    schema: Mapping[str, Any]  # JSON schema of the value, without the default
    description: str  # Markdown; VS Code's settings UI, docs/lsp.md and extension/README.md show it
    parse: Callable[[Any], Parsed]
    expected: str  # what a bad value is told it should be
    doc_default: str = ""  # what the default means, when the value alone doesn't say
    extra: Mapping[str, Any] = field(default_factory=dict)  # more VS Code schema (enumDescriptions)

    @property
    def default(self) -> Any:
        return getattr(Settings(), self.attribute)

    def to_json(self, value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "model", "model", {"type": ["string", "null"]},
        "The embedding model: a folder written by `trainer export`, a local Hugging Face model folder, or a "
        "Hugging Face hub id (exported once into the cache), or `minilm` for the fp32 base model. `null` uses "
        "the shipped default. Changing it re-indexes (vectors already computed for a model are kept).",
        _model, "a string or null", doc_default="the shipped all-MiniLM-L6-v2, int8 weights"),
    SettingSpec(
        "device", "device", {"type": "string", "enum": list(DEVICES)},
        "Where the embedding model runs: `auto` uses CUDA only when it truly loads, else the CPU.",
        _device, f"one of {', '.join(DEVICES)}",
        extra={"enumDescriptions": ["CUDA when it loads, else the CPU", "Always the CPU",
                                    "The GPU (CUDA); falls back to the CPU, with the reason, if it does not load"]}),
    SettingSpec(
        "exclude", "exclude", {"type": "array", "items": {"type": "string"}},
        "Extra gitignore-style globs of files and folders not to index (on top of `.gitignore` and "
        "`.codesearchignore`), e.g. `**/generated/**`.",
        _globs, "a list of glob strings"),
    SettingSpec(
        "maxFileSize", "max_file_size", {"type": "integer", "minimum": 1},
        "Files larger than this many bytes are not indexed.",
        lambda v: _whole_number(v, 1, None), "a positive whole number of bytes"),
    SettingSpec(
        "ranker", "ranker", {"type": ["string", "null"]},
        "An exported ranker (cross-encoder) folder, written by `trainer export-ranker`, that re-orders the "
        "top `rerankK` results (see docs/ranker.md). `null` searches without re-ranking.",
        _optional_text, "a folder path or null"),
    SettingSpec(
        "rerankK", "rerank_k", {"type": "integer", "minimum": MIN_RERANK_K, "maximum": MAX_RERANK_K},
        "How many of the top results the ranker re-orders (only with `ranker`).",
        lambda v: _whole_number(v, MIN_RERANK_K, MAX_RERANK_K),
        f"a whole number from {MIN_RERANK_K} to {MAX_RERANK_K}"),
    SettingSpec(
        "shards", "shards", {"type": ["string", "null"]},
        "A shards folder written by `codesearch shards build` (one index per repository), mounted read-only and "
        "searched with the workspace folders; its results name their repository (see docs/scale-out.md). "
        "`null` mounts none. Changing it re-indexes nothing.",
        _optional_text, "a folder path or null"),
)
KEYS = tuple(spec.key for spec in SPECS)


def section_of(raw: Any) -> Mapping[str, Any] | None:
    """The codesearch settings inside ``raw``: ``raw["codesearch"]`` if present, else ``raw`` itself."""
    if not isinstance(raw, Mapping):
        return None
    if SECTION in raw:
        inner = raw[SECTION]
        if isinstance(inner, Mapping):
            return inner
        return {} if inner is None else None
    return raw if any(key in raw for key in KEYS) else {}


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Apply the keys present in ``raw`` to ``base``; returns the result and warnings for bad values.

    A missing key keeps ``base``'s value; ``null`` sets the default.
    """
    settings = base or Settings()
    if raw is None:
        return settings, []
    section = section_of(raw)
    if section is None:
        return settings, [f"ignoring settings that are not an object: {raw!r}"]
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    for spec in SPECS:
        if spec.key not in section:
            continue
        value = section[spec.key]
        ok, parsed = (True, spec.default) if value is None else spec.parse(value)
        if ok:
            changes[spec.attribute] = parsed
        else:
            warnings.append(f"{spec.key} must be {spec.expected}, not {value!r}")
    return replace(settings, **changes), warnings


# --- what the clients show: generated into extension/package.json and the docs -------------------

def vscode_properties(prefix: str = f"{SECTION}.") -> dict[str, dict[str, Any]]:
    """``contributes.configuration.properties`` entries for VS Code's package.json."""
    return {f"{prefix}{spec.key}": {**spec.schema, "default": spec.to_json(spec.default), **spec.extra,
                                    "markdownDescription": spec.description}
            for spec in SPECS}


def markdown_table(prefix: str = "") -> list[str]:
    """The settings table of the docs: key, default, description."""
    lines = ["| key | default | |", "| --- | --- | --- |"]
    for spec in SPECS:
        default = f"`{json.dumps(spec.to_json(spec.default))}`"
        if spec.doc_default:
            default += f" ({spec.doc_default})"
        lines.append(f"| `{prefix}{spec.key}` | {default} | {spec.description} |")
    return lines
