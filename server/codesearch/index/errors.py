"""What went wrong with the on-disk index: damage to the data, or a refusal of the storage under it.

Only damage (SQLite's CORRUPT/NOTADB/FORMAT, a failed integrity check, an unusable schema) justifies
moving the database aside and rebuilding it. A full disk, an I/O error, a read-only or unwritable
folder and a lock held elsewhere leave a healthy database that must be kept: those raise
:class:`StoreUnavailable`, whose message names the folder and the problem.
"""

from __future__ import annotations

import errno
import sqlite3
from enum import Enum
from pathlib import Path


class StorageProblem(str, Enum):
    FULL = "the disk is full"
    READ_ONLY = "the folder or the database is read-only"
    PERMISSION = "permission denied"
    IO = "a disk I/O error"
    BUSY = "another process holds a lock on the database"
    NEWER = "it was written by a newer version of codesearch"
    OTHER = "SQLite refused it"


class StoreError(RuntimeError):
    """The index database cannot be used as it is."""


class StoreCorrupt(StoreError):
    """The database itself is damaged (or is not an index): it may be moved aside and rebuilt."""


class StoreUnavailable(StoreError):
    """The storage refuses (full, read-only, I/O error, permissions, a lock): the data is kept as it is."""

    def __init__(self, folder: Path, problem: StorageProblem, detail: str) -> None:
        self.folder = Path(folder)
        self.problem = problem
        self.detail = detail
        super().__init__(f"cannot use the index in {folder}: {problem.value} ({detail})")

    @property
    def readable(self) -> bool:
        """Reading may still work: the database could not be written (read-only, full, an I/O error)."""
        return self.problem in (StorageProblem.READ_ONLY, StorageProblem.PERMISSION, StorageProblem.FULL,
                                StorageProblem.IO)


# SQLite primary result codes (https://www.sqlite.org/rescode.html)
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _FORMAT, _NOTADB = \
    3, 5, 6, 8, 10, 11, 13, 14, 24, 26
_CORRUPT_CODES = frozenset({_CORRUPT, _FORMAT, _NOTADB})
_PROBLEMS = {
    _FULL: StorageProblem.FULL, _READONLY: StorageProblem.READ_ONLY, _CANTOPEN: StorageProblem.PERMISSION,
    _PERM: StorageProblem.PERMISSION, _IOERR: StorageProblem.IO, _BUSY: StorageProblem.BUSY,
    _LOCKED: StorageProblem.BUSY,
}
_CORRUPT_WORDS = ("malformed", "not a database", "disk image")


def classify_sqlite_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """Damage or a storage refusal, from SQLite's result code (its message where Python has no code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None)
    detail = f"{exc}" + (f", {name}" if name else "")
    if code is None:
        text = str(exc).lower()
        if any(w in text for w in _CORRUPT_WORDS):
            return StoreCorrupt(detail)
        problem = StorageProblem.FULL if "full" in text else \
            StorageProblem.READ_ONLY if "readonly" in text else \
            StorageProblem.IO if "i/o" in text else \
            StorageProblem.PERMISSION if "unable to open" in text else StorageProblem.OTHER
        return StoreUnavailable(Path(path).parent, problem, detail)
    primary = code & 0xFF
    if primary in _CORRUPT_CODES:
        return StoreCorrupt(detail)
    return StoreUnavailable(Path(path).parent, _PROBLEMS.get(primary, StorageProblem.OTHER), detail)


_OS_PROBLEMS = {
    errno.ENOSPC: StorageProblem.FULL, errno.EDQUOT: StorageProblem.FULL, errno.EFBIG: StorageProblem.FULL,
    errno.EROFS: StorageProblem.READ_ONLY, errno.EACCES: StorageProblem.PERMISSION,
    errno.EPERM: StorageProblem.PERMISSION, errno.EIO: StorageProblem.IO,
}


def storage_os_error(exc: OSError, folder: Path) -> StoreUnavailable | None:
    """A file-system refusal while writing the index folder, or ``None`` for other OS errors."""
    problem = _OS_PROBLEMS.get(exc.errno or 0)
    if problem is None:
        return None
    return StoreUnavailable(folder, problem, exc.strerror or str(exc))
