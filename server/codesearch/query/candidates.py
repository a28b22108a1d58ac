"""Gather the chunks worth scoring for a query, with the evidence each retriever has for them.

Dense candidates come from the HNSW graph, lexical ones from FTS5, exact symbol matches from the
chunk table. The graph holds one vector per unique text: a dense hit stands for every chunk with
that text (up to ``DENSE_COPIES`` of them; scoring and the per-file damping choose among copies).
A candidate found only lexically still gets its exact cosine from its stored vector, so every
embedded candidate is scored on the same dense scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..index.identifiers import looks_like_identifier, query_terms
from ..index.store import ChunkRow, Store
from ..index.vector_index import VectorIndex
from ..types import Encoder, SearchMode, Vectors
from .filters import SearchFilters
from .scoring import Evidence, RankingWeights

FILTERED_WIDENING = 4  # filters drop candidates after retrieval: fetch this many times more
DENSE_COPIES = 64  # chunks one dense hit may stand for; copies beyond differ only by path and name


@dataclass(frozen=True)
class Candidate:
    row: ChunkRow
    evidence: Evidence
    sources: tuple[str, ...]  # which retrievers found it: "dense", "lexical", "symbol"


@dataclass(frozen=True)
class Gathered:
    candidates: list[Candidate]
    dense_used: bool
    lexical_used: bool


@dataclass
class _Found:
    dense: float | None = None
    lexical: float = 0.0
    exact: bool = False
    sources: set[str] = field(default_factory=set)


def gather(store: Store, index: VectorIndex | None, encoder: Encoder | None, query: str, *,
           filters: SearchFilters, weights: RankingWeights, mode: SearchMode) -> Gathered:
    query = query.strip()
    widen = FILTERED_WIDENING if filters.active else 1
    found: dict[int, _Found] = {}
    query_vec = None
    if mode != SearchMode.LEXICAL and encoder is not None and index is not None and len(index):
        query_vec = encoder.encode_queries([query])[0]
        _add_dense(found, store, index, query_vec, weights.dense_candidates * widen)
    lexical_used = False
    if mode != SearchMode.DENSE:
        lexical_used = _add_lexical(found, store, query, weights.lexical_candidates * widen)
    rows = store.chunk_rows(found)
    accepted = {cid: row for cid, row in rows.items() if filters.accepts(row.chunk.path, row.chunk.language)}
    if query_vec is not None and encoder is not None:
        _fill_dense(found, accepted, store, encoder.model_key, query_vec)
    candidates = [
        Candidate(row, Evidence(dense=f.dense, lexical=f.lexical, exact=f.exact), tuple(sorted(f.sources)))
        for cid, f in found.items() if (row := accepted.get(cid)) is not None
    ]
    return Gathered(candidates, dense_used=query_vec is not None, lexical_used=lexical_used)


def _add_dense(found: dict[int, _Found], store: Store, index: VectorIndex, query_vec: Vectors, k: int) -> None:
    hits = index.search(query_vec, k)
    chunks = store.chunks_for_vectors([vector_id for vector_id, _ in hits], DENSE_COPIES)
    for vector_id, score in hits:
        for chunk_id in chunks.get(vector_id, ()):
            item = found.setdefault(chunk_id, _Found())
            item.dense = score
            item.sources.add("dense")


def _add_lexical(found: dict[int, _Found], store: Store, query: str, k: int) -> bool:
    terms = query_terms(query)
    lexical = store.lexical_search(terms, k)
    best = max((s for _, s in lexical), default=0.0)
    for chunk_id, score in lexical:
        item = found.setdefault(chunk_id, _Found())
        item.lexical = score / best if best > 0 else 0.0
        item.sources.add("lexical")
    if looks_like_identifier(query):
        for chunk_id in store.symbol_matches(query.rstrip("()")):
            item = found.setdefault(chunk_id, _Found())
            item.exact = True
            item.sources.add("symbol")
    return bool(terms)


def _fill_dense(found: dict[int, _Found], rows: dict[int, ChunkRow], store: Store, model_key: str,
                query_vec: Vectors) -> None:
    """Exact cosine for candidates the graph did not return, from their stored vectors."""
    missing = {row.embed_hash for cid, row in rows.items() if found[cid].dense is None}
    if not missing:
        return
    vectors = store.vectors_for_hashes(model_key, missing)
    for cid, row in rows.items():
        vector = vectors.get(row.embed_hash)
        if vector is not None and found[cid].dense is None:
            found[cid].dense = float(vector @ query_vec)
