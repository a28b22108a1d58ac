"""One result list out of several indexes (workspace folders, MCP roots, shards).

Fused scores are absolute (a cosine plus bounded evidence terms), so hits of different indexes are
ordered by score; ties keep each source's own order and the sources' order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from ..types import SearchHit

Source = TypeVar("Source")


def merge_hits(results: Iterable[tuple[Source, Sequence[SearchHit]]], limit: int) -> list[tuple[Source, SearchHit]]:
    ranked = [(-hit.score, s, i, source, hit)
              for s, (source, hits) in enumerate(results) for i, hit in enumerate(hits)]
    ranked.sort(key=lambda item: item[:3])
    return [(source, hit) for _, _, _, source, hit in ranked[:limit]]
