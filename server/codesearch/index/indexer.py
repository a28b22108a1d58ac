"""Bring a workspace's store and vector index up to date: sync files (fast), then embed (slow).

Phase one walks the workspace and re-chunks only files whose size/mtime (then content hash)
changed, so the lexical index and chunk store are complete within seconds and searchable.
Phase two embeds chunks that have no vector for the current model, most recently modified files
first, reusing cached vectors for any chunk text seen before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from itertools import chain
from pathlib import Path

import numpy as np

from ..embed.pipeline import EmbeddingPipeline, staged
from ..types import Encoder
from ..walk.walker import IgnoreRules, SourceFile, WalkOptions, inspect_file, walk
from .prepare import PreparedFile, Task, prepare, prepared
from .store import FileRow, Store
from .vector_index import VectorIndex
from .vector_writer import RateMeter, VectorWriter

log = logging.getLogger(__name__)


class Phase(str, Enum):
    SCAN = "scan"
    CHUNK = "chunk"
    EMBED = "embed"
    DONE = "done"


@dataclass
class Progress:
    phase: Phase
    files_done: int = 0
    files_total: int = 0
    chunks: int = 0
    embedded: int = 0
    to_embed: int = 0
    rate: float = 0.0  # chunks embedded per second, recent
    eta_s: float | None = None

    @property
    def percentage(self) -> int:
        if self.phase == Phase.SCAN:
            return 0
        if self.phase == Phase.CHUNK:
            return int(10 * self.files_done / max(self.files_total, 1))
        if self.phase == Phase.EMBED:
            return 10 + int(90 * self.embedded / max(self.to_embed, 1))
        return 100


ProgressCallback = Callable[[Progress], None]


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    parse_failed: list[str] = field(default_factory=list)
    read_errors: list[tuple[str, str]] = field(default_factory=list)
    touched_texts: set[str] = field(default_factory=set)  # embed hashes of chunks added or removed
    cancelled: bool = False
    store_s: float = 0.0  # writing the store and its full-text index (the rest is walking, reading, chunking)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class EmbedReport:
    embedded: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    cancelled: bool = False
    stages: dict[str, float] = field(default_factory=dict)  # busy seconds per stage, see embed.pipeline


@lru_cache(maxsize=1)
def chunker_fingerprint() -> str:
    """Changes whenever chunking could: the chunker's and language table's code, the grammars' versions."""
    from importlib import metadata

    from .. import languages
    from ..chunk import chunker

    digest = hashlib.blake2b(digest_size=8)
    for module in (chunker, languages):
        digest.update(Path(module.__file__ or "").read_bytes())
    for package in sorted({module for module, _ in languages._GRAMMARS.values()} | {"tree_sitter"}):
        name = package.replace("_", "-")
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "missing"
        digest.update(f"{name}={version}".encode())
    return digest.hexdigest()


class Indexer:
    def __init__(self, root: Path, store: Store, walk_options: WalkOptions) -> None:
        self.root = Path(root).resolve()
        self.store = store
        self.walk_options = walk_options
        self._rules: IgnoreRules | None = None

    def invalidate_rules(self) -> None:
        """Ignore files changed: the next path check re-reads them."""
        self._rules = None

    # phase one --------------------------------------------------------------------------------
    def sync(self, overlays: Mapping[str, str], cancel: threading.Event | None = None,
             progress: ProgressCallback | None = None,
             on_stored: Callable[[PreparedFile], None] | None = None, parallel: bool = True) -> SyncReport:
        """Re-chunk what changed on disk (or in unsaved editor buffers) and drop what is gone.

        Files are read and chunked in worker processes when there are many and ``parallel`` (starting
        them costs a second on a busy machine: not worth it for a sync cut short); this thread writes
        the store, committing twice a second, so searches see the files synced so far."""
        report = SyncReport()
        if progress:
            progress(Progress(Phase.SCAN))
        self._rules = IgnoreRules(self.root, self.walk_options)
        result = walk(self.root, self.walk_options, self._rules)
        report.skipped = [(s.path, s.reason) for s in result.skipped]
        known = self.store.files()
        tasks = [t for t in (self._task(source, known, overlays) for source in result.files) if t is not None]
        report.unchanged = len(result.files) - len(tasks)
        total = len(result.files)
        last_report = 0.0
        with self.store.bulk() as bulk, closing(prepared(tasks, parallel)) as items:
            for done, item in enumerate(items, report.unchanged + 1):
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    return report
                clock = time.perf_counter()
                self._store(item, known.get(item.source.path), report)
                bulk.maybe_commit()
                report.store_s += time.perf_counter() - clock
                if on_stored is not None and item.chunks:
                    on_stored(item)
                now = time.monotonic()
                if progress and (now - last_report > 0.2 or done == total):
                    last_report = now
                    progress(Progress(Phase.CHUNK, files_done=done, files_total=total))
            for path in set(known) - {source.path for source in result.files}:
                report.touched_texts |= self.store.delete_file(path)
                report.removed += 1
        if progress and not tasks:
            progress(Progress(Phase.CHUNK, files_done=total, files_total=total))
        return report

    def sync_paths(self, paths: Iterable[str], overlays: Mapping[str, str]) -> SyncReport:
        """Re-check just these workspace-relative paths (from a watcher or an editor)."""
        report = SyncReport()
        known = self.store.files()
        for rel in sorted(set(paths)):
            source = self._source_for(rel)
            if source is None:
                if rel in known:
                    report.touched_texts |= self.store.delete_file(rel)
                    report.removed += 1
                continue
            self._sync_one(source, known, overlays, report)
        return report

    def _source_for(self, rel: str) -> SourceFile | None:
        if self._rules is None:
            self._rules = IgnoreRules(self.root, self.walk_options)
        found = inspect_file(self.root, rel, self.walk_options, self._rules)
        return found if isinstance(found, SourceFile) else None

    def _sync_one(self, source: SourceFile, known: Mapping[str, FileRow], overlays: Mapping[str, str],
                  report: SyncReport) -> None:
        task = self._task(source, known, overlays)
        if task is None:
            report.unchanged += 1
            return
        self._store(prepare(task), known.get(source.path), report)

    @staticmethod
    def _task(source: SourceFile, known: Mapping[str, FileRow], overlays: Mapping[str, str]) -> Task | None:
        """What to read for this file, or None when its size and mtime say it did not change."""
        row = known.get(source.path)
        overlay = overlays.get(source.path)
        if overlay is None and row is not None and row.size == source.size and row.mtime_ns == source.mtime_ns:
            return None
        return Task(source, row.hash if row is not None else None, overlay)

    def _store(self, item: PreparedFile, row: FileRow | None, report: SyncReport) -> None:
        source = item.source
        if item.error:
            report.read_errors.append((source.path, item.error))
            log.warning("cannot read %s: %s", source.path, item.error)
            return
        if item.unchanged:
            self.store.touch_file(source.path, source.size, source.mtime_ns)
            report.unchanged += 1
            return
        if item.parse_failed:
            report.parse_failed.append(source.path)
        # An editor buffer's text is not what is on disk: record an impossible mtime so the file is
        # read again once the buffer is closed or saved.
        mtime_ns = -1 if item.overlay else source.mtime_ns
        report.touched_texts |= self.store.replace_file(source.path, source.size, mtime_ns, item.digest,
                                                        item.language, item.parse_failed, item.chunks, item.terms)
        if row is None:
            report.added += 1
        else:
            report.updated += 1

    # phase two --------------------------------------------------------------------------------
    def embed_pending(self, encoder: Encoder, index: VectorIndex, cancel: threading.Event | None = None,
                      progress: ProgressCallback | None = None, batch_size: int = 64,
                      on_batch: Callable[[], None] | None = None) -> EmbedReport:
        """Embed every chunk text lacking a vector for this model; each batch of vectors joins the graph.

        The texts go through the embedding pipeline (tokenised ahead, several workers, newest files
        first); vectors reach the store and the graph in batches (``on_batch`` runs after each).
        """
        hashes = self.store.pending_hashes(encoder.model_key)
        pipeline = EmbeddingPipeline(staged(encoder, batch_size), self._texts_of(hashes), cancel=cancel)
        return self.write_embedded(pipeline, encoder.model_key, index, len(hashes), cancel, progress, on_batch)

    def write_embedded(self, pipeline: EmbeddingPipeline[str], model_key: str, index: VectorIndex, to_embed: int,
                       cancel: threading.Event | None = None, progress: ProgressCallback | None = None,
                       on_batch: Callable[[], None] | None = None,
                       ready: Iterable[tuple[list[str], np.ndarray]] = ()) -> EmbedReport:
        """Store what ``pipeline`` embeds (after ``ready``, batches it handed over already) and bring the
        graph in step with it, in batches; closes the pipeline."""
        report = EmbedReport()
        start = time.monotonic()
        files, chunks, _ = self.store.counts(model_key)
        meter = RateMeter(start)
        writer = VectorWriter(self.store, index, model_key)
        try:
            for keys, vectors in chain(ready, pipeline):
                report.embedded += len(keys)
                if writer.add(keys, vectors) and on_batch:
                    on_batch()
                if progress:
                    rate = meter.update(len(keys))
                    left = max(to_embed - report.embedded, 0)
                    progress(Progress(Phase.EMBED, files_done=files, files_total=files, chunks=chunks,
                                      embedded=report.embedded, to_embed=to_embed, rate=rate,
                                      eta_s=left / rate if rate > 0 else None))
        finally:
            pipeline.close()
            writer.flush()
        report.cancelled = cancel is not None and cancel.is_set()
        report.elapsed_s = time.monotonic() - start
        report.stages = {**pipeline.stats.as_dict(), "store_s": writer.store_s, "hnsw_s": writer.hnsw_s}
        return report

    def _texts_of(self, hashes: list[str], page: int = 512) -> Iterator[tuple[str, str]]:
        """(hash, text) in the given order, read a page at a time; hashes no chunk has any more are left out."""
        for start in range(0, len(hashes), page):
            part = hashes[start:start + page]
            texts = self.store.texts_for(part)
            yield from ((h, texts[h]) for h in part if h in texts)
