"""The HNSW graph over the stored vectors (hnswlib, inner product on normalised vectors).

Labels are vector ids (``vectors.id``): one node per unique embedded text, whatever number of chunks
share it, so copies of a file or of boilerplate neither crowd the graph nor break its navigation,
and re-creating a file's chunks leaves the graph alone for every text that did not change. A vector
id always stands for the same text and model, so a label once added never needs updating.

The graph is a cache of the vectors in the store: it is saved atomically, and on load it is checked
against the store and repaired or rebuilt rather than trusted (:mod:`.graph_sync`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

import hnswlib
import numpy as np

from ..types import Vectors

log = logging.getLogger(__name__)

FORMAT = 2  # 1: labels were chunk ids (schema 3)


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
        self._labels: set[int] = set()  # live labels
        self._deleted: set[int] = set()  # labels still in the structure, marked deleted (a superset)
        self._lock = threading.RLock()
        self.changes = 0  # labels added or removed since the graph was loaded or saved

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> set[int]:
        with self._lock:
            return set(self._labels)

    def missing(self, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that are not live labels."""
        with self._lock:
            return [i for i in ids if i not in self._labels]

    def add(self, ids: np.ndarray, vectors: Vectors) -> None:
        """Add labels; one that is live already is left alone, a deleted one comes back as it was."""
        if len(ids) == 0:
            return
        with self._lock:
            fresh: list[int] = []
            for position, label in enumerate(ids.tolist()):
                if label in self._labels:
                    continue
                if label in self._deleted and self._undelete(label):
                    self.changes += 1
                    continue
                fresh.append(position)
            if not fresh:
                return
            needed = self._index.get_current_count() + len(fresh)
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, int(capacity * 1.5) + 1024))
            # New labels may take the slot of a deleted one, whose label then leaves the structure.
            self._index.add_items(vectors[fresh], ids[fresh], replace_deleted=True)
            self._labels.update(int(ids[i]) for i in fresh)
            self.changes += len(fresh)
            if self._deleted:
                self._deleted = {int(i) for i in self._index.get_ids_list()} - self._labels

    def _undelete(self, label: int) -> bool:
        self._deleted.discard(label)
        try:
            self._index.unmark_deleted(label)
        except RuntimeError:  # its slot was reused by another label
            return False
        self._labels.add(label)
        return True

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            for label in ids:
                if label not in self._labels:
                    continue
                self._labels.discard(label)
                self._deleted.add(label)
                self.changes += 1
                with contextlib.suppress(RuntimeError):  # already deleted
                    self._index.mark_deleted(label)

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
            try:
                self._write_graph(tmp)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise
            sidecar = {"format": FORMAT, "model_key": model_key, "dimension": self.dimension,
                       "count": len(self._labels), "deleted": sorted(self._deleted),
                       "capacity": self._index.get_max_elements(), "bytes": tmp.stat().st_size,
                       "blake2b": _file_digest(tmp)}
        meta_tmp = path.with_name(path.name + ".json.tmp")
        meta_tmp.write_text(json.dumps(sidecar))
        os.replace(tmp, path)
        os.replace(meta_tmp, path.with_name(path.name + ".json"))
        self.changes = 0

    def _write_graph(self, tmp: Path) -> None:
        """hnswlib writes without checking for errors: make sure the disk has room, then that it
        all arrived, so that a full disk never replaces a good graph with a cut one."""
        index = self._index
        per_element = self.dimension * 4 + index.M * 2 * 4 + 4 + 8 + 4  # vector, level-0 links, label, level
        least = 96 + index.element_count * per_element
        free = shutil.disk_usage(tmp.parent).free
        if free < least + (1 << 20):
            raise OSError(errno.ENOSPC, f"{least} bytes needed for the vector graph, {free} free")
        index.save_index(str(tmp))
        if tmp.stat().st_size < least:
            raise OSError(errno.ENOSPC, "the vector graph was cut short while being written")

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
        if meta.get("format") != FORMAT:
            raise ValueError(f"the saved vector index has format {meta.get('format', 1)}, not {FORMAT}")
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
        # get_ids_list() lists deleted labels too; the sidecar names them. The caller then
        # reconciles the labels with the store.
        present = {int(i) for i in index._index.get_ids_list()}
        deleted = {int(i) for i in meta.get("deleted", [])}
        index._labels = present - deleted
        index._deleted = present & deleted
        if len(index._labels) != int(meta.get("count", -1)):
            raise ValueError("the saved vector index does not match its sidecar")
        return index


def _file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
