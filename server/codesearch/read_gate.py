"""Reads of an index that is being closed: close waits for the reads in flight, later reads are refused.

A language server replaces a folder's engine when settings change while searches run in worker
threads; closing SQLite or freeing the vector graph under a running search fails the search or
crashes the process (hnswlib has no guard of its own).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class GateClosed(RuntimeError):
    """The index was closed before this read began."""


class ReadGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise GateClosed("the index was closed")
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Refuse new reads and wait up to ``timeout`` seconds for those in flight; False if some remain."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._readers == 0, timeout)
