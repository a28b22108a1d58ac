"""Read and chunk files (the CPU-heavy half of a sync) in worker processes; the store writes stay in one.

A sync of a fresh 25k-chunk tree spends about two thirds of its CPU time reading, parsing, chunking
and splitting identifiers, and one third writing SQLite. :func:`prepare` does the first part for one
file; :class:`PreparePool` runs it on several cores next to the calling thread, never more than
``window`` files ahead of the writer (so memory stays flat on very large trees). Workers
come from a fork server (safe in a process that has threads, such as the language server) that
imports this module once. Small syncs (an edit, a few files) run :func:`prepare` in process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace

from ..chunk.chunker import chunk_file
from ..embed.sessions import usable_cores
from ..languages import detect_language
from ..types import Chunk
from ..walk.walker import SourceFile, read_text
from .store import ChunkTerms, chunk_terms, text_hash

log = logging.getLogger(__name__)

POOL_MIN_FILES = 48  # fewer files to read than this: no worker processes
MAX_WORKERS = 8
FILES_PER_TASK = 8


@dataclass(frozen=True)
class Task:
    source: SourceFile
    known_hash: str | None  # the stored content hash, if the file is known
    overlay: str | None  # unsaved editor text to use instead of the file


@dataclass(frozen=True)
class PreparedFile:
    source: SourceFile
    overlay: bool = False
    digest: str = ""
    error: str = ""  # the file could not be read
    unchanged: bool = False  # its content hash is the stored one: only size/mtime changed
    language: str = ""
    parse_failed: bool = False
    chunks: tuple[Chunk, ...] = ()
    terms: tuple[ChunkTerms, ...] = ()
    worker: int = 0  # the pid of the worker process that prepared it; 0 in the calling process


def prepare(task: Task) -> PreparedFile:
    source = task.source
    try:
        text = task.overlay if task.overlay is not None else read_text(source.abs_path)
    except OSError as exc:
        return PreparedFile(source, error=str(exc))
    digest = text_hash(text)
    overlay = task.overlay is not None
    if task.known_hash == digest:
        return PreparedFile(source, overlay, digest, unchanged=True)
    language = source.language or detect_language(source.path) or "text"
    chunked = chunk_file(source.path, text, language)
    return PreparedFile(source, overlay, digest, language=language, parse_failed=chunked.parse_failed,
                        chunks=chunked.chunks, terms=tuple(chunk_terms(c) for c in chunked.chunks))


def prepare_many(tasks: list[Task]) -> list[PreparedFile]:
    """In a worker process: its results say so (``worker``)."""
    return [replace(prepare(task), worker=os.getpid()) for task in tasks]


def pool_workers(files: int) -> int:
    """Worker processes for a sync that reads ``files`` files: none for a few, else about one per core."""
    cores = usable_cores()
    if files < POOL_MIN_FILES or cores < 2 or os.environ.get("CODESEARCH_SYNC_WORKERS") == "0":
        return 0
    return min(MAX_WORKERS, cores if cores <= 4 else cores - 1)


class PreparePool:
    """Worker processes that prepare files next to the calling thread (see :meth:`share`).

    The workers start in a thread of their own: on a busy machine that takes a second or more, which
    the calling thread spends preparing files itself rather than waiting."""

    def __init__(self, workers: int, window: int = 256) -> None:
        self._workers = workers
        self._window = max(window, workers * FILES_PER_TASK * 2)
        self._executor: ProcessPoolExecutor | None = None
        self._ready = threading.Event()
        self._closed = threading.Event()
        threading.Thread(target=self._start, name="codesearch-prepare-start", daemon=True).start()

    def _start(self) -> None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload([__name__])
        try:
            executor = ProcessPoolExecutor(max_workers=self._workers, mp_context=context)
            for warm in [executor.submit(os.getpid) for _ in range(self._workers)]:
                warm.result()
        except Exception as exc:  # no workers: the calling thread does it all
            log.warning("no worker processes for reading files: %s", exc)
            return
        self._executor = executor
        self._ready.set()
        if self._closed.is_set():
            executor.shutdown(wait=False, cancel_futures=True)

    def share(self, tasks: Sequence[Task]) -> Iterator[PreparedFile]:
        """Every task prepared, finished ones first: the workers take tasks from the back (at most
        ``window`` files ahead), this thread from the front whenever no worker result is waiting."""
        front, back = 0, len(tasks)
        pending: deque[Future[list[PreparedFile]]] = deque()
        while front < back or pending:
            while self._executor is not None and back > front and len(pending) * FILES_PER_TASK < self._window:
                start = max(front, back - FILES_PER_TASK)
                pending.append(self._executor.submit(prepare_many, list(tasks[start:back])))
                back = start
            if pending and pending[0].done():
                yield from pending.popleft().result()
            elif front < back:
                yield prepare(tasks[front])
                front += 1
            elif pending:
                yield from pending.popleft().result()

    def close(self) -> None:
        self._closed.set()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def prepared(tasks: list[Task], parallel: bool = True) -> Generator[PreparedFile, None, None]:
    """Every task prepared: with worker processes when there are many (in no set order), else here in order."""
    workers = pool_workers(len(tasks)) if parallel else 0
    if not workers:
        yield from map(prepare, tasks)
        return
    pool = PreparePool(workers)
    try:
        yield from pool.share(tasks)
    finally:
        pool.close()
