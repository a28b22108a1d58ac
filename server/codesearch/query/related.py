"""Code like a given definition: the chunk's stored vector queried against the vector index.

Nothing is re-embedded: the source chunk's vector is the one the index already holds, so the
neighbours are exactly what a dense search for that code would find. The chunk itself, its own
windows and whatever encloses it (the same file, overlapping lines) are left out, and the windows
of one long definition elsewhere count once, by their best window.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..index.store import ChunkRow, Store
from ..index.vector_index import VectorIndex
from ..types import SearchHit, Vectors
from .search import make_snippet

DEFINITION_KINDS = frozenset({"function", "method", "class"})
OVERFETCH = 4  # neighbours fetched per wanted hit: exclusions and collapsed windows drop some


def locate_chunk(rows: Sequence[ChunkRow], line: int | None = None, symbol: str | None = None) -> ChunkRow | None:
    """The chunk of one file at ``line`` and/or named ``symbol`` (a name or ``Container.name``).

    Of several candidates the narrowest definition wins: a method over its class, a definition over
    module code; for a split definition named without a line, its first window.
    """
    found = list(rows)
    if symbol:
        found = [r for r in found if _names(r, symbol)]
    if line is not None:
        found = [r for r in found if r.chunk.start_line <= line <= r.chunk.end_line]
    if not found:
        return None
    return min(found, key=lambda r: (r.chunk.kind not in DEFINITION_KINDS, r.chunk.part > 1,
                                     r.chunk.end_line - r.chunk.start_line, r.chunk.start_line))


def _names(row: ChunkRow, symbol: str) -> bool:
    wanted = symbol.replace("::", ".").replace("#", ".").strip().lower()
    chunk = row.chunk
    qualified = chunk.qualified_name.lower()
    return bool(chunk.symbol) and (chunk.symbol.lower() == wanted or qualified == wanted
                                   or qualified.endswith("." + wanted))


def overlaps(a: ChunkRow, b: ChunkRow) -> bool:
    """Same file and overlapping lines: the chunk itself, one of its windows, or what encloses it."""
    return (a.chunk.path == b.chunk.path and a.chunk.start_line <= b.chunk.end_line
            and b.chunk.start_line <= a.chunk.end_line)


def similar_hits(store: Store, index: VectorIndex, vector: Vectors, k: int,
                 exclude: ChunkRow | None = None) -> list[SearchHit]:
    """The ``k`` chunks nearest to ``vector`` (cosine, best first), ``exclude`` and its overlaps left out."""
    neighbours = index.search(vector, k * OVERFETCH + 8)
    # the graph holds one vector per unique text: each neighbour stands for the chunks with that text
    copies = store.chunks_for_vectors([vector_id for vector_id, _ in neighbours], k + 1)
    ranked = [(cid, score) for vector_id, score in neighbours for cid in copies.get(vector_id, ())]
    rows = store.chunk_rows(cid for cid, _ in ranked)
    hits: list[SearchHit] = []
    seen: set[tuple[str, str, str] | int] = set()
    for cid, score in ranked:
        row = rows.get(cid)
        if row is None or (exclude is not None and overlaps(row, exclude)):
            continue
        chunk = row.chunk
        key: tuple[str, str, str] | int = (chunk.path, chunk.container, chunk.symbol) if chunk.part else cid
        if key in seen:
            continue
        seen.add(key)
        hits.append(chunk_hit(row, score, ("dense",)))
        if len(hits) == k:
            break
    return hits


def chunk_hit(row: ChunkRow, score: float, sources: tuple[str, ...] = ()) -> SearchHit:
    chunk = row.chunk
    return SearchHit(
        path=chunk.path, start_line=chunk.start_line, end_line=chunk.end_line, symbol=chunk.symbol,
        container=chunk.container, kind=chunk.kind, language=chunk.language, score=round(float(score), 4),
        snippet=make_snippet(chunk.text, []), sources=sources,
    )
