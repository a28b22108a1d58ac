"""Build or refresh one repository's shard: a workspace index that the engine itself writes.

Phase one is the engine's own sync (walk, chunk, lexical index) into the shard's folder. Phase two
sends the chunk texts that lack a vector to :class:`Embedders` (Ray actors in a cluster build, a
local encoder in tests) in large batches, stores the vectors in the shard, and then runs the
engine's own embed step, which finds every vector stored and builds and saves the HNSW graph from
them. So a shard is byte for byte what ``codesearch index`` would write, and a rebuild reuses
cached vectors like any re-index. Nothing here imports Ray.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ..engine import Engine, EngineConfig
from ..index.store import Store
from ..types import Encoder, Vectors
from ..walk.walker import DEFAULT_MAX_FILE_SIZE, WalkOptions
from .content import build_key, repo_content
from .manifest import SHARDS_SUBDIR, ShardRecord

log = logging.getLogger(__name__)

SHARD_FILES = ("index.db", "vectors.hnsw", "vectors.hnsw.json")


class ShardError(RuntimeError):
    """This repository cannot be made into a shard; the message says why."""


@dataclass(frozen=True)
class EncoderInfo:
    """What a builder needs to know of the model the embedders run."""

    model_key: str
    model_id: str
    dimension: int
    provider: str
    provider_reason: str

    @classmethod
    def of(cls, encoder: Encoder) -> EncoderInfo:
        return cls(encoder.model_key, encoder.model_id, encoder.dimension, encoder.provider,
                   encoder.provider_reason)


class Embedders(Protocol):
    @property
    def info(self) -> EncoderInfo: ...

    def encode(self, batches: Sequence[Sequence[str]]) -> Iterator[Vectors]:
        """The document vectors of each batch, in the batches' order."""
        ...


class LocalEmbedders:
    """Embedders that are one encoder in this process (tests; a build without a cluster)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.info = EncoderInfo.of(encoder)

    def encode(self, batches: Sequence[Sequence[str]]) -> Iterator[Vectors]:
        for batch in batches:
            yield self.encoder.encode_documents(batch)


class EmbeddersEncoder:
    """The :class:`~codesearch.types.Encoder` the engine is given: documents go to the embedders."""

    def __init__(self, embedders: Embedders) -> None:
        self.embedders = embedders
        info = embedders.info
        self.dimension = info.dimension
        self.model_key = info.model_key
        self.model_id = info.model_id
        self.provider = info.provider
        self.provider_reason = info.provider_reason

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return next(iter(self.embedders.encode([list(texts)])))

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self.encode_documents(texts)


@dataclass(frozen=True)
class BuildOptions:
    model: str | None = None
    exclude: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    batch_size: int = 256  # chunk texts per embedder call
    fetch_batches: int = 32  # batches read from the shard's store at a time
    force: bool = False  # rebuild even when nothing changed

    def walk_options(self) -> WalkOptions:
        return WalkOptions(max_file_size=self.max_file_size, exclude=tuple(self.exclude))

    def engine_config(self) -> EngineConfig:
        return EngineConfig(model=self.model, device="cpu", exclude=tuple(self.exclude),
                            max_file_size=self.max_file_size)


@dataclass(frozen=True)
class ShardJob:
    source: str  # the repository's folder, absolute
    repo: str  # its label
    shard: str  # the shard's folder, relative to the shards folder


@dataclass(frozen=True)
class ShardOutcome:
    record: ShardRecord
    action: str  # built | unchanged | failed


def shard_folder_name(source: Path) -> str:
    """``shards/<name>-<digest of the path>``: readable, and stable for a repository's folder."""
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.name or "root")[:40]
    return f"{SHARDS_SUBDIR}/{name}-{digest}"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_repo_shard(out: Path, job: ShardJob, options: BuildOptions, embedders: Embedders,
                     previous: ShardRecord | None = None) -> ShardOutcome:
    """Build, refresh or skip one shard; any failure comes back as a ``failed`` outcome, never raised."""
    start = time.monotonic()
    try:
        return _build(Path(out), job, options, embedders, previous, start)
    except Exception as exc:  # one repository's failure is reported; the others go on
        log.warning("shard of %s failed: %s", job.source, exc, exc_info=True)
        record = ShardRecord(repo=job.repo, source=job.source, shard=job.shard, status="failed",
                             model_key=embedders.info.model_key, build_s=round(time.monotonic() - start, 3),
                             built_at=utc_now(), error=describe_error(exc))
        return ShardOutcome(record, "failed")


def describe_error(exc: BaseException) -> str:
    """One line: the underlying error of a remote call (Ray keeps it as ``cause``), not its traceback."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def _build(out: Path, job: ShardJob, options: BuildOptions, embedders: Embedders, previous: ShardRecord | None,
           start: float) -> ShardOutcome:
    root = Path(job.source)
    if not root.is_dir():
        raise ShardError(f"{root} is not a folder on this node (every node must see the repositories at one path)")
    content = repo_content(root, options.walk_options())
    key = build_key(embedders.info.model_key, options.walk_options())
    shard_dir = out / job.shard
    if (not options.force and previous is not None and previous.ok and previous.content_hash == content.digest
            and previous.build_key == key and all((shard_dir / f).is_file() for f in SHARD_FILES)):
        return ShardOutcome(replace(previous, repo=job.repo), "unchanged")
    engine = Engine(root, options.engine_config(), encoder=EmbeddersEncoder(embedders), index_dir=shard_dir,
                    on_message=lambda m: log.info("%s: %s", job.repo, m))
    try:
        with engine.writing():
            engine.sync()
            if engine.store.counts("")[0] == 0:
                raise ShardError("no indexable files (check .gitignore, .codesearchignore and --exclude)")
            embed_start = time.monotonic()
            embed_pending(engine.store, embedders, options)
            embed_s = time.monotonic() - embed_start
            engine.embed()  # the graph, from the vectors just stored
        status = engine.status()
    finally:
        engine.close()
    finalize_shard(shard_dir)
    record = ShardRecord(
        repo=job.repo, source=job.source, shard=job.shard, content_kind=content.kind, content_hash=content.digest,
        build_key=key, model_key=embedders.info.model_key, model_id=embedders.info.model_id, files=status.files,
        chunks=status.chunks, embedded=status.embedded, index_bytes=folder_bytes(shard_dir),
        embed_s=round(embed_s, 3), build_s=round(time.monotonic() - start, 3), built_at=utc_now())
    return ShardOutcome(record, "built")


def embed_pending(store: Store, embedders: Embedders, options: BuildOptions) -> int:
    """Embed every chunk text of ``store`` that lacks a vector, many batches in flight; returns how many."""
    model_key = embedders.info.model_key
    done = 0
    while pending := store.pending_embeddings(model_key, options.batch_size * options.fetch_batches):
        batches = [pending[i:i + options.batch_size] for i in range(0, len(pending), options.batch_size)]
        vectors = embedders.encode([[text for _, text in batch] for batch in batches])
        for batch, batch_vectors in zip(batches, vectors, strict=True):
            store.put_vectors(model_key, [h for h, _ in batch], batch_vectors)
            done += len(batch)
    return done


def finalize_shard(shard_dir: Path) -> None:
    """One self-contained database file (rollback journal, not WAL) that a read-only mount can open
    without creating anything; the write lock file goes too."""
    db = sqlite3.connect(str(shard_dir / "index.db"), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
    finally:
        db.close()
    (shard_dir / "write.lock").unlink(missing_ok=True)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
