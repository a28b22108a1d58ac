"""Answer a query: gather candidates, score each with the pure fused score, order, cut, re-rank.

The fused score of a candidate is its exact cosine to the query (or a calibrated stand-in while it
has no vector) plus weighted lexical evidence, boosts for the query's names and for query words in
the symbol or path, minus penalties for tests, examples, stubs, vendored and generated code and
non-definition chunks (:mod:`.scoring`). Location questions add file-level evidence. Further hits
from one file are damped so no file floods the top. A configured ranker re-orders the top
``rerank_k``. A hit on a window of a long definition reports the definition's own lines; the
window's lines are its ``match_start_line``/``match_end_line``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..index.identifiers import query_terms
from ..index.store import Store
from ..index.vector_index import VectorIndex
from ..types import Chunk, Encoder, SearchHit, SearchMode
from .candidates import Candidate, gather
from .filters import SearchFilters
from .rerank import OnnxRanker, RerankInfo, rerank_hits
from .scoring import (
    QueryContext,
    RankingWeights,
    Scored,
    diversify,
    file_boosts,
    score_chunk,
    stubs_below_implementations,
)


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
        scored = stubs_below_implementations(file_boosts(scored, context, weights), context)
        scored = diversify(scored, weights.same_file_penalty)
    depth = max(limit, rerank_k) if ranker is not None else limit
    texts = store.chunk_texts(s.key for s in scored[:depth])
    top = [Scored(dataclasses.replace(s.chunk, text=texts.get(s.key, "")), s.score, s.key) for s in scored[:depth]]
    terms = query_terms(query)
    hits = [_to_hit(s, by_id[s.key], terms, _definition_span(store, s.chunk)) for s in top]
    hits, info = rerank_hits(ranker, query, hits, [s.chunk.text for s in top], rerank_k)
    return SearchOutcome(hits[:limit], gathered.dense_used, gathered.lexical_used, info)


def _definition_span(store: Store, chunk: Chunk) -> tuple[int, int]:
    """The lines of the whole definition a window belongs to; a chunk's own lines otherwise."""
    if not chunk.part:
        return chunk.start_line, chunk.end_line
    for start, end in store.definition_spans(chunk.path, chunk.container, chunk.symbol):
        if start <= chunk.start_line <= end:
            return start, max(end, chunk.end_line)
    return chunk.start_line, chunk.end_line


def _to_hit(scored: Scored, candidate: Candidate, terms: list[str], span: tuple[int, int]) -> SearchHit:
    chunk = scored.chunk
    return SearchHit(
        path=chunk.path, start_line=span[0], end_line=span[1], symbol=chunk.symbol,
        container=chunk.container, kind=chunk.kind, language=chunk.language, score=round(scored.score, 4),
        snippet=make_snippet(chunk.text, terms), sources=candidate.sources,
        match_start_line=chunk.start_line, match_end_line=chunk.end_line,
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
