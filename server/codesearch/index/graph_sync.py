"""Keep the HNSW graph equal to the store: one label per vector that some chunk uses.

The invariant, after every sync, embedding batch, load and refresh: the graph's live labels are
exactly :meth:`Store.live_vector_ids` for the model. A sync or an embedding batch knows which texts
it touched, so it fixes just those (:func:`follow_texts`); loading a saved graph or refreshing a
read-only view compares everything (:func:`follow_all`). :func:`drift` says how far apart they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .store import Store
from .vector_index import VectorIndex


@dataclass(frozen=True)
class GraphChange:
    added: int = 0
    removed: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def follow_texts(store: Store, model_key: str, index: VectorIndex, hashes: Iterable[str]) -> GraphChange:
    """After chunks with these embed hashes were added or removed, or these texts were embedded."""
    liveness = store.vector_liveness(model_key, set(hashes))
    dead = [vid for vid, live in liveness.items() if not live]
    wanted = index.missing(vid for vid, live in liveness.items() if live)
    return _apply(store, index, wanted, dead)


def follow_all(store: Store, model_key: str, index: VectorIndex) -> GraphChange:
    """Compare every label with the store and fix the difference (only missing vectors are read)."""
    missing, extra = drift(store, model_key, index)
    return _apply(store, index, sorted(missing), sorted(extra))


def drift(store: Store, model_key: str, index: VectorIndex) -> tuple[set[int], set[int]]:
    """(vector ids the graph lacks, labels it has that no chunk uses): both empty when in step."""
    wanted = store.live_vector_ids(model_key)
    have = index.labels
    return wanted - have, have - wanted


def _apply(store: Store, index: VectorIndex, wanted: list[int], dead: list[int]) -> GraphChange:
    index.remove(dead)
    added = 0
    for ids, vectors in store.vectors_by_id(wanted):
        index.add(ids, vectors)
        added += len(ids)
    return GraphChange(added, len(dead))
