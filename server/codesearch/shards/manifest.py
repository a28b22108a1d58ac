"""``shards.json``: what each shard of a shards folder holds and how it was built.

One record per repository, keyed by its source folder. The builder rewrites the file atomically
after every repository, so an interrupted build keeps what it finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

MANIFEST_NAME = "shards.json"
SHARDS_SUBDIR = "shards"
MANIFEST_VERSION = 1


class ManifestError(RuntimeError):
    """The shards folder has no readable manifest."""


@dataclass(frozen=True)
class ShardRecord:
    repo: str  # the label search results carry; unique within the folder
    source: str  # the repository's folder when it was built (absolute)
    shard: str  # the shard's folder, relative to the shards folder
    status: str = "ok"  # ok | failed
    content_kind: str = ""  # git (a clean checkout's HEAD commit) | files (walked paths, sizes, mtimes)
    content_hash: str = ""
    build_key: str = ""  # model, chunker and walk options: a change rebuilds the shard
    model_key: str = ""
    model_id: str = ""
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    index_bytes: int = 0
    embed_s: float = 0.0
    build_s: float = 0.0
    built_at: str = ""  # UTC, ISO 8601
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ShardsManifest:
    records: tuple[ShardRecord, ...] = ()
    updated_at: str = ""

    def by_source(self) -> dict[str, ShardRecord]:
        return {r.source: r for r in self.records}

    def with_record(self, record: ShardRecord) -> ShardsManifest:
        """This manifest with ``record`` added or replacing the one of the same source."""
        kept = [r for r in self.records if r.source != record.source]
        return replace(self, records=tuple(sorted([*kept, record], key=lambda r: r.repo)))

    def relabelled(self, labels: Mapping[str, str]) -> ShardsManifest:
        return replace(self, records=tuple(replace(r, repo=labels.get(r.source, r.repo)) for r in self.records))

    @classmethod
    def read(cls, folder: Path) -> ShardsManifest:
        path = Path(folder) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"{folder} is not a shards folder (no {MANIFEST_NAME})") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
            raise ManifestError(f"{path} is not a shards manifest")
        return cls(tuple(ShardRecord.from_json(r) for r in data["shards"]), str(data.get("updated_at", "")))

    @classmethod
    def read_or_empty(cls, folder: Path) -> ShardsManifest:
        return cls.read(folder) if (Path(folder) / MANIFEST_NAME).exists() else cls()

    def write(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"version": MANIFEST_VERSION, "updated_at": self.updated_at,
                "shards": [r.to_json() for r in self.records]}
        tmp = folder / f".{MANIFEST_NAME}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, folder / MANIFEST_NAME)


def repo_labels(sources: Iterable[str]) -> dict[str, str]:
    """A short unique label per source folder: its name, or as many trailing parts as tell it apart."""
    paths = sorted({Path(s) for s in sources})
    labels: dict[str, str] = {}
    depth = 1
    pending = paths
    while pending:
        tails = {p: "/".join(p.parts[-depth:]) for p in pending}
        counts: dict[str, int] = {}
        for tail in tails.values():
            counts[tail] = counts.get(tail, 0) + 1
        unique = [p for p in pending if counts[tails[p]] == 1 or depth >= len(p.parts)]
        labels.update({str(p): tails[p] for p in unique})
        pending = [p for p in pending if p not in unique]
        depth += 1
    return labels
