"""Answer a query: gather candidates, score each with the pure fused score, order, cut, re-rank.

The fused score of a candidate is its exact cosine to the query plus weighted lexical evidence,
boosts for an exact symbol match and for query words in the symbol or path, minus small penalties
for tests, examples, generated code and non-definition chunks (:mod:`.scoring`). Further hits from
one file are damped so no file floods the top. A configured ranker re-orders the top ``rerank_k``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..index.identifiers import query_terms
from ..index.store import Store
from ..index.vector_index import VectorIndex
from ..types import Encoder, SearchHit, SearchMode
from .candidates import Candidate, gather
from .filters import SearchFilters
from .rerank import OnnxRanker, RerankInfo, rerank_hits
from .scoring import QueryContext, RankingWeights, Scored, diversify, score_chunk


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[SearchHit]
    dense_used: bool
    lexical_used: bool
    rerank: RerankInfo


NO_FILTERS = SearchFilters()
DEFAULT_WEIGHTS = RankingWeights()


def run_search(store: Store, index: VectorIndex | None, encoder: Encoder | None, query: str, *,
               limit: int = 10, filters: SearchFilters = NO_FILTERS, weights: RankingWeights = DEFAULT_WEIGHTS,
               mode: SearchMode = SearchMode.FUSED, ranker: OnnxRanker | None = None,
               rerank_k: int = 0) -> SearchOutcome:
    query = query.strip()
    gathered = gather(store, index, encoder, query, filters=filters, weights=weights, mode=mode)
    context = QueryContext.of(query)
    by_id = {c.row.id: c for c in gathered.candidates}
    scored = sorted(
        (Scored(c.row.chunk, score_chunk(c.row.chunk, c.evidence, context, weights, mode), c.row.id)
         for c in gathered.candidates),
        key=lambda s: (-s.score, s.chunk.path, s.chunk.start_line),
    )
    if mode == SearchMode.FUSED:
        scored = diversify(scored, weights.same_file_penalty)
    depth = max(limit, rerank_k) if ranker is not None else limit
    top = scored[:depth]
    terms = query_terms(query)
    hits = [_to_hit(s, by_id[s.key], terms) for s in top]
    hits, info = rerank_hits(ranker, query, hits, [s.chunk.text for s in top], rerank_k)
    return SearchOutcome(hits[:limit], gathered.dense_used, gathered.lexical_used, info)


def _to_hit(scored: Scored, candidate: Candidate, terms: list[str]) -> SearchHit:
    chunk = scored.chunk
    return SearchHit(
        path=chunk.path, start_line=chunk.start_line, end_line=chunk.end_line, symbol=chunk.symbol,
        container=chunk.container, kind=chunk.kind, language=chunk.language, score=round(scored.score, 4),
        snippet=make_snippet(chunk.text, terms), sources=candidate.sources,
    )


def make_snippet(text: str, terms: list[str], width: int = 160) -> str:
    """One line: the first line mentioning a query term, else the first non-blank line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    best = lines[0]
    if terms:
        lowered = [ln.lower() for ln in lines]
        for i, ln in enumerate(lowered[:40]):
            if any(t in ln for t in terms):
                best = lines[i]
                break
    return best if len(best) <= width else best[: width - 1] + "…"
