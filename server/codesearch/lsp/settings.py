"""The settings object shared with the editor extensions.

``{"model": str|null, "device": "auto"|"cpu"|"cuda", "exclude": [globs], "maxFileSize": int,
"ranker": str|null, "rerankK": int, "shards": str|null}``,
given as ``initializationOptions`` directly and in ``workspace/didChangeConfiguration`` under
``settings.codesearch`` (a flat object is accepted too).  Missing keys keep their previous value;
a bad value is reported and ignored, never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..engine import EngineConfig
from ..query.rerank import DEFAULT_RERANK_K
from ..walk.walker import DEFAULT_MAX_FILE_SIZE

SECTION = "codesearch"
DEVICES = ("auto", "cpu", "cuda")
KEYS = ("model", "device", "exclude", "maxFileSize", "ranker", "rerankK", "shards")


@dataclass(frozen=True)
class Settings:
    model: str | None = None
    device: str = "auto"
    exclude: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    ranker: str | None = None
    rerank_k: int = DEFAULT_RERANK_K
    shards: str | None = None  # a shards folder (`codesearch shards build`) searched read-only with the folders

    def engine_config(self) -> EngineConfig:
        return EngineConfig(model=self.model, device=self.device, exclude=self.exclude,
                            max_file_size=self.max_file_size, ranker=self.ranker, rerank_k=self.rerank_k)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "exclude": list(self.exclude),
                "maxFileSize": self.max_file_size, "ranker": self.ranker, "rerankK": self.rerank_k,
                "shards": self.shards}


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


def _optional_text(value: Any, unset: tuple[str, ...]) -> tuple[bool, str | None]:
    """(valid, value): a stripped string, or None for null and the ``unset`` words."""
    if value is None or (isinstance(value, str) and value.strip() in unset):
        return True, None
    if isinstance(value, str):
        return True, value.strip()
    return False, None


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Apply the keys present in ``raw`` to ``base``; returns the result and warnings for bad values."""
    settings = base or Settings()
    warnings: list[str] = []
    if raw is None:
        return settings, warnings
    section = section_of(raw)
    if section is None:
        return settings, [f"ignoring settings that are not an object: {raw!r}"]
    changes: dict[str, Any] = {}
    if "model" in section:
        ok, model = _optional_text(section["model"], unset=("", "default"))
        if ok:
            changes["model"] = model
        else:
            warnings.append(f"model must be a string or null, not {section['model']!r}")
    if "device" in section:
        device = section["device"]
        if device is None:
            changes["device"] = "auto"
        elif isinstance(device, str) and device.lower() in DEVICES:
            changes["device"] = device.lower()
        else:
            warnings.append(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if "exclude" in section:
        exclude = section["exclude"]
        if exclude is None:
            changes["exclude"] = ()
        elif isinstance(exclude, str):
            changes["exclude"] = (exclude,)
        elif isinstance(exclude, (list, tuple)) and all(isinstance(g, str) for g in exclude):
            changes["exclude"] = tuple(g for g in exclude if g.strip())
        else:
            warnings.append(f"exclude must be a list of glob strings, not {exclude!r}")
    if "maxFileSize" in section:
        size = section["maxFileSize"]
        if size is None:
            changes["max_file_size"] = DEFAULT_MAX_FILE_SIZE
        elif isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0 and int(size) == size:
            changes["max_file_size"] = int(size)
        else:
            warnings.append(f"maxFileSize must be a positive number of bytes, not {size!r}")
    if "ranker" in section:
        ok, ranker = _optional_text(section["ranker"], unset=("",))
        if ok:
            changes["ranker"] = ranker
        else:
            warnings.append(f"ranker must be a folder path or null, not {section['ranker']!r}")
    if "rerankK" in section:
        k = section["rerankK"]
        if k is None:
            changes["rerank_k"] = DEFAULT_RERANK_K
        elif isinstance(k, int) and not isinstance(k, bool) and 2 <= k <= 200:
            changes["rerank_k"] = k
        else:
            warnings.append(f"rerankK must be a whole number from 2 to 200, not {k!r}")
    if "shards" in section:
        ok, shards = _optional_text(section["shards"], unset=("",))
        if ok:
            changes["shards"] = shards
        else:
            warnings.append(f"shards must be a folder path or null, not {section['shards']!r}")
    return replace(settings, **changes), warnings
