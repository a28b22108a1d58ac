"""Gather the chunks worth scoring for a query, with the evidence each retriever has for them.

Dense candidates come from the HNSW graph, lexical ones from FTS5 (their BM25 becomes the share of
the query's BM25 weight they reach, :func:`.scoring.lexical_share`), chunks named by the query from
the chunk table (the scoring decides how well the name matches). The graph holds one vector per
unique text: a dense hit stands for every chunk with that text (up to ``DENSE_COPIES`` of them;
scoring and the per-file damping choose among copies). A candidate found only lexically still gets
its exact cosine from its stored vector, so every embedded candidate is scored on the same dense
scale; candidates without a vector yet get a stand-in cosine (:func:`.scoring.stand_in_cosines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..index.identifiers import query_terms
from ..index.store import ChunkRow, Store
from ..index.vector_index import VectorIndex
from ..types import Encoder, SearchMode, Vectors
from .filters import SearchFilters
from .intent import as_identifier, mentioned_names
from .scoring import Evidence, RankingWeights, extends_elsewhere, fts5_idf, lexical_share, stand_in_cosines

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
    head: str = ""  # the first lines of a chunk the query names (symbol lookups read them)
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
    rows = store.chunk_rows(found, with_text=False)
    accepted = {cid: row for cid, row in rows.items() if filters.accepts(row.chunk.path, row.chunk.language)}
    if query_vec is not None and encoder is not None:
        _fill_dense(found, accepted, store, encoder.model_key, query_vec)
    kept = [(row, found[cid]) for cid, row in accepted.items()]
    stand_ins = stand_in_cosines([f.dense for _, f in kept], [f.lexical for _, f in kept], weights)
    candidates = [Candidate(row, Evidence(f.dense, f.lexical, guess, extends_elsewhere(row.chunk.language, f.head)),
                            tuple(sorted(f.sources)))
                  for (row, f), guess in zip(kept, stand_ins, strict=True)]
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
    rows, hits = store.term_rows(terms) if lexical else (0, {})
    idfs = [fts5_idf(rows, hits.get(t, 0)) for t in terms]
    for chunk_id, bm25 in lexical:
        item = found.setdefault(chunk_id, _Found())
        item.lexical = lexical_share(bm25, idfs)
        item.sources.add("lexical")
    for name in _names_asked(query):
        for chunk_id, head in store.symbol_matches(name):
            item = found.setdefault(chunk_id, _Found())
            item.sources.add("symbol")
            item.head = head
    return bool(terms)


def _names_asked(query: str) -> list[str]:
    """The symbols worth looking up: the query's one name, or the names inside a sentence."""
    identifier = as_identifier(query)
    names = [identifier] if identifier is not None else [*mentioned_names(query),
                                                          *mentioned_names(query, capitalised=True)]
    return list(dict.fromkeys(n.name for n in names))


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
