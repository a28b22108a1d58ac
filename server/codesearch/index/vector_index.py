"""The HNSW graph over chunk vectors (hnswlib, inner product on normalised vectors).

Labels are chunk ids. The graph is a cache of the vectors in the store: it is saved atomically,
and on load it is checked against the store and repaired or rebuilt rather than trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import hnswlib
import numpy as np

from ..types import Vectors

log = logging.getLogger(__name__)


class VectorIndex:
    def __init__(self, dimension: int, capacity: int = 1024, *, ef_construction: int = 200, m: int = 16,
                 ef_search: int = 128, _empty: bool = False) -> None:
        self.dimension = dimension
        self.ef_search = ef_search
        self._index = hnswlib.Index(space="ip", dim=dimension)
        if not _empty:
            self._index.init_index(max_elements=max(capacity, 16), ef_construction=ef_construction, M=m,
                                   allow_replace_deleted=True)
        self._index.set_ef(ef_search)
        self._labels: set[int] = set()
        self._lock = threading.RLock()
        self.changes = 0  # labels added or removed since the graph was loaded or saved

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> set[int]:
        with self._lock:
            return set(self._labels)

    def add(self, ids: np.ndarray, vectors: Vectors) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            needed = self._index.get_current_count() + len(ids)
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, int(capacity * 1.5) + 1024))
            # Chunk ids are never reused (AUTOINCREMENT), so a label is either new or live;
            # new ones may take the slot of a deleted one.
            fresh = [i for i, label in enumerate(ids.tolist()) if label not in self._labels]
            live = [i for i, label in enumerate(ids.tolist()) if label in self._labels]
            if live:
                self._index.add_items(vectors[live], ids[live])
            if fresh:
                self._index.add_items(vectors[fresh], ids[fresh], replace_deleted=True)
            self._labels.update(int(i) for i in ids.tolist())
            self.changes += len(fresh)

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            for label in ids:
                self._labels.discard(label)
                with contextlib.suppress(RuntimeError):  # unknown or already deleted
                    self._index.mark_deleted(label)
                    self.changes += 1

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        with self._lock:
            n = len(self._labels)
            if n == 0:
                return []
            k = min(k, n)
            while True:
                self._index.set_ef(max(self.ef_search, 2 * k))
                try:
                    labels, distances = self._index.knn_query(vector.reshape(1, -1), k=k)
                    break
                except RuntimeError:
                    # Fewer than k reachable live elements (after many deletions): ask for fewer.
                    if k <= 1:
                        return []
                    k //= 2
        return [(int(label), 1.0 - float(d)) for label, d in zip(labels[0], distances[0], strict=True)]

    def save(self, path: Path, model_key: str) -> None:
        """Write graph + sidecar atomically; the sidecar says which model and labels it holds."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            self._index.save_index(str(tmp))
            sidecar = {"model_key": model_key, "dimension": self.dimension, "count": len(self._labels),
                       "capacity": self._index.get_max_elements(), "bytes": tmp.stat().st_size,
                       "blake2b": _file_digest(tmp)}
        meta_tmp = path.with_name(path.name + ".json.tmp")
        meta_tmp.write_text(json.dumps(sidecar))
        os.replace(tmp, path)
        os.replace(meta_tmp, path.with_name(path.name + ".json"))
        self.changes = 0

    @classmethod
    def load(cls, path: Path, model_key: str, dimension: int) -> VectorIndex:
        """Raise ValueError if the saved graph is missing, for another model, or unreadable."""
        path = Path(path)
        meta_path = path.with_name(path.name + ".json")
        if not path.is_file() or not meta_path.is_file():
            raise ValueError("no saved vector index")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"the vector index sidecar is unreadable: {exc}") from exc
        if meta.get("model_key") != model_key or meta.get("dimension") != dimension:
            raise ValueError("the saved vector index belongs to another model")
        # hnswlib does not validate what it reads (a damaged file can crash the process), so the
        # file must match the size and digest recorded when it was written.
        if path.stat().st_size != meta.get("bytes") or _file_digest(path) != meta.get("blake2b"):
            raise ValueError("the saved vector index does not match its checksum")
        index = cls(dimension, _empty=True)
        try:
            index._index.load_index(str(path), max_elements=int(meta.get("capacity", 0)),
                                    allow_replace_deleted=True)
        except Exception as exc:  # hnswlib raises RuntimeError on truncated/corrupt files
            raise ValueError(f"the saved vector index is unreadable: {exc}") from exc
        index._index.set_ef(index.ef_search)
        # get_ids_list() still lists deleted labels; the caller reconciles against the store.
        index._labels = {int(i) for i in index._index.get_ids_list()}
        if len(index._labels) < int(meta.get("count", 0)):
            raise ValueError("the saved vector index is incomplete")
        return index


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
