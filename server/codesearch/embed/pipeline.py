"""Embed a stream of (key, text) items with tokenising, inference and the caller's writes overlapped.

::

    items ──► tokeniser thread ──► prepared batches ──► W inference workers ──► in order ──► caller
              (a window at a time,                       (the encoder's layout)             (stores, indexes)
               sorted by length)

The tokeniser reads ``window`` items at a time, sorts them by token count and cuts them into
batches, so a batch pads little; it runs ahead of the workers while they infer. Backpressure: at
most ``max_in_flight`` batches exist between the tokeniser and the caller (prepared, running, or
finished but not yet taken), so a slow encoder or a slow caller stops the tokeniser and the reading
of items. Batches come back in the order they were made whatever worker finishes first, so the
newest-first order of the items holds window by window.

Encoders that cannot prepare batches apart from running them (tests' fakes, custom encoders) run
through :class:`WholeBatches`: batches of ``batch_size`` texts, one worker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from ..types import Encoder, Vectors

K = TypeVar("K", bound=Hashable)

POLL_S = 0.1


class Prepared(Protocol):
    @property
    def rows(self) -> tuple[int, ...]: ...

    @property
    def payload(self) -> Any: ...


@runtime_checkable
class StagedEncoder(Protocol):
    """An encoder whose document batches are prepared (tokenised) apart from being run."""

    @property
    def workers(self) -> int: ...

    @property
    def batch_size(self) -> int: ...

    def prepare_documents(self, texts: Sequence[str]) -> Sequence[Prepared]: ...

    def infer(self, payload: Any, worker: int = 0) -> Vectors: ...


@dataclass(frozen=True)
class TextBatch:
    rows: tuple[int, ...]
    payload: list[str]


class WholeBatches:
    """Any :class:`~codesearch.types.Encoder` as a staged one: texts batched as they come, one worker."""

    workers = 1

    def __init__(self, encoder: Encoder, batch_size: int = 64) -> None:
        self.encoder = encoder
        self.batch_size = batch_size

    def prepare_documents(self, texts: Sequence[str]) -> list[TextBatch]:
        return [TextBatch(tuple(range(s, min(s + self.batch_size, len(texts)))), list(texts[s:s + self.batch_size]))
                for s in range(0, len(texts), self.batch_size)]

    def infer(self, payload: Any, worker: int = 0) -> Vectors:
        return self.encoder.encode_documents(payload)


def staged(encoder: Encoder | StagedEncoder, batch_size: int = 64) -> StagedEncoder:
    return encoder if isinstance(encoder, StagedEncoder) else WholeBatches(encoder, batch_size)


class Feed(Generic[K]):
    """Items handed over while someone else still produces them (a sync reading files); iterating waits
    for more until :meth:`close`."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.count = 0

    def put(self, items: Sequence[tuple[K, str]]) -> None:
        if items:
            self.count += len(items)
            self._queue.put(items)

    def close(self) -> None:
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[tuple[K, str]]:
        while (items := self._queue.get()) is not self._END:
            yield from items
        self._queue.put(self._END)  # a second reader, or a close() after the end, also ends


@dataclass
class StageTimes:
    """Busy seconds per stage (inference summed over workers) and what went through."""

    read_s: float = 0.0  # pulling items from the source (store reads)
    tokenise_s: float = 0.0
    infer_s: float = 0.0
    wait_s: float = 0.0  # the caller waiting for the next batch
    batches: int = 0
    items: int = 0
    workers: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_infer(self, seconds: float) -> None:
        with self._lock:
            self.infer_s += seconds

    def as_dict(self) -> dict[str, float]:
        return {"read_s": self.read_s, "tokenise_s": self.tokenise_s, "infer_s": self.infer_s,
                "wait_s": self.wait_s, "batches": self.batches, "items": self.items, "workers": self.workers}


@dataclass
class _Job(Generic[K]):
    seq: int
    keys: list[K]
    payload: Any


@dataclass
class _Done(Generic[K]):
    seq: int
    keys: list[K]
    vectors: Vectors


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Finished:
    total: int  # batches made


class EmbeddingPipeline(Generic[K]):
    """Iterate to get ``(keys, vectors)`` per batch, in order; use as a context manager (or call close)."""

    def __init__(self, encoder: StagedEncoder, items: Iterable[tuple[K, str]], *, window: int | None = None,
                 max_in_flight: int | None = None, cancel: threading.Event | None = None) -> None:
        self.encoder = encoder
        self.window = window or max(1024, 16 * encoder.batch_size)
        per_window = -(-self.window // max(1, encoder.batch_size))
        self.max_in_flight = max_in_flight or max(2 * per_window, 4 * encoder.workers)
        self.stats = StageTimes(workers=encoder.workers)
        self._source = items
        self._items = iter(items)
        self._cancel = cancel or threading.Event()
        self._stop = threading.Event()
        self._slots = threading.Semaphore(self.max_in_flight)
        self._todo: queue.Queue[_Job[K] | None] = queue.Queue()
        self._done: queue.Queue[_Done[K] | _Failed | _Finished] = queue.Queue()
        self._threads = [threading.Thread(target=self._produce, name="embed-tokenise", daemon=True)]
        self._threads += [threading.Thread(target=self._work, args=(k,), name=f"embed-infer-{k}", daemon=True)
                          for k in range(encoder.workers)]
        self._started = False
        self._waiting: dict[int, _Done[K]] = {}
        self._next_seq = 0
        self._total = -1  # batches made, once the tokeniser has finished
        self.in_flight_peak = 0
        self._in_flight = 0
        self._count_lock = threading.Lock()

    def __enter__(self) -> EmbeddingPipeline[K]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the caller's side ------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def __iter__(self) -> Iterator[tuple[list[K], Vectors]]:
        """Every batch, in order, waiting for each; ends early when cancelled."""
        self.start()
        while not self.finished:
            if self._cancel.is_set():
                return
            clock = time.perf_counter()
            got = self._receive(block=True)
            self.stats.wait_s += time.perf_counter() - clock
            while got is not None:
                yield got
                if self._cancel.is_set():
                    return
                got = self._next_in_order()

    def take_ready(self) -> list[tuple[list[K], Vectors]]:
        """The batches finished so far, in order, without waiting (to interleave with other work)."""
        self.start()
        out: list[tuple[list[K], Vectors]] = []
        while (got := self._receive(block=False)) is not None:
            out.append(got)
            while (more := self._next_in_order()) is not None:
                out.append(more)
        return out

    @property
    def finished(self) -> bool:
        return 0 <= self._total <= self._next_seq

    def _receive(self, block: bool) -> tuple[list[K], Vectors] | None:
        """Take one message off the done queue; the next batch in order if that made one ready."""
        try:
            message = self._done.get(timeout=POLL_S) if block else self._done.get_nowait()
        except queue.Empty:
            return None
        if isinstance(message, _Failed):
            raise message.error
        if isinstance(message, _Finished):
            self._total = message.total
        else:
            self._waiting[message.seq] = message
        return self._next_in_order()

    def _next_in_order(self) -> tuple[list[K], Vectors] | None:
        done = self._waiting.pop(self._next_seq, None)
        if done is None:
            return None
        self._next_seq += 1
        self.stats.batches += 1
        self.stats.items += len(done.keys)
        self._release()
        return done.keys, done.vectors

    def close(self) -> None:
        """Stop reading, drop what is not finished, and wait for the threads."""
        self._stop.set()
        if isinstance(self._source, Feed):
            self._source.close()  # the tokeniser may be waiting for more items
        for _ in range(self.max_in_flight):
            self._slots.release()  # unblocks the tokeniser
        if self._started:
            for thread in self._threads:
                thread.join()

    # threads ----------------------------------------------------------------------------------------
    def _produce(self) -> None:
        seq = 0
        try:
            while not self._stopped():
                clock = time.perf_counter()
                window = list(islice(self._items, self.window))
                self.stats.read_s += time.perf_counter() - clock
                if not window:
                    break
                clock = time.perf_counter()
                batches = self.encoder.prepare_documents([text for _, text in window])
                self.stats.tokenise_s += time.perf_counter() - clock
                for batch in batches:
                    if not self._acquire():
                        return
                    self._todo.put(_Job(seq, [window[row][0] for row in batch.rows], batch.payload))
                    seq += 1
        except BaseException as exc:
            self._done.put(_Failed(exc))
        finally:
            for _ in self._threads[1:]:
                self._todo.put(None)
            self._done.put(_Finished(seq))

    def _work(self, worker: int) -> None:
        while (job := self._todo.get()) is not None:
            if self._stopped():
                continue
            try:
                clock = time.perf_counter()
                vectors = self.encoder.infer(job.payload, worker)
                self.stats.add_infer(time.perf_counter() - clock)
            except BaseException as exc:
                self._done.put(_Failed(exc))
                self._stop.set()
                continue
            self._done.put(_Done(job.seq, job.keys, vectors))

    def _stopped(self) -> bool:
        return self._stop.is_set() or self._cancel.is_set()

    def _acquire(self) -> bool:
        while not self._slots.acquire(timeout=POLL_S):
            if self._stopped():
                return False
        if self._stopped():
            return False
        with self._count_lock:
            self._in_flight += 1
            self.in_flight_peak = max(self.in_flight_peak, self._in_flight)
        return True

    def _release(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
        self._slots.release()
