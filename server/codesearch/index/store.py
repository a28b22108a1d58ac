"""The on-disk store of one workspace: files, chunks, the lexical index and the embedding cache.

One SQLite database (WAL mode) holds everything but the HNSW graph, which is derived from the
vectors stored here and can always be rebuilt from them without re-embedding. A database that
fails its integrity or version check is moved aside and rebuilt, with a message.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..types import Chunk, Vectors
from .identifiers import fts_query, index_text

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    language TEXT NOT NULL,
    parse_failed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    language TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    container TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    part INTEGER NOT NULL,
    text TEXT NOT NULL,
    embed_hash TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE INDEX IF NOT EXISTS chunks_embed_hash ON chunks(embed_hash);
CREATE TABLE IF NOT EXISTS vectors (
    embed_hash TEXT NOT NULL,
    model_key TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (embed_hash, model_key)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(name, path, body, tokenize='unicode61');
"""


class StoreCorrupt(RuntimeError):
    """The database cannot be used as it is."""


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str
    language: str
    parse_failed: bool


@dataclass(frozen=True)
class ChunkRow:
    id: int
    chunk: Chunk
    embed_hash: str
    mtime_ns: int


def embed_text(chunk: Chunk) -> str:
    return _embed_text(chunk.container, chunk.symbol, chunk.text)


def _embed_text(container: str, symbol: str, text: str) -> str:
    """What the encoder reads for a chunk: the qualified name gives methods their class."""
    return f"{container}.{symbol}\n{text}" if container and symbol else text


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


ChunkTerms = tuple[str, str, str, str]


def chunk_terms(chunk: Chunk) -> ChunkTerms:
    """(embed hash, lexical name, path and body terms): what storing a chunk derives from it."""
    return (text_hash(embed_text(chunk)), index_text(f"{chunk.container} {chunk.symbol}"),
            index_text(chunk.path), index_text(chunk.text))


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = self._open()
        # Searches read through their own connection: with WAL they never wait for the writer.
        self.read = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        self.read.execute("PRAGMA query_only=ON")

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            # A full integrity check reads the whole file (0.3 s at 120 MB), so it runs only when the
            # last writer did not close cleanly; a damaged header fails the reads below anyway.
            if self._writer_was_open(db):
                quick = db.execute("PRAGMA quick_check").fetchone()
                if not quick or quick[0] != "ok":
                    raise StoreCorrupt(f"integrity check failed: {quick}")
            version = self._read_version(db)
            if version is not None and version != SCHEMA_VERSION:
                raise StoreCorrupt(f"schema version {version}, expected {SCHEMA_VERSION}")
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (uuid.uuid4().hex,))
            db.execute("SELECT count(*) FROM chunks_fts").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreCorrupt(str(exc)) from exc
        except StoreCorrupt:
            db.close()
            raise
        return db

    @staticmethod
    def _writer_was_open(db: sqlite3.Connection) -> bool:
        has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return False
        row = db.execute("SELECT value FROM meta WHERE key='writer_open'").fetchone()
        return row is None or row[0] != "0"

    def mark_writer(self, open_: bool) -> None:
        """Called by the one process holding the workspace write lock when it takes and gives it up."""
        self.set_meta("writer_open", "1" if open_ else "0")

    @staticmethod
    def _read_version(db: sqlite3.Connection) -> int | None:
        has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return None
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else None

    @classmethod
    def open_or_rebuild(cls, path: Path) -> tuple[Store, str | None]:
        """Open the store; if it is corrupt, move it aside, start afresh and say why."""
        try:
            return cls(path), None
        except StoreCorrupt as exc:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                victim = Path(str(path) + suffix)
                if victim.exists():
                    victim.replace(Path(f"{path}{suffix}.corrupt-{stamp}"))
            message = f"the index at {path} was unreadable ({exc}); it was moved aside and is being rebuilt"
            log.warning(message)
            return cls(path), message

    @property
    def instance(self) -> str:
        """Random id of this database; files derived from it (the HNSW graph) record it."""
        return self.get_meta("instance") or ""

    def close(self) -> None:
        self.read.close()
        self.db.close()

    # meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # files and chunks -----------------------------------------------------------------------
    def files(self) -> dict[str, FileRow]:
        rows = self.db.execute(
            "SELECT id, path, size, mtime_ns, hash, language, parse_failed FROM files"
        ).fetchall()
        return {r[1]: FileRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows}

    def replace_file(self, path: str, size: int, mtime_ns: int, content_hash: str, language: str,
                     parse_failed: bool, chunks: Sequence[Chunk],
                     terms: Sequence[ChunkTerms] | None = None) -> list[int]:
        """Swap one file's chunks in a single transaction; returns the removed chunk ids.

        ``terms``: each chunk's :func:`chunk_terms`, when a worker process computed them already."""
        with self.transaction():
            removed = self._delete_file(path)
            cur = self.db.execute(
                "INSERT INTO files (path, size, mtime_ns, hash, language, parse_failed) VALUES (?,?,?,?,?,?)",
                (path, size, mtime_ns, content_hash, language, int(parse_failed)),
            )
            file_id = cur.lastrowid
            for chunk, (embed_hash, name, path_terms, body) in zip(
                    chunks, terms if terms is not None else map(chunk_terms, chunks), strict=True):
                c = self.db.execute(
                    "INSERT INTO chunks (file_id, path, language, kind, symbol, container, start_line, "
                    "end_line, part, text, embed_hash, mtime_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (file_id, chunk.path, chunk.language, chunk.kind, chunk.symbol, chunk.container,
                     chunk.start_line, chunk.end_line, chunk.part, chunk.text, embed_hash, mtime_ns),
                )
                self.db.execute("INSERT INTO chunks_fts (rowid, name, path, body) VALUES (?,?,?,?)",
                                (c.lastrowid, name, path_terms, body))
        return removed

    def forget_file_state(self) -> None:
        """Make the next sync re-chunk every file (chunks and cached vectors stay until then)."""
        self.db.execute("UPDATE files SET hash='', mtime_ns=-1")

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def delete_file(self, path: str) -> list[int]:
        with self.transaction():
            return self._delete_file(path)

    def _delete_file(self, path: str) -> list[int]:
        ids = [r[0] for r in self.db.execute(
            "SELECT c.id FROM chunks c JOIN files f ON c.file_id=f.id WHERE f.path=?", (path,))]
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid=?", ((i,) for i in ids))
        self.db.execute("DELETE FROM files WHERE path=?", (path,))
        return ids

    class _Tx:
        """A transaction, or a savepoint inside the one a :meth:`bulk` block keeps open."""

        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db
            self.nested = False

        def __enter__(self) -> None:
            self.nested = self.db.in_transaction
            self.db.execute("SAVEPOINT tx" if self.nested else "BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            if not self.nested:
                self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
                return
            if exc_type is not None:
                self.db.execute("ROLLBACK TO tx")
            self.db.execute("RELEASE tx")

    def transaction(self) -> Store._Tx:
        return Store._Tx(self.db)

    class _Bulk:
        def __init__(self, db: sqlite3.Connection, every_s: float) -> None:
            self.db = db
            self.every_s = every_s
            self.since = time.monotonic()

        def __enter__(self) -> Store._Bulk:
            self.db.execute("BEGIN IMMEDIATE")
            self.since = time.monotonic()
            return self

        def maybe_commit(self) -> None:
            if time.monotonic() - self.since >= self.every_s:
                self.db.execute("COMMIT")
                self.db.execute("BEGIN IMMEDIATE")
                self.since = time.monotonic()

        def __exit__(self, *exc: object) -> None:
            if self.db.in_transaction:
                self.db.execute("COMMIT")  # every finished file; a failed one rolled back its own savepoint

    def bulk(self, every_s: float = 0.5) -> Store._Bulk:
        """Many files' changes in one transaction, committed every ``every_s`` seconds (``maybe_commit``).

        One commit per file made the full-text index flush a tiny segment per file: a third of a sync.
        """
        return Store._Bulk(self.db, every_s)

    def chunk_rows(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        ids = list(ids)
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in self.read.execute(
                "SELECT id, path, language, kind, symbol, container, start_line, end_line, text, part, "
                f"embed_hash, mtime_ns FROM chunks WHERE id IN ({marks})", part,
            ):
                chunk = Chunk(path=r[1], language=r[2], kind=r[3], symbol=r[4], container=r[5],
                              start_line=r[6], end_line=r[7], text=r[8], part=r[9])
                out[r[0]] = ChunkRow(r[0], chunk, r[10], r[11])
        return out

    def counts(self, model_key: str) -> tuple[int, int, int]:
        """(files, chunks, chunks with a vector for this model)."""
        files = self.read.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = self.read.execute("SELECT count(*) FROM chunks").fetchone()[0]
        embedded = self.read.execute(
            "SELECT count(*) FROM chunks c JOIN vectors v ON v.embed_hash=c.embed_hash AND v.model_key=?",
            (model_key,),
        ).fetchone()[0]
        return files, chunks, embedded

    def parse_failures(self) -> list[str]:
        return [r[0] for r in self.read.execute("SELECT path FROM files WHERE parse_failed=1 ORDER BY path")]

    # vectors -------------------------------------------------------------------------------
    def pending_hashes(self, model_key: str) -> list[str]:
        """Every embed hash lacking a vector for this model, most recently modified files first.

        A set difference of two ordered reads, then the mtimes of just those: after an edit that is a
        few rows, not a probe of the wide vectors table per chunk."""
        have = {r[0] for r in self.read.execute("SELECT embed_hash FROM vectors WHERE model_key=?", (model_key,))}
        missing = [r[0] for r in self.read.execute("SELECT DISTINCT embed_hash FROM chunks") if r[0] not in have]
        newest: dict[str, int] = {}
        for start in range(0, len(missing), 500):
            part = missing[start:start + 500]
            newest.update(self.read.execute(
                f"SELECT embed_hash, max(mtime_ns) FROM chunks WHERE embed_hash IN ({','.join('?' * len(part))}) "
                "GROUP BY embed_hash", part).fetchall())
        return sorted(newest, key=lambda h: -newest[h])

    def embedded_chunk_ids(self, model_key: str) -> set[int]:
        """Ids of the chunks that have a vector for this model (no vectors read)."""
        return {r[0] for r in self.read.execute(
            "SELECT c.id FROM chunks c JOIN vectors v ON v.embed_hash=c.embed_hash AND v.model_key=?", (model_key,))}

    def chunk_vectors(self, model_key: str, ids: Sequence[int]) -> Iterator[tuple[np.ndarray, Vectors]]:
        """(chunk ids, vectors) for these chunk ids, those that have a vector, in batches."""
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            rows = self.read.execute(
                "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.embed_hash=c.embed_hash AND v.model_key=? "
                f"WHERE c.id IN ({','.join('?' * len(part))})", [model_key, *part]).fetchall()
            if rows:
                yield self._unpack(rows)

    def has_vectors(self, model_key: str) -> bool:
        return self.read.execute("SELECT 1 FROM vectors WHERE model_key=? LIMIT 1", (model_key,)).fetchone() is not None

    def with_vectors(self, model_key: str, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` that have a vector for this model."""
        found: set[str] = set()
        for start in range(0, len(hashes), 500):
            part = list(hashes[start:start + 500])
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self.read.execute(
                f"SELECT embed_hash FROM vectors WHERE model_key=? AND embed_hash IN ({marks})", [model_key, *part]))
        return found

    def texts_for(self, hashes: Sequence[str]) -> dict[str, str]:
        """The text to embed for each of these hashes that a chunk still has."""
        out: dict[str, str] = {}
        for start in range(0, len(hashes), 500):
            part = list(hashes[start:start + 500])
            marks = ",".join("?" * len(part))
            for h, container, symbol, text in self.read.execute(
                f"SELECT embed_hash, container, symbol, text FROM chunks WHERE embed_hash IN ({marks})", part,
            ):
                out.setdefault(h, _embed_text(container, symbol, text))
        return out

    def count_pending(self, model_key: str) -> int:
        """Distinct chunk texts without a vector for this model.

        Counted as distinct texts minus texts with a vector: both read an index or the vectors in
        order (17 ms for 25k chunks), where probing the vectors once per chunk took 155 ms."""
        texts = self.read.execute("SELECT count(DISTINCT embed_hash) FROM chunks").fetchone()[0]
        embedded = self.read.execute(
            "SELECT count(*) FROM vectors v WHERE v.model_key=? AND "
            "EXISTS (SELECT 1 FROM chunks c WHERE c.embed_hash=v.embed_hash)", (model_key,)).fetchone()[0]
        return max(0, int(texts) - int(embedded))

    def put_vectors(self, model_key: str, hashes: Sequence[str], vectors: Vectors) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors (embed_hash, model_key, vector) VALUES (?,?,?)",
                ((h, model_key, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                 for h, v in zip(hashes, vectors, strict=True)),
            )

    def embedded_chunks(self, model_key: str, hashes: Sequence[str] | None = None,
                        batch: int = 4096) -> Iterator[tuple[np.ndarray, Vectors]]:
        """(chunk ids, vectors) of every chunk that has a vector, in batches."""
        sql = ("SELECT c.id, v.vector FROM chunks c JOIN vectors v "
               "ON v.embed_hash=c.embed_hash AND v.model_key=?")
        if hashes is not None:
            hashes = list(hashes)
            for start in range(0, len(hashes), 500):
                part = hashes[start:start + 500]
                rows = self.read.execute(
                    sql + f" WHERE c.embed_hash IN ({','.join('?' * len(part))})", [model_key, *part]
                ).fetchall()
                if rows:
                    yield self._unpack(rows)
            return
        cur = self.read.execute(sql, (model_key,))
        while rows := cur.fetchmany(batch):
            yield self._unpack(rows)

    @staticmethod
    def _unpack(rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, Vectors]:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        return ids, vecs

    def prune_vectors(self, keep_ratio: float = 2.0) -> int:
        """Drop cached vectors no chunk uses once they outnumber live chunks by ``keep_ratio``."""
        live = self.db.execute("SELECT count(DISTINCT embed_hash) FROM chunks").fetchone()[0]
        total = self.db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        if total <= max(1000, live * keep_ratio):
            return 0
        cur = self.db.execute(
            "DELETE FROM vectors WHERE embed_hash NOT IN (SELECT embed_hash FROM chunks)")
        return cur.rowcount

    # lexical -------------------------------------------------------------------------------
    def lexical_search(self, terms: list[str], limit: int) -> list[tuple[int, float]]:
        """(chunk id, bm25 score, higher is better); symbol names and paths weigh more than bodies."""
        if not terms:
            return []
        rows = self.read.execute(
            "SELECT rowid, bm25(chunks_fts, 6.0, 3.0, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY s LIMIT ?", (fts_query(terms), limit),
        ).fetchall()
        return [(r[0], -float(r[1])) for r in rows]

    def symbol_matches(self, name: str, limit: int = 50) -> list[int]:
        """Chunks whose symbol (or container.symbol) is exactly ``name``, case-insensitively."""
        last = name.replace("::", ".").replace("#", ".").split(".")[-1]
        rows = self.read.execute(
            "SELECT id, container, symbol FROM chunks WHERE symbol = ? COLLATE NOCASE LIMIT ?",
            (last, limit * 4),
        ).fetchall()
        wanted = name.replace("::", ".").replace("#", ".").lower()
        exact = [r[0] for r in rows if f"{r[1]}.{r[2]}".lower().endswith(wanted) or r[2].lower() == wanted]
        return exact[:limit]
