"""The ``shards`` setting: a shards folder mounted read-only and searched with the workspace folders."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import EngineConfig, EngineError
from ..shards.search import ShardSet
from ..types import SearchHit


@dataclass(frozen=True)
class Origin:
    """Where a hit comes from: a workspace folder, or a mounted shard's repository (``repo`` set)."""

    root: Path
    repo: str | None = None


class ShardMount:
    """At most one mounted shards folder; replaced when the setting (or the model) changes."""

    def __init__(self) -> None:
        self.folder: str | None = None
        self.shards: ShardSet | None = None
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def mount(self, folder: str | None, config: EngineConfig, on_message: Callable[[str], None]) -> list[str]:
        """Mount ``folder`` (None: nothing) in place of what is mounted; returns what to tell the user."""
        shards: ShardSet | None = None
        notes: list[str] = []
        problems: list[str] = []
        if folder is not None:
            try:
                shards = ShardSet.open(folder, config, on_message=on_message)
                problems = list(shards.problems)
                notes = [f"codesearch-ls: mounted {len(shards.shards)} shard(s) of {folder} read-only",
                         *(f"codesearch-ls: shards: {p}" for p in problems)]
            except EngineError as exc:
                problems = [str(exc)]
                notes = [f"codesearch-ls: shards not mounted: {exc}"]
        with self._lock:
            old, self.shards, self.folder, self.problems = self.shards, shards, folder, problems
        if old is not None:
            old.close()
        return notes

    def search(self, query: str, limit: int, languages: Sequence[str], path_glob: str | None
               ) -> list[tuple[Origin, list[SearchHit]]]:
        shards = self.shards
        if shards is None:
            return []
        result = shards.search(query, limit=limit, languages=languages, path_glob=path_glob)
        return [(Origin(h.root, h.repo), [h.hit]) for h in result.hits]

    def close(self) -> None:
        with self._lock:
            shards, self.shards, self.folder, self.problems = self.shards, None, None, []
        if shards is not None:
            shards.close()

    def to_json(self) -> dict[str, Any]:
        shards = self.shards
        return {"folder": self.folder, "repos": shards.repos if shards else [], "problems": list(self.problems)}
