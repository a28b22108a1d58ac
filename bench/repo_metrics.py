"""Scoring of the repository benchmark: binary relevance, NDCG@10 and MRR@100.

A hit is relevant when its path is the target's and, for definition targets, its line span overlaps
the target span; for file questions the path alone counts. Each query has one target, so only the
first relevant hit counts (a second window of the same long function adds nothing): NDCG@10 is
1/log2(1 + rank) of that hit, MRR@100 is 1/rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NDCG_K = 10
MRR_K = 100


@dataclass(frozen=True)
class Target:
    path: str
    start: int  # 0, 0: the path alone answers (a file question)
    end: int


@dataclass(frozen=True)
class Outcome:
    """How one query fared in one run: the rank of its first relevant hit and where that hit starts."""

    query_id: str
    rank: int | None  # 1-based; None when no relevant hit within the hits returned
    hit_start: int | None = None


def relevant(path: str, start: int, end: int, target: Target) -> bool:
    if path != target.path:
        return False
    if target.start == 0 and target.end == 0:
        return True
    return start <= target.end and end >= target.start


def first_relevant(hits: Iterable[tuple[str, int, int]], target: Target) -> tuple[int | None, int | None]:
    """(1-based rank, start line) of the first relevant hit among (path, start, end) hits."""
    for rank, (path, start, end) in enumerate(hits, 1):
        if relevant(path, start, end, target):
            return rank, start
    return None, None


def ndcg(rank: int | None, k: int = NDCG_K) -> float:
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None, k: int = MRR_K) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


@dataclass(frozen=True)
class Summary:
    queries: int
    ndcg10: float
    mrr: float
    top1: float  # share at rank 1


def summarize(outcomes: Sequence[Outcome]) -> Summary:
    n = len(outcomes)
    if n == 0:
        return Summary(0, float("nan"), float("nan"), float("nan"))
    return Summary(n, sum(ndcg(o.rank) for o in outcomes) / n, sum(reciprocal_rank(o.rank) for o in outcomes) / n,
                   sum(1 for o in outcomes if o.rank == 1) / n)


def starts_at_definition(outcome: Outcome, def_start: int, def_line: int) -> bool:
    """The first relevant hit reports a line from the definition's head (its doc comment, decorators
    or attributes down to the line with its name), not a line in its middle."""
    return outcome.hit_start is not None and def_start <= outcome.hit_start <= def_line
