"""One result list out of several indexes (workspace folders, MCP roots, shards).

Hits of different indexes are ordered by score; ties keep each source's own order and the sources'
order. What makes fused scores comparable across indexes (:mod:`.scoring`), and where it stops:

- the cosine is the same number in every index that uses the same model (one process loads one);
- the lexical evidence is BM25 as a share of what the query's terms can score at most (0..1), not
  BM25 over the best candidate's: a weak keyword match stays weak next to a strong one elsewhere.
  The terms' idf is counted per index, so a word common in one index and rare in another weighs
  differently in each; on the test fixture a chunk's score moves by under 0.03 between its own
  index and one holding both (tests/test_merge.py);
- name boosts and location penalties are constants;
- not comparable: chunks without a vector yet get a stand-in cosine calibrated on their own index's
  embedded candidates; location questions' file evidence is measured against the index's own
  median candidate; an index searched without its model (keywords only) or with a ranker (which
  reorders score slots) scores on its own terms. Such lists still merge, less exactly.
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
