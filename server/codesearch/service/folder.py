"""One workspace folder of a long-running server (LSP, MCP): its engine and the thread that keeps it indexed.

Every write to a folder's engine happens on that folder's own worker thread, one step at a time:
a full sync (startup, re-index, settings change, a burst of changes too big to list), or a sync of
just the changed paths (watcher events, editor buffers), then embedding whatever lacks a vector.
New changes interrupt a running embedding pass between batches, so an edited file is searchable
lexically at once and gets its vectors first (the engine embeds the newest files first).

A folder whose index another process is writing (the engine's file lock) works read-only: it
searches what that process stores, refreshes its view every few seconds, and takes over the
lock when the other process goes away. So does a folder whose index cannot be written (a full disk,
a read-only cache folder): it is searched as it is and tried again now and then.

The listener callbacks run on the worker thread; the server hands them to its event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from ..engine import Engine, EngineClosed, EngineConfig, EngineError, IndexUnavailable, SearchResult, WorkspaceBusy
from ..index.indexer import Phase, Progress
from ..types import Encoder
from .watcher import Batch, Coalescer, FolderWatcher

log = logging.getLogger(__name__)

READ_ONLY_REFRESH_S = 2.0
OPEN_WAIT_S = 5.0
REOPEN_READ_ONLY_S = 10.0  # how often an index opened read-only for a storage problem is tried for writing
VISIBLE_EMBED_THRESHOLD = 256  # an incremental update shows progress only when it embeds this many chunks


class FolderListener(Protocol):
    def folder_progress(self, folder: FolderIndexer, progress: Progress) -> None: ...

    def folder_idle(self, folder: FolderIndexer) -> None: ...

    def folder_changed(self, folder: FolderIndexer) -> None: ...

    def folder_message(self, folder: FolderIndexer, message: str, error: bool) -> None: ...


class FolderState(str, Enum):
    INDEXING = "indexing"
    READY = "ready"
    ERROR = "error"


@dataclass(frozen=True)
class FolderSnapshot:
    root: str
    name: str
    state: FolderState
    message: str = ""
    writer: bool = False
    paused: bool = False
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    pending: int = 0
    percentage: int | None = None
    model: str = ""
    provider: str = ""
    provider_reason: str = ""
    index_dir: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "root": self.root, "name": self.name, "state": self.state.value, "message": self.message,
            "writer": self.writer, "paused": self.paused, "files": self.files, "chunks": self.chunks,
            "embedded": self.embedded, "pending": self.pending, "percentage": self.percentage,
            "model": self.model, "provider": self.provider, "providerReason": self.provider_reason,
            "indexDir": self.index_dir,
        }


@dataclass
class _Work:
    full: bool = False
    paths: set[str] = field(default_factory=set)
    overlays: dict[str, str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.full or bool(self.paths) or bool(self.overlays)


class FolderIndexer:
    def __init__(self, root: Path, config: EngineConfig, listener: FolderListener, *,
                 encoder: Encoder | None = None, quiet_s: float = 0.3, max_delay_s: float = 2.0) -> None:
        self.root = Path(root).resolve()
        self.name = self.root.name or str(self.root)
        self.config = config
        self.listener = listener
        self.engine: Engine | None = None
        self._encoder = encoder  # a fixed encoder (tests); else the engine loads the configured model
        self._cond = threading.Condition()
        self._work = _Work(full=True)
        self._stop = threading.Event()
        self._cancel = threading.Event()  # user cancel or stop: ends syncs and embedding
        self._interrupt = threading.Event()  # ends an embedding pass between batches (new work, cancel, stop)
        self._paused = False  # the user cancelled indexing: no embedding until a re-index
        self._busy = True
        self._visible = True  # this busy period reports $/progress (the first run always does)
        self._state = FolderState.INDEXING
        self._message = "starting"
        self._encoder_failed = False
        self._encoder_error = ""
        self._failure = ""  # why the last step failed, until one succeeds
        self._lock_problem = ""  # why the workspace lock could not be taken, said once
        self._last_reopen = time.monotonic()
        self._last_progress: Progress | None = None
        self._counts = (0, 0, 0, 0)  # files, chunks, embedded, pending
        self._model = ("", "", "")
        self._writer = False
        self._index_dir = ""
        self._closed = threading.Event()
        self._opened = threading.Event()  # set once opening the engine succeeded or failed
        self.coalescer = Coalescer(self.add_batch, quiet_s=quiet_s, max_delay_s=max_delay_s,
                                   name=f"codesearch-changes-{self.name}")
        self._thread = threading.Thread(target=self._run, name=f"codesearch-index-{self.name}", daemon=True)

    # control (any thread) ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def add_batch(self, batch: Batch) -> None:
        """Changed paths (relative to the root, or absolute inside it), already debounced."""
        if not batch:
            return
        with self._cond:
            if batch.full:
                self._work.full = True
            self._work.paths.update(self._relative(p) for p in batch.paths)
            self._work.paths.discard("")
            self._interrupt.set()
            self._cond.notify()

    def notify_paths(self, paths: Iterable[str], full: bool = False) -> None:
        """Changed paths not yet debounced (client file events): they join the next batch."""
        self.coalescer.add([self._relative(p) for p in paths], full=full)

    def set_overlay(self, path: str, text: str | None) -> None:
        """An editor buffer's unsaved text (``None``: closed, use the file on disk again)."""
        rel = self._relative(path)
        with self._cond:
            self._work.overlays[rel] = text
        self.coalescer.add([rel])

    def reindex(self) -> None:
        """Check every file again and resume embedding after a cancel."""
        with self._cond:
            self._paused = False
            self._cancel.clear()
            self._work.full = True
            self._interrupt.set()
            self._cond.notify()

    def cancel(self) -> None:
        """The user cancelled indexing: stop now, keep what is done, sync changes lexically only."""
        with self._cond:
            if not self._busy:
                return
            self._paused = True
            self._cancel.set()
            self._interrupt.set()
            self._cond.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker, save the index and release the workspace lock."""
        self.coalescer.close()
        with self._cond:
            self._stop.set()
            self._cancel.set()
            self._interrupt.set()
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._closed.is_set():
            self._close_engine()

    def watch(self) -> FolderWatcher:
        """Watch this folder's tree with watchdog: changes join the work queue. The caller stops it;
        raises OSError (e.g. inotify limits) when the folder cannot be watched."""
        watcher = FolderWatcher(self.root, self.add_batch, options=self.config.walk_options())
        watcher.start()
        return watcher

    def contains(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def _relative(self, path: str) -> str:
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            try:
                return p.resolve().relative_to(self.root).as_posix()
            except (ValueError, OSError):
                return ""

    # reading (any thread) ------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def indexing(self) -> bool:
        """A full or large run is under way (small updates for an edited file do not count)."""
        return self._busy and self._visible

    @property
    def paused(self) -> bool:
        return self._paused

    def snapshot(self) -> FolderSnapshot:
        files, chunks, embedded, pending = self._counts
        percentage: int | None = None
        progress = self._last_progress
        if self._busy and progress is not None:
            percentage = progress.percentage
            if progress.phase in (Phase.CHUNK, Phase.EMBED):
                files = max(files, progress.files_total)
            if progress.phase == Phase.EMBED:
                chunks = max(chunks, progress.chunks)
                embedded = max(embedded, progress.chunks - progress.to_embed + progress.embedded)
                pending = max(progress.to_embed - progress.embedded, 0)
        model, provider, reason = self._model
        return FolderSnapshot(
            root=str(self.root), name=self.name, state=self._state, message=self._message, writer=self._writer,
            paused=self._paused, files=files, chunks=chunks, embedded=embedded, pending=pending,
            percentage=percentage, model=model, provider=provider, provider_reason=reason,
            index_dir=self._index_dir,
        )

    def search(self, query: str, limit: int, languages: Sequence[str], path_glob: str | None) -> SearchResult:
        """Blocking: run it in a worker thread.  Keywords only until the model has loaded."""
        self._opened.wait(OPEN_WAIT_S)  # a search sent right after start-up: the index opens in milliseconds
        engine = self.engine
        if engine is None:
            return SearchResult([], 0, False, False)
        try:
            return engine.search(query, limit=limit, languages=languages, path_glob=path_glob, load_model=False)
        except EngineClosed:  # the folder was removed or is being replaced with new settings
            return SearchResult([], 0, False, False)

    # the worker ------------------------------------------------------------------------------------
    def _say(self, message: str, error: bool = False) -> None:
        self.listener.folder_message(self, message, error)

    def _set_state(self, state: FolderState, message: str) -> None:
        if (state, message) != (self._state, self._message):
            self._state, self._message = state, message
            self.listener.folder_changed(self)

    def _run(self) -> None:
        try:
            self._open()
            if self.engine is not None:
                self._loop()
        except Exception as exc:  # keep the server alive; say what happened
            log.exception("indexing %s failed", self.root)
            self._busy = False
            self._set_state(FolderState.ERROR, f"indexing failed: {exc}")
            self._say(f"codesearch: indexing {self.root} failed: {exc}", error=True)
        finally:
            self._close_engine()

    def _open(self) -> None:
        try:
            self._open_engine()
        finally:
            self._opened.set()

    def _open_engine(self) -> None:
        try:
            self.engine = Engine(self.root, self.config, encoder=self._encoder,
                                 on_message=lambda m: self._say(f"codesearch ({self.name}): {m}"))
        except EngineError as exc:
            self._busy = False
            self._set_state(FolderState.ERROR, str(exc))
            self._say(f"codesearch: cannot index {self.root}: {exc}", error=True)
            return
        self._index_dir = str(self.engine.dir)
        self._writer = self._try_writer(self.engine)
        if self.engine.read_only_reason:
            self._say(f"codesearch: {self.engine.read_only_reason}; this server searches the index as it is")
        elif not self._writer:
            self._say(f"codesearch: another codesearch process is indexing {self.root}; this server "
                      "searches what it stores (read-only) and takes over when it exits")

    def _try_writer(self, engine: Engine) -> bool:
        """Take the workspace lock if free; a storage problem (full disk, a lock path that is a folder)
        is said once, and the folder is searched as it is until the lock can be taken."""
        try:
            taken = engine.acquire_writer(wait=False)
        except IndexUnavailable as exc:
            if str(exc) != self._lock_problem:
                self._lock_problem = str(exc)
                self._say(f"codesearch: {exc}; searching the index as it is until it can be written", error=True)
            return False
        self._lock_problem = ""
        return taken

    def _close_engine(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        engine = self.engine
        if engine is not None:
            try:
                engine.close()
            except Exception:
                log.exception("closing the index of %s failed", self.root)

    def _take_work(self) -> _Work | None:
        """Wait for work; ``None`` when stopping.  A read-only folder wakes up to refresh."""
        with self._cond:
            while not self._stop.is_set():
                if self._work and self._writer:
                    work, self._work = self._work, _Work()
                    self._interrupt.clear()
                    return work
                if not self._writer:
                    return _Work()
                self._cond.wait()
            return None

    def _loop(self) -> None:
        while True:
            work = self._take_work()
            if work is None:
                return
            engine = self.engine  # a read-only engine may have been replaced by a writable one
            assert engine is not None
            try:
                if not self._writer:
                    self._read_only_step(engine)
                    continue
                self._begin(work.full)
                self._failure = ""
                self._do(engine, work)
            except WorkspaceBusy:
                self._writer = False
                continue
            except Exception as exc:  # this step failed; the next change or re-index tries again
                log.exception("indexing %s failed", self.root)
                self._failure = f"indexing failed: {type(exc).__name__}: {exc}"
                self._say(f"codesearch: {self._failure} ({self.root})", error=True)
                if not self._writer:
                    self._stop.wait(READ_ONLY_REFRESH_S)
                    continue
            with self._cond:
                more = bool(self._work)
            if not more:
                self._finish(engine)

    def _begin(self, full: bool) -> None:
        if not self._busy:
            self._busy = True
            self._last_progress = None
        if full and not self._visible:
            self._visible = True
        if self._visible and self._state != FolderState.INDEXING:
            self._set_state(FolderState.INDEXING, "indexing")

    def _progress(self, progress: Progress) -> None:
        self._last_progress = progress
        if progress.phase == Phase.CHUNK and self._state == FolderState.INDEXING:
            self._message = "chunking files"
        if not self._visible and progress.phase == Phase.EMBED and progress.to_embed >= VISIBLE_EMBED_THRESHOLD:
            self._visible = True
            self._set_state(FolderState.INDEXING, "embedding")
        if self._visible:
            self.listener.folder_progress(self, progress)
        self.listener.folder_changed(self)

    def _do(self, engine: Engine, work: _Work) -> None:
        for rel, text in work.overlays.items():
            engine.set_overlay(rel, text)
            work.paths.add(rel)
        if work.full:
            self._set_state(FolderState.INDEXING, "scanning files")  # a full run is always visible
            report = engine.sync(self._cancel, self._progress)
            if report.cancelled:
                return
            if report.read_errors:
                self._say(f"codesearch ({self.name}): {len(report.read_errors)} files could not be read, "
                          f"e.g. {report.read_errors[0][0]}: {report.read_errors[0][1]}")
        elif work.paths:
            engine.update_paths(sorted(work.paths), embed=False)
        self._refresh_counts(engine)
        if self._paused or self._stop.is_set():
            return
        if not self._load_encoder(engine):
            return
        if self._visible:
            self._set_state(FolderState.INDEXING, "embedding")
        engine.embed(self._interrupt, self._progress)

    def _load_encoder(self, engine: Engine) -> bool:
        if self._encoder_failed:
            return False
        if not engine.encoder_loaded and (self._visible or not self._writer):
            self._set_state(FolderState.INDEXING, "loading the model")
        if not engine.load_encoder():
            self._encoder_failed = True
            self._encoder_error = f"the model could not be loaded: {engine.model_problem}; searching by keywords only"
            self._say(f"codesearch: {self._encoder_error}", error=True)
            return False
        self._refresh_counts(engine)
        return True

    def _finish(self, engine: Engine) -> None:
        self._refresh_counts(engine)
        _, _, _, pending = self._counts
        if self._failure:
            state, message = FolderState.ERROR, self._failure
        elif self._encoder_failed:
            state, message = FolderState.ERROR, self._encoder_error
        elif self._paused and pending:
            message = f"indexing cancelled: {pending} chunks not embedded (re-index to resume)"
            state = FolderState.READY
        else:
            state, message = FolderState.READY, "ready"
        was_visible = self._visible
        self._busy = False
        self._visible = False
        self._cancel.clear()
        self._set_state(state, message)
        if was_visible:
            self.listener.folder_idle(self)
        self.listener.folder_changed(self)

    def _refresh_counts(self, engine: Engine) -> None:
        status = engine.status()
        self._counts = (status.files, status.chunks, status.embedded, status.pending)
        self._model = (status.model, status.provider, status.provider_reason)
        self._writer = status.writer

    def _read_only_step(self, engine: Engine) -> None:
        if engine.read_only_reason:
            if self._reopen_writable():
                return
        elif self._try_writer(engine):
            self._writer = True
            self._say(f"codesearch: {self.root} is no longer indexed by another process; taking over")
            with self._cond:
                self._work.full = True
            return
        self._busy = False
        if self._load_encoder(engine):
            engine.refresh_from_store()
        self._refresh_counts(engine)
        _, _, _, pending = self._counts
        note = f"read-only: {engine.read_only_reason}" if engine.read_only_reason else \
            "read-only: another codesearch process is indexing this workspace"
        if self._encoder_failed:
            self._set_state(FolderState.ERROR, self._encoder_error)
        else:
            self._set_state(FolderState.INDEXING if pending else FolderState.READY, note)
        self.listener.folder_changed(self)
        self._stop.wait(READ_ONLY_REFRESH_S)
        # overlays and paths are the writing process's business; drop what piled up
        with self._cond:
            self._work = _Work()

    def _reopen_writable(self) -> bool:
        """An index opened read-only for a storage problem (a full disk, a read-only folder) is tried
        again now and then; once it can be written, a writable engine takes over and indexes."""
        now = time.monotonic()
        if now - self._last_reopen < REOPEN_READ_ONLY_S:
            return False
        self._last_reopen = now
        adopted = False

        def relay(message: str) -> None:
            if adopted:
                self._say(f"codesearch ({self.name}): {message}")
            else:
                log.info("%s: %s", self.root, message)

        try:
            fresh = Engine(self.root, self.config, encoder=self._encoder, on_message=relay)
        except EngineError as exc:
            log.info("%s is still not writable: %s", self.root, exc)
            return False
        if fresh.read_only_reason or not self._try_writer(fresh):
            fresh.close()
            return False
        adopted = True
        old, self.engine = self.engine, fresh
        self._writer = True
        if old is not None:
            try:
                old.close()
            except Exception:
                log.exception("closing the read-only index of %s failed", self.root)
        self._say(f"codesearch: the index of {self.root} can be written again; indexing")
        with self._cond:
            self._work.full = True
        return True

    def wait_idle(self, timeout: float) -> bool:
        """For tests and tools: wait until nothing is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._busy and not self._work:
                    return True
            time.sleep(0.05)
        return False
