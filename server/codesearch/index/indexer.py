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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path

from ..chunk.chunker import chunk_file
from ..languages import detect_language
from ..types import Encoder
from ..walk.walker import IgnoreRules, SourceFile, WalkOptions, inspect_file, read_text, walk
from .graph_sync import follow_texts
from .store import FileRow, Store, text_hash
from .vector_index import VectorIndex

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

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class EmbedReport:
    embedded: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    cancelled: bool = False


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
             progress: ProgressCallback | None = None) -> SyncReport:
        """Re-chunk what changed on disk (or in unsaved editor buffers) and drop what is gone."""
        report = SyncReport()
        if progress:
            progress(Progress(Phase.SCAN))
        self._rules = IgnoreRules(self.root, self.walk_options)
        result = walk(self.root, self.walk_options, self._rules)
        report.skipped = [(s.path, s.reason) for s in result.skipped]
        known = self.store.files()
        seen: set[str] = set()
        total = len(result.files)
        last_report = 0.0
        for done, source in enumerate(result.files, 1):
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                return report
            seen.add(source.path)
            self._sync_one(source, known, overlays, report)
            now = time.monotonic()
            if progress and (now - last_report > 0.2 or done == total):
                last_report = now
                progress(Progress(Phase.CHUNK, files_done=done, files_total=total))
        for path in set(known) - seen:
            report.touched_texts |= self.store.delete_file(path)
            report.removed += 1
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
        row = known.get(source.path)
        overlay = overlays.get(source.path)
        if overlay is None and row is not None and row.size == source.size and row.mtime_ns == source.mtime_ns:
            report.unchanged += 1
            return
        try:
            text = overlay if overlay is not None else read_text(source.abs_path)
        except OSError as exc:
            report.read_errors.append((source.path, str(exc)))
            log.warning("cannot read %s: %s", source.path, exc)
            return
        digest = text_hash(text)
        if row is not None and row.hash == digest:
            self.store.touch_file(source.path, source.size, source.mtime_ns)
            report.unchanged += 1
            return
        language = source.language or detect_language(source.path) or "text"
        chunked = chunk_file(source.path, text, language)
        if chunked.parse_failed:
            report.parse_failed.append(source.path)
        # An editor buffer's text is not what is on disk: record an impossible mtime so the file is
        # read again once the buffer is closed or saved.
        mtime_ns = -1 if overlay is not None else source.mtime_ns
        report.touched_texts |= self.store.replace_file(source.path, source.size, mtime_ns, digest, language,
                                                        chunked.parse_failed, chunked.chunks)
        if row is None:
            report.added += 1
        else:
            report.updated += 1

    # phase two --------------------------------------------------------------------------------
    def embed_pending(self, encoder: Encoder, index: VectorIndex, cancel: threading.Event | None = None,
                      progress: ProgressCallback | None = None, batch_size: int = 64,
                      on_batch: Callable[[], None] | None = None) -> EmbedReport:
        """Embed every chunk text lacking a vector for this model; each batch joins the HNSW graph."""
        report = EmbedReport()
        start = time.monotonic()
        model_key = encoder.model_key
        files, chunks, _ = self.store.counts(model_key)
        to_embed = self.store.count_pending(model_key)
        recent: list[tuple[float, int]] = []
        done = 0
        queue: list[tuple[str, str]] = []
        while True:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            if not queue:
                # One scan of the store fetches many batches' worth, newest files first.
                queue = self.store.pending_embeddings(model_key, batch_size * 32)
                queue.reverse()
            if not queue:
                break
            pending = [queue.pop() for _ in range(min(batch_size, len(queue)))]
            hashes = [h for h, _ in pending]
            vectors = encoder.encode_documents([t for _, t in pending])
            self.store.put_vectors(model_key, hashes, vectors)
            follow_texts(self.store, model_key, index, hashes)
            done += len(pending)
            report.embedded += len(pending)
            now = time.monotonic()
            recent.append((now, len(pending)))
            recent = [(t, n) for t, n in recent if now - t < 30.0]
            window = max(now - recent[0][0], 1e-3) if len(recent) > 1 else max(now - start, 1e-3)
            rate = sum(n for _, n in recent[1:]) / window if len(recent) > 1 else done / window
            if progress:
                left = max(to_embed - done, 0)
                progress(Progress(Phase.EMBED, files_done=files, files_total=files, chunks=chunks, embedded=done,
                                  to_embed=to_embed, rate=rate, eta_s=left / rate if rate > 0 else None))
            if on_batch:
                on_batch()
        report.elapsed_s = time.monotonic() - start
        return report
