"""Write transactions of the store: one per change, or many files' changes committed together.

SQLite rolls a whole transaction back by itself after a full disk or an I/O error; an explicit
ROLLBACK then fails and would hide the error that matters, so every rollback here checks first and
reports only the first error.
"""

from __future__ import annotations

import logging
import sqlite3
import time

log = logging.getLogger(__name__)


def _rollback(db: sqlite3.Connection, statement: str = "ROLLBACK") -> None:
    if not db.in_transaction:  # SQLite already rolled back after a full disk or an I/O error
        return
    try:
        db.execute(statement)
    except sqlite3.Error as rollback:  # the first error is the one to report
        log.warning("rollback failed: %s", rollback)


class Transaction:
    """A transaction, or a savepoint inside the one a :class:`Bulk` block keeps open."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.nested = False

    def __enter__(self) -> None:
        self.nested = self.db.in_transaction
        self.db.execute("SAVEPOINT tx" if self.nested else "BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.nested:
            if exc_type is None:
                self.db.execute("COMMIT")
            else:
                _rollback(self.db)
            return
        if exc_type is None:
            self.db.execute("RELEASE tx")
            return
        _rollback(self.db, "ROLLBACK TO tx")
        if self.db.in_transaction:
            self.db.execute("RELEASE tx")


class Bulk:
    """Many files' changes in one transaction, committed every ``every_s`` seconds (:meth:`maybe_commit`).

    One commit per file made the full-text index flush a tiny segment per file: a third of a sync.
    Leaving the block commits every finished file, also when an error or Ctrl-C stops it (a failed
    file rolled back its own savepoint)."""

    def __init__(self, db: sqlite3.Connection, every_s: float) -> None:
        self.db = db
        self.every_s = every_s
        self.since = time.monotonic()

    def __enter__(self) -> Bulk:
        self.db.execute("BEGIN IMMEDIATE")
        self.since = time.monotonic()
        return self

    def maybe_commit(self) -> None:
        if time.monotonic() - self.since >= self.every_s:
            self.db.execute("COMMIT")
            self.db.execute("BEGIN IMMEDIATE")
            self.since = time.monotonic()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.db.in_transaction:
            return
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error:
            _rollback(self.db)
            if exc_type is None:
                raise
            log.warning("could not commit the files synced before the error", exc_info=True)
