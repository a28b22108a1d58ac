"""How an encoder spreads document batches over onnxruntime: sessions, threads per session, workers.

onnxruntime's intra-op threads do not scale for a model this small (16 threads on 16 cores embedded
about 100 chunks/s against about 19 on 2 cores). Several workers each running whole batches on one
thread do: every core runs its own batch. With one thread per run, onnxruntime computes on the
calling thread, so the workers can share one session (one copy of the weights); with more threads
per run each worker needs its own session, because concurrent runs of one session share its thread
pool. On CUDA one session takes large batches and two workers keep the GPU fed while the other
prepares or copies.

:func:`choose_layout` is a pure function of the usable cores and the provider, so it can be tested
and printed; ``CODESEARCH_THREADS`` caps the cores it plans for, ``CODESEARCH_LAYOUT=WxT`` (workers
× threads per run) overrides it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

LAYOUT_ENV = "CODESEARCH_LAYOUT"
THREADS_ENV = "CODESEARCH_THREADS"


@dataclass(frozen=True)
class Layout:
    workers: int  # threads running batches concurrently
    threads: int  # onnxruntime intra-op threads per run
    sessions: int  # InferenceSessions (copies of the weights); worker k runs on session k % sessions
    batch_size: int  # texts per batch, at most
    max_batch_tokens: int  # padded tokens per batch, at most

    def describe(self) -> str:
        shared = "one shared session" if self.sessions == 1 else f"{self.sessions} sessions"
        return (f"{self.workers} worker(s) × {self.threads} thread(s), {shared}, batches of ≤{self.batch_size} "
                f"texts / ≤{self.max_batch_tokens} tokens")


def choose_layout(cores: int, provider: str) -> Layout:
    """The layout for ``cores`` usable cores on ``provider``.

    CPU: one single-threaded worker per core on one shared session below 8 cores; from 8 cores,
    two threads per worker (half the batches in flight, so half the activation memory) on a session
    each. Batches stay small on CPU: every worker's arena keeps its largest batch's memory, and on 2
    cores 2,048 padded tokens per batch embedded a little faster than 4,096 (11.4 against 10.6
    chunks/s) with a third less peak memory (569 against 891 MB; ``bench/speed.py --layouts``);
    beyond 4 workers the total is capped at 8,192 tokens in flight (at least 256 per batch).
    CUDA: one session, two workers, large batches (the GPU is idle between small ones).
    """
    if provider == CUDA:
        return Layout(workers=2, threads=1, sessions=1, batch_size=256, max_batch_tokens=256 * 256)
    cores = max(1, cores)
    threads = 1 if cores < 8 else 2
    workers = max(1, cores // threads)
    return Layout(workers=workers, threads=threads, sessions=1 if threads == 1 else workers,
                  batch_size=32, max_batch_tokens=min(2048, max(256, 8192 // workers)))


def usable_cores() -> int:
    """Cores this process may run on, capped by ``CODESEARCH_THREADS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cap = os.environ.get(THREADS_ENV, "")
    return max(1, min(cores, int(cap))) if cap.isdigit() and int(cap) > 0 else max(1, cores)


def layout_override(provider: str) -> Layout | None:
    """``CODESEARCH_LAYOUT=WxT``: W workers of T threads each (benchmarks, odd machines)."""
    value = os.environ.get(LAYOUT_ENV, "").strip().lower()
    match = re.fullmatch(r"(\d+)\s*x\s*(\d+)", value)
    if not match:
        return None
    workers, threads = max(1, int(match[1])), max(1, int(match[2]))
    base = choose_layout(workers * threads, provider)
    return Layout(workers=workers, threads=threads, sessions=1 if threads == 1 else workers,
                  batch_size=base.batch_size, max_batch_tokens=base.max_batch_tokens)


def layout_for(provider: str) -> Layout:
    return layout_override(provider) or choose_layout(usable_cores(), provider)


class SessionPool:
    """The sessions of one layout; the first exists from the start, the others are made on first use."""

    def __init__(self, first: Any, layout: Layout, make: Callable[[], Any]) -> None:
        self.layout = layout
        self._sessions: list[Any] = [first]
        self._make = make
        self._lock = threading.Lock()

    @property
    def first(self) -> Any:
        return self._sessions[0]

    def for_worker(self, worker: int) -> Any:
        index = worker % self.layout.sessions
        if index < len(self._sessions):
            return self._sessions[index]
        with self._lock:
            while len(self._sessions) <= index:
                self._sessions.append(self._make())
            return self._sessions[index]
