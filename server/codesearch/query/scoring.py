"""The fused score of one chunk for one query: a pure function of the evidence, rule by rule.

Every rule here is a small step with its own weight in :class:`RankingWeights`; the weights are
chosen on the dev sets and the repository benchmark (docs/ranking.md). Nothing here reads the index:
:mod:`.candidates` gathers the evidence, :mod:`.search` orders and cuts the list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..index.identifiers import query_terms, split_identifier
from ..types import Chunk, SearchMode

TEST_PATH = re.compile(r"(^|/)(tests?|__tests__|spec|specs|testing)(/|$)|(^|/)test_[^/]*$|_test\.\w+$|"
                       r"\.(test|spec)\.\w+$|Tests?\.\w+$")
EXAMPLE_PATH = re.compile(r"(^|/)(examples?|samples?|demos?|docs?|benchmarks?|bench)(/|$)")
GENERATED_PATH = re.compile(r"(^|/)(generated|gen|third_party|vendor)(/|$)|_pb2\.py$|\.pb\.go$|\.generated\.")
DEFINITION_KINDS = frozenset({"function", "method", "class"})


@dataclass(frozen=True)
class RankingWeights:
    lexical: float = 0.15  # times bm25 / best bm25 among candidates
    lexical_only_dense_substitute: float = 0.3  # dense score assumed for chunks not yet embedded
    exact_symbol: float = 1.0
    name_terms: float = 0.08  # times the share of query terms found in symbol/container
    path_terms: float = 0.04  # times the share of query terms found in the path
    test_penalty: float = 0.06
    example_penalty: float = 0.04
    generated_penalty: float = 0.08
    non_definition_penalty: float = 0.03
    same_file_penalty: float = 0.03  # per earlier hit from the same file
    dense_candidates: int = 100
    lexical_candidates: int = 100


@dataclass(frozen=True)
class QueryContext:
    """What the scoring rules need to know about the query itself."""

    terms: frozenset[str]
    wants_tests: bool = False
    wants_examples: bool = False
    wants_generated: bool = False

    @classmethod
    def of(cls, query: str) -> QueryContext:
        lower = query.lower()
        return cls(
            terms=frozenset(query_terms(query)),
            wants_tests=_mentions(lower, ("test", "spec", "fixture", "mock")),
            wants_examples=_mentions(lower, ("example", "sample", "demo", "doc", "bench")),
            wants_generated=_mentions(lower, ("generated", "vendor", "protobuf", "pb")),
        )


def _mentions(query_lower: str, words: Sequence[str]) -> bool:
    return any(re.search(rf"\b{w}", query_lower) for w in words)


@dataclass(frozen=True)
class Evidence:
    """What the retrievers found for one chunk."""

    dense: float | None = None  # cosine to the query; None when the chunk has no vector yet
    lexical: float = 0.0  # BM25 relative to the best lexical candidate, 0..1
    exact: bool = False  # the query names this chunk's symbol


def score_chunk(chunk: Chunk, evidence: Evidence, query: QueryContext, weights: RankingWeights,
                mode: SearchMode = SearchMode.FUSED) -> float:
    """Higher is better. ``dense`` and ``lexical`` modes are the retrievers alone (benchmarks)."""
    if mode == SearchMode.LEXICAL:
        return evidence.lexical + (weights.exact_symbol if evidence.exact else 0.0)
    if mode == SearchMode.DENSE:
        return evidence.dense if evidence.dense is not None else -1.0
    return (_retrieval(evidence, weights) + _name_and_path(chunk, query, weights)
            - _location_penalty(chunk, query, weights) - _kind_penalty(chunk, weights))


def _retrieval(evidence: Evidence, weights: RankingWeights) -> float:
    # Not embedded yet (or no encoder): lexical evidence stands in for the dense score.
    dense = evidence.dense if evidence.dense is not None \
        else weights.lexical_only_dense_substitute * evidence.lexical
    return dense + weights.lexical * evidence.lexical + (weights.exact_symbol if evidence.exact else 0.0)


def _name_and_path(chunk: Chunk, query: QueryContext, weights: RankingWeights) -> float:
    if not query.terms:
        return 0.0
    name_parts = set(split_identifier(chunk.symbol)) | set(split_identifier(chunk.container))
    path_parts = set(split_identifier(chunk.path.replace("/", " ").replace(" ", "_")))
    share = len(query.terms)
    return (weights.name_terms * len(query.terms & name_parts) / share
            + weights.path_terms * len(query.terms & path_parts) / share)


def _location_penalty(chunk: Chunk, query: QueryContext, weights: RankingWeights) -> float:
    penalty = 0.0
    if not query.wants_tests and TEST_PATH.search(chunk.path):
        penalty += weights.test_penalty
    if not query.wants_examples and EXAMPLE_PATH.search(chunk.path):
        penalty += weights.example_penalty
    if not query.wants_generated and GENERATED_PATH.search(chunk.path):
        penalty += weights.generated_penalty
    return penalty


def _kind_penalty(chunk: Chunk, weights: RankingWeights) -> float:
    return weights.non_definition_penalty if chunk.kind not in DEFINITION_KINDS else 0.0


@dataclass(frozen=True)
class Scored:
    chunk: Chunk
    score: float
    key: int = 0  # the caller's id for the chunk


def diversify(ranked: Sequence[Scored], penalty: float) -> list[Scored]:
    """``ranked`` (best first) re-ordered so that no single file floods the top: each further hit from
    a file loses ``penalty``; windows of one definition collapse into the best of them."""
    seen_files: dict[str, int] = {}
    seen_defs: set[tuple[str, str, str]] = set()
    kept: list[Scored] = []
    for item in ranked:
        chunk = item.chunk
        if chunk.part:
            key = (chunk.path, chunk.container, chunk.symbol)
            if key in seen_defs:
                continue
            seen_defs.add(key)
        earlier = seen_files.get(chunk.path, 0)
        seen_files[chunk.path] = earlier + 1
        kept.append(Scored(chunk, item.score - penalty * earlier, item.key))
    return sorted(kept, key=lambda s: -s.score)
