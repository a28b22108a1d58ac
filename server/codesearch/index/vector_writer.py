"""Where embedded vectors go: the store and the graph, in batches (one transaction and one graph
update per few thousand vectors rather than per encoder batch), and the rate they come at."""

from __future__ import annotations

import time

import numpy as np

from .graph_sync import follow_texts
from .store import Store
from .vector_index import VectorIndex


class RateMeter:
    """Chunks per second over the last 30 seconds (since the start until then)."""

    def __init__(self, start: float, window_s: float = 30.0) -> None:
        self.start = start
        self.window_s = window_s
        self.done = 0
        self.recent: list[tuple[float, int]] = []

    def update(self, n: int) -> float:
        now = time.monotonic()
        self.done += n
        self.recent.append((now, n))
        self.recent = [(t, k) for t, k in self.recent if now - t < self.window_s]
        if len(self.recent) > 1:
            return sum(k for _, k in self.recent[1:]) / max(now - self.recent[0][0], 1e-3)
        return self.done / max(now - self.start, 1e-3)


class VectorWriter:
    """Stores vectors and brings the graph in step with them, every ``max_vectors`` or ``max_age_s``.

    The graph follows the store by :func:`.graph_sync.follow_texts`: one label per stored vector that
    some chunk uses, so a text that no chunk has any more by the time it is written (an overlapped
    sync changed the file again) is kept in the cache but never joins the graph."""

    def __init__(self, store: Store, index: VectorIndex, model_key: str, max_vectors: int = 4096,
                 max_age_s: float = 2.0) -> None:
        self.store = store
        self.index = index
        self.model_key = model_key
        self.max_vectors = max_vectors
        self.max_age_s = max_age_s
        self._hashes: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._since = time.monotonic()
        self.store_s = 0.0
        self.hnsw_s = 0.0

    def add(self, hashes: list[str], vectors: np.ndarray) -> bool:
        """Buffer one batch; True if this flushed the buffer."""
        self._hashes.extend(hashes)
        self._vectors.append(vectors)
        if len(self._hashes) >= self.max_vectors or time.monotonic() - self._since >= self.max_age_s:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        self._since = time.monotonic()
        if not self._hashes:
            return
        hashes, vectors = self._hashes, np.concatenate(self._vectors)
        self._hashes, self._vectors = [], []
        clock = time.perf_counter()
        self.store.put_vectors(self.model_key, hashes, vectors)
        self.store_s += time.perf_counter() - clock
        clock = time.perf_counter()
        follow_texts(self.store, self.model_key, self.index, hashes)
        self.hnsw_s += time.perf_counter() - clock
