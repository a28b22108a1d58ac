"""The on-disk store of one workspace: files, chunks, the lexical index and the embedding cache.

One SQLite database (WAL mode) holds everything but the HNSW graph, which is derived from the
vectors stored here and can always be rebuilt from them without re-embedding. Each unique embedded
text has one row in ``vectors`` per model; its ``id`` is the text's label in the graph, and chunks
map to it through their ``embed_hash`` (many chunks, one vector: copies of a file, boilerplate).

A database that fails its integrity check is moved aside and rebuilt, with a message; a storage
problem (full disk, read-only folder, I/O error) never is (:mod:`.errors`). A folder that cannot
be written is opened read-only when the database in it is intact.
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
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np

from ..types import Chunk, Vectors
from .errors import (
    StorageProblem,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    classify_sqlite_error,
    storage_os_error,
)
from .identifiers import fts_query, index_text
from .transactions import Bulk, Transaction

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
MIGRATABLE_VERSIONS = frozenset({3})  # older versions are rebuilt

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
CREATE INDEX IF NOT EXISTS chunks_symbol ON chunks(symbol COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    embed_hash TEXT NOT NULL,
    model_key TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (embed_hash, model_key)
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(name, path, body, tokenize='unicode61');
"""

# Version 3 keyed vectors by (embed_hash, model_key) alone; version 4 gives each an id (the graph label).
MIGRATE_3_TO_4 = """
CREATE TABLE vectors_v4 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    embed_hash TEXT NOT NULL,
    model_key TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (embed_hash, model_key)
);
INSERT INTO vectors_v4 (embed_hash, model_key, vector) SELECT embed_hash, model_key, vector FROM vectors;
DROP TABLE vectors;
ALTER TABLE vectors_v4 RENAME TO vectors;
UPDATE meta SET value='4' WHERE key='schema_version';
"""

VOCAB = "chunks_vocab"

__all__ = ["SCHEMA_VERSION", "ChunkRow", "FileRow", "Store", "StoreCorrupt", "StoreError", "StoreUnavailable"]


def connect(path: Path, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
    """A connection to the database; read-only ones never create or change a file."""
    if not read_only:
        return sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False, isolation_level=None)


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


_CHUNK_COLUMNS = ("id, path, language, kind, symbol, container, start_line, end_line, text, part, "
                  "embed_hash, mtime_ns")


def _chunk_row(r: Sequence[Any]) -> ChunkRow:
    chunk = Chunk(path=r[1], language=r[2], kind=r[3], symbol=r[4], container=r[5],
                  start_line=r[6], end_line=r[7], text=r[8], part=r[9])
    return ChunkRow(r[0], chunk, r[10], r[11])


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
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.read_only_reason = ""  # why a read-only store could not be opened for writing
        self.notes: list[str] = []  # what the user should hear about this database (upgrades, an empty file)
        self.db = self._open()
        # Searches read through their own connection: with WAL they never wait for the writer.
        try:
            self.read = self._connect()
            # Per-term row counts for the lexical share (query.scoring.lexical_share); a temporary
            # table, so it exists for read-only databases too and never changes the file.
            self.read.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{VOCAB} "
                              "USING fts5vocab(main, chunks_fts, 'row')")
            if not read_only:
                self.read.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            self.db.close()
            raise classify_sqlite_error(exc, self.path) from exc

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return connect(self.path)
        try:
            db = connect(self.path, read_only=True)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            # WAL readers need a -shm file beside the database, which an unwritable folder or a full
            # disk may not allow. With no write-ahead log left to apply, the file alone is the index.
            wal = Path(f"{self.path}-wal")
            if wal.is_file() and wal.stat().st_size > 0:
                raise
            return connect(self.path, read_only=True, immutable=True)

    def _open(self) -> sqlite3.Connection:
        if not self.read_only and self.path.is_file() and self.path.stat().st_size == 0:
            self.notes.append(f"the index database {self.path} was empty (0 bytes, cut short by a crash or a "
                              "full disk?); it is rebuilt: every file is chunked and embedded again")
        try:
            db = self._connect()
        except sqlite3.Error as exc:
            raise classify_sqlite_error(exc, self.path) from exc
        try:
            self._prepare(db)
        except sqlite3.Error as exc:
            db.close()
            raise classify_sqlite_error(exc, self.path) from exc
        except StoreError:
            db.close()
            raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        if not self.read_only:
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
            self._upgrade(db, version)
        if not self.read_only:
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (uuid.uuid4().hex,))
        db.execute("SELECT count(*) FROM chunks_fts").fetchone()

    def _upgrade(self, db: sqlite3.Connection, version: int) -> None:
        """Migrate a known older schema in place (cached vectors are kept); refuse a newer one."""
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(self.path.parent, StorageProblem.NEWER,
                                   f"schema {version}; this version reads schema {SCHEMA_VERSION}")
        if version not in MIGRATABLE_VERSIONS:
            raise StoreCorrupt(f"schema version {version}, expected {SCHEMA_VERSION}")
        if self.read_only:
            raise StoreUnavailable(self.path.parent, StorageProblem.READ_ONLY,
                                   f"schema {version} must be upgraded to {SCHEMA_VERSION}, which needs write access")
        try:
            db.executescript(f"BEGIN IMMEDIATE;{MIGRATE_3_TO_4}COMMIT;")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.notes.append(f"the index was upgraded from schema {version} to {SCHEMA_VERSION}; cached vectors "
                          "were kept (nothing is embedded again)")

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
    def open_or_rebuild(cls, path: Path) -> tuple[Store, list[str]]:
        """Open the store and say what the user should know.

        A damaged database is moved aside (one copy is kept) and rebuilt. A database that cannot be
        written (a read-only folder, a full disk, an I/O error while writing) gives a read-only store
        when it can be read. Any other storage problem raises :class:`StoreUnavailable` and changes
        nothing.
        """
        path = Path(path)
        notes: list[str] = []
        try:
            store = cls(path)
        except StoreUnavailable as exc:
            if not exc.readable or not path.is_file() or path.stat().st_size == 0:
                raise
            store = cls._open_read_only(path, exc)
        except StoreCorrupt as exc:
            notes.append(cls._move_aside(path, exc))
            store = cls(path)
        return store, notes + store.notes

    @classmethod
    def _open_read_only(cls, path: Path, why: StoreUnavailable) -> Store:
        try:
            store = cls(path, read_only=True)
        except StoreCorrupt as exc:
            raise StoreUnavailable(path.parent, why.problem,
                                   f"the database is damaged ({exc}) and cannot be rebuilt: {why.detail}") from exc
        except StoreError as exc:  # not readable either: the first refusal is the one to report
            raise why from exc
        store.read_only_reason = str(why)
        return store

    @staticmethod
    def _move_aside(path: Path, why: StoreCorrupt) -> str:
        """Rename the damaged files (no copy: nothing more is written) after deleting older copies."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            for old in path.parent.glob(f"{path.name}*.corrupt-*"):
                old.unlink()
            for suffix in ("", "-wal", "-shm"):
                victim = Path(str(path) + suffix)
                if victim.exists():
                    victim.replace(Path(f"{path}{suffix}.corrupt-{stamp}"))
        except OSError as exc:
            problem = refusal.problem if (refusal := storage_os_error(exc, path.parent)) else StorageProblem.OTHER
            raise StoreUnavailable(path.parent, problem,
                                   f"the damaged database ({why}) cannot be moved aside: {exc.strerror or exc}"
                                   ) from exc
        message = f"the index at {path} was damaged ({why}); it was moved aside and is being rebuilt"
        log.warning(message)
        return message

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
                     terms: Sequence[ChunkTerms] | None = None) -> set[str]:
        """Swap one file's chunks in a single transaction; returns the embed hashes of the chunks
        removed and added (the texts whose place in the vector graph may have changed).

        ``terms``: each chunk's :func:`chunk_terms`, when a worker process computed them already."""
        with self.transaction():
            touched = self._delete_file(path)
            cur = self.db.execute(
                "INSERT INTO files (path, size, mtime_ns, hash, language, parse_failed) VALUES (?,?,?,?,?,?)",
                (path, size, mtime_ns, content_hash, language, int(parse_failed)),
            )
            file_id = cur.lastrowid
            for chunk, (embed_hash, name, path_terms, body) in zip(
                    chunks, terms if terms is not None else map(chunk_terms, chunks), strict=True):
                touched.add(embed_hash)
                c = self.db.execute(
                    "INSERT INTO chunks (file_id, path, language, kind, symbol, container, start_line, "
                    "end_line, part, text, embed_hash, mtime_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (file_id, chunk.path, chunk.language, chunk.kind, chunk.symbol, chunk.container,
                     chunk.start_line, chunk.end_line, chunk.part, chunk.text, embed_hash, mtime_ns),
                )
                self.db.execute("INSERT INTO chunks_fts (rowid, name, path, body) VALUES (?,?,?,?)",
                                (c.lastrowid, name, path_terms, body))
        return touched

    def forget_file_state(self) -> None:
        """Make the next sync re-chunk every file (chunks and cached vectors stay until then)."""
        self.db.execute("UPDATE files SET hash='', mtime_ns=-1")

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def delete_file(self, path: str) -> set[str]:
        """Drop one file and its chunks; returns the embed hashes of the chunks removed."""
        with self.transaction():
            return self._delete_file(path)

    def _delete_file(self, path: str) -> set[str]:
        rows = self.db.execute(
            "SELECT c.id, c.embed_hash FROM chunks c JOIN files f ON c.file_id=f.id WHERE f.path=?", (path,)
        ).fetchall()
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid=?", ((r[0],) for r in rows))
        self.db.execute("DELETE FROM files WHERE path=?", (path,))
        return {r[1] for r in rows}

    def transaction(self) -> Transaction:
        return Transaction(self.db)

    def bulk(self, every_s: float = 0.5) -> Bulk:
        """Many files' changes in one transaction, committed every ``every_s`` seconds (see :class:`Bulk`)."""
        return Bulk(self.db, every_s)

    def chunk_rows(self, ids: Iterable[int], with_text: bool = True) -> dict[int, ChunkRow]:
        """Chunks by id; ``with_text=False`` leaves their text empty (scoring needs none, and reading
        every candidate's text is a good part of a search's time in SQLite)."""
        ids = list(ids)
        columns = _CHUNK_COLUMNS if with_text else _CHUNK_COLUMNS.replace(" text,", " '',")
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in self.read.execute(f"SELECT {columns} FROM chunks WHERE id IN ({marks})", part):
                out[r[0]] = _chunk_row(r)
        return out

    def chunk_texts(self, ids: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for part in _batches(list(ids)):
            marks = ",".join("?" * len(part))
            out.update(self.read.execute(f"SELECT id, text FROM chunks WHERE id IN ({marks})", part))
        return out

    def file_chunks(self, path: str) -> list[ChunkRow]:
        """Every chunk of one file (workspace-relative path), in line order."""
        rows = self.read.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE file_id = (SELECT id FROM files WHERE path = ?) "
            "ORDER BY start_line, end_line, part", (path,),
        ).fetchall()
        return [_chunk_row(r) for r in rows]

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
        for part in _batches(missing):
            newest.update(self.read.execute(
                f"SELECT embed_hash, max(mtime_ns) FROM chunks WHERE embed_hash IN ({','.join('?' * len(part))}) "
                "GROUP BY embed_hash", part).fetchall())
        return sorted(newest, key=lambda h: -newest[h])

    def pending_embeddings(self, model_key: str, limit: int) -> list[tuple[str, str]]:
        """(embed_hash, text to embed) of at most ``limit`` texts lacking a vector, newest files first."""
        hashes = self.pending_hashes(model_key)[:limit]
        texts = self.texts_for(hashes)
        return [(h, texts[h]) for h in hashes if h in texts]

    def has_vectors(self, model_key: str) -> bool:
        return self.read.execute("SELECT 1 FROM vectors WHERE model_key=? LIMIT 1", (model_key,)).fetchone() is not None

    def with_vectors(self, model_key: str, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` that have a vector for this model."""
        found: set[str] = set()
        for part in _batches(list(hashes)):
            found.update(r[0] for r in self.read.execute(
                f"SELECT embed_hash FROM vectors WHERE model_key=? AND embed_hash IN ({','.join('?' * len(part))})",
                [model_key, *part]))
        return found

    def texts_for(self, hashes: Sequence[str]) -> dict[str, str]:
        """The text to embed for each of these hashes that a chunk still has."""
        out: dict[str, str] = {}
        for part in _batches(list(hashes)):
            for h, container, symbol, text in self.read.execute(
                "SELECT embed_hash, container, symbol, text FROM chunks "
                f"WHERE embed_hash IN ({','.join('?' * len(part))})", part,
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
        """Store vectors; a text that already has one keeps its id (its label in the graph)."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO vectors (embed_hash, model_key, vector) VALUES (?,?,?) "
                "ON CONFLICT (embed_hash, model_key) DO UPDATE SET vector=excluded.vector",
                ((h, model_key, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                 for h, v in zip(hashes, vectors, strict=True)),
            )

    def live_vector_ids(self, model_key: str) -> set[int]:
        """Ids of this model's vectors that some chunk uses: exactly what the graph should hold."""
        return {r[0] for r in self.read.execute(
            "SELECT v.id FROM vectors v WHERE v.model_key=? "
            "AND EXISTS (SELECT 1 FROM chunks c WHERE c.embed_hash=v.embed_hash)", (model_key,))}

    def vector_liveness(self, model_key: str, hashes: Iterable[str]) -> dict[int, bool]:
        """For these texts' vectors of this model: id → whether some chunk uses it now."""
        out: dict[int, bool] = {}
        for part in _batches(list(hashes)):
            out.update((r[0], bool(r[1])) for r in self.read.execute(
                "SELECT v.id, EXISTS (SELECT 1 FROM chunks c WHERE c.embed_hash=v.embed_hash) FROM vectors v "
                f"WHERE v.model_key=? AND v.embed_hash IN ({','.join('?' * len(part))})", [model_key, *part]))
        return out

    def vectors_by_id(self, ids: Sequence[int], batch: int = 4096) -> Iterator[tuple[np.ndarray, Vectors]]:
        """(ids, vectors) for these vector ids, in batches."""
        ids = list(ids)
        for start in range(0, len(ids), batch):
            rows: list[tuple[int, bytes]] = []
            for part in _batches(ids[start:start + batch]):
                rows.extend(self.read.execute(
                    f"SELECT id, vector FROM vectors WHERE id IN ({','.join('?' * len(part))})", part))
            if rows:
                yield self._unpack(rows)

    def chunks_for_vectors(self, vector_ids: Sequence[int], per_vector: int) -> dict[int, list[int]]:
        """Vector id → ids of (at most ``per_vector``) chunks whose text it embeds."""
        out: dict[int, list[int]] = {}
        for part in _batches(list(vector_ids)):
            for vid, cid in self.read.execute(
                "SELECT vid, cid FROM (SELECT v.id AS vid, c.id AS cid, "
                "row_number() OVER (PARTITION BY v.id ORDER BY c.id) AS n FROM vectors v "
                f"JOIN chunks c ON c.embed_hash=v.embed_hash WHERE v.id IN ({','.join('?' * len(part))})) "
                "WHERE n <= ?", [*part, per_vector],
            ):
                out.setdefault(vid, []).append(cid)
        return out

    def vectors_for_hashes(self, model_key: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Embed hash → this model's vector, for the texts that have one."""
        out: dict[str, np.ndarray] = {}
        for part in _batches(list(hashes)):
            for h, blob in self.read.execute(
                f"SELECT embed_hash, vector FROM vectors WHERE model_key=? AND embed_hash IN "
                f"({','.join('?' * len(part))})", [model_key, *part],
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def count_vectors(self, model_key: str) -> int:
        return int(self.read.execute("SELECT count(*) FROM vectors WHERE model_key=?", (model_key,)).fetchone()[0])

    def vector(self, embed_hash: str, model_key: str) -> Vectors | None:
        """The stored vector of one chunk text for this model; None until it is embedded."""
        row = self.read.execute("SELECT vector FROM vectors WHERE embed_hash=? AND model_key=?",
                                (embed_hash, model_key)).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).copy() if row else None

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

    def term_rows(self, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(rows in the lexical index, rows holding each term) for these terms (FTS5's own counts)."""
        rows = int(self.read.execute("SELECT count(*) FROM chunks").fetchone()[0])
        hits = {term: 0 for term in terms}
        for part in _batches(list(terms)):
            for term, count in self.read.execute(
                f"SELECT term, doc FROM temp.{VOCAB} WHERE term IN ({','.join('?' * len(part))})", part,
            ):
                hits[term] = int(count)
        return rows, hits

    def symbol_matches(self, name: str, limit: int = 200) -> list[tuple[int, str]]:
        """(id, the first lines of its text) of chunks whose symbol is ``name``, ignoring case (scoring
        weighs case and qualifiers; the head tells a Rust ``impl`` block from the type it adds to)."""
        return [(r[0], r[1]) for r in self.read.execute(
            "SELECT id, substr(text, 1, 400) FROM chunks WHERE symbol = ? COLLATE NOCASE LIMIT ?", (name, limit))]

    def definition_spans(self, path: str, container: str, symbol: str) -> list[tuple[int, int]]:
        """(first line, last line) of each definition of ``container.symbol`` in ``path`` that was
        split into windows: from its part 1's start to the end of its last window."""
        rows = self.read.execute(
            "SELECT part, start_line, end_line FROM chunks WHERE file_id = (SELECT id FROM files WHERE path = ?) "
            "AND symbol = ? AND container = ? AND part > 0 ORDER BY start_line, part", (path, symbol, container),
        ).fetchall()
        spans: list[tuple[int, int]] = []
        for part, start, end in rows:
            if part == 1 or not spans:
                spans.append((start, end))
            else:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        return spans

T = TypeVar("T")


def _batches(items: list[T], size: int = 500) -> Iterator[list[T]]:
    """SQLite limits the number of ``?`` in one statement."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
