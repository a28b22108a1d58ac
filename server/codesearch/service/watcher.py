"""Watching workspace folders for changes: debounced, coalesced and filtered by the ignore rules.

A burst of events (a ``git checkout`` rewriting 5,000 files, a formatter run, a build) reaches
the callback as one batch once the folder has been quiet for ``quiet_s`` seconds, or at the latest
``max_delay_s`` after the first event of the burst.  Paths the engine would ignore (``.git/``,
``node_modules/``, ``.gitignore``'d files, the caller's exclude globs) are dropped on arrival,
except the ignore files themselves, whose changes the engine answers with a full re-sync.

:class:`Coalescer` is the batching half on its own; the language server also feeds it the
``workspace/didChangeWatchedFiles`` notifications of clients that watch files for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from ..walk.walker import IgnoreRules, WalkOptions

log = logging.getLogger(__name__)

DEFAULT_QUIET_S = 0.3
DEFAULT_MAX_DELAY_S = 2.0
IGNORE_FILE_NAMES = frozenset({".gitignore", ".codesearchignore"})
INFO_EXCLUDE = ".git/info/exclude"


@dataclass
class Batch:
    """What changed in one folder since the last batch: relative POSIX paths, or everything."""

    paths: set[str] = field(default_factory=set)
    full: bool = False  # a folder vanished or moved, or the burst was too big: re-sync the whole folder
    events: int = 0  # raw events folded into this batch

    def __bool__(self) -> bool:
        return bool(self.paths) or self.full


def is_ignore_file(rel: str) -> bool:
    return rel.rpartition("/")[2] in IGNORE_FILE_NAMES or rel == INFO_EXCLUDE


class Coalescer:
    """Folds a stream of changed paths into batches handed to ``flush`` from a background thread.

    ``flush`` runs once the stream has been quiet for ``quiet_s``, or ``max_delay_s`` after the
    first path of a burst; while it runs, new paths gather for the next batch.  More than
    ``full_threshold`` distinct paths turn a batch into a full re-sync, which is cheaper than
    checking each one.
    """

    def __init__(self, flush: Callable[[Batch], None], *, quiet_s: float = DEFAULT_QUIET_S,
                 max_delay_s: float = DEFAULT_MAX_DELAY_S, full_threshold: int = 2000,
                 name: str = "codesearch-coalescer") -> None:
        self._flush = flush
        self.quiet_s = quiet_s
        self.max_delay_s = max(max_delay_s, quiet_s)
        self.full_threshold = full_threshold
        self._cond = threading.Condition()
        self._batch = Batch()
        self._first = 0.0
        self._last = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, paths: Iterable[str] = (), *, full: bool = False) -> None:
        with self._cond:
            if self._closed:
                return
            now = time.monotonic()
            if not self._batch:
                self._first = now
            self._last = now
            for path in paths:
                self._batch.paths.add(path)
                self._batch.events += 1
            if full:
                self._batch.full = True
                self._batch.events += 1
            if len(self._batch.paths) > self.full_threshold:
                self._batch.full = True
                self._batch.paths.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._batch:
                        now = time.monotonic()
                        due = min(self._last + self.quiet_s, self._first + self.max_delay_s)
                        if now >= due:
                            break
                        self._cond.wait(due - now)
                    else:
                        self._cond.wait()
                if self._closed:
                    return
                batch, self._batch = self._batch, Batch()
            try:
                self._flush(batch)
            except Exception:
                log.exception("handling a batch of file changes failed")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


class PathFilter:
    """Thread-safe "could a change here matter to the index?" over the engine's ignore rules."""

    def __init__(self, root: Path | str, options: WalkOptions | None = None) -> None:
        self.root = Path(root).resolve()
        self._lock = threading.Lock()
        self._rules = IgnoreRules(self.root, options or WalkOptions())

    def wanted(self, rel: str, is_dir: bool = False) -> bool:
        if not rel:
            return False
        if is_ignore_file(rel):
            with self._lock:
                self._rules.invalidate()  # the ignore files are read again on the next question
            return True
        with self._lock:
            return not self._rules.is_ignored(rel, is_dir)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self.watcher._on_event(event)
        except Exception:  # never let one odd event stop the observer thread
            log.exception("file watcher event %r failed", event)


class FolderWatcher:
    """Watches one folder tree with watchdog and reports changed indexable paths in batches.

    ``on_batch`` is called from a background thread with a :class:`Batch` of workspace-relative
    paths (created, modified, deleted, or either end of a move) that the ignore rules let through.
    """

    EVENT_TYPES: ClassVar[list[type[FileSystemEvent]]] = [
        FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent, DirDeletedEvent, DirMovedEvent,
    ]

    def __init__(self, root: Path | str, on_batch: Callable[[Batch], None], *,
                 options: WalkOptions | None = None, quiet_s: float = DEFAULT_QUIET_S,
                 max_delay_s: float = DEFAULT_MAX_DELAY_S, full_threshold: int = 2000) -> None:
        self.root = Path(root).resolve()
        self._root_str = str(self.root)
        self.options = options or WalkOptions()
        self.filter = PathFilter(self.root, self.options)
        self._on_batch = on_batch
        self.coalescer = Coalescer(self._flush, quiet_s=quiet_s, max_delay_s=max_delay_s,
                                   full_threshold=full_threshold, name=f"codesearch-watch-{self.root.name}")
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(self), self._root_str, recursive=True, event_filter=self.EVENT_TYPES)
        self.started = False

    def start(self) -> None:
        self._observer.start()
        self.started = True

    def stop(self) -> None:
        if self.started:
            self._observer.stop()
            self._observer.join(timeout=5)
            self.started = False
        self.coalescer.close()

    def relative(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if text == self._root_str:
            return ""
        if not text.startswith(self._root_str + os.sep):
            return None
        return text[len(self._root_str) + 1:].replace(os.sep, "/")

    def wanted(self, rel: str, is_dir: bool = False) -> bool:
        """Whether a change at this relative path can matter to the index."""
        return self.filter.wanted(rel, is_dir)

    def _on_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path]
        if isinstance(event, (FileMovedEvent, DirMovedEvent)) and event.dest_path:
            paths.append(event.dest_path)
        wanted: list[str] = []
        full = False
        for raw in paths:
            rel = self.relative(raw)
            if rel is None or not self.wanted(rel, event.is_directory):
                continue
            if event.is_directory:
                full = True  # a folder went away or moved: its files were not listed one by one
            else:
                wanted.append(rel)
        if wanted or full:
            self.coalescer.add(wanted, full=full)

    def _flush(self, batch: Batch) -> None:
        self._on_batch(batch)
