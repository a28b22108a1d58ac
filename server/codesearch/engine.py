"""The facade over one workspace that the CLI and the language server both call.

Threading: one writer at a time inside a process (``_write``), one writer process at a time per
workspace (a file lock beside the index); searches never wait for indexing. A process that cannot
take the file lock works read-only from what the writer has stored, and says so; so does one whose
index folder cannot be written (searches work, writes raise :class:`IndexReadOnly`).

Invariant: after every sync, embedding batch, load and refresh the vector graph holds exactly the
stored vectors that some chunk uses (:mod:`.index.graph_sync`); :meth:`Engine.graph_drift` checks it.

Storage problems (a full disk, an I/O error, a read-only or unwritable folder) surface as
:class:`IndexUnavailable`, whose message names the folder and the problem; they never cost the
stored index anything.
"""

from __future__ import annotations

import functools
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from filelock import FileLock, Timeout

from .embed.encoder import ProviderError, choose_provider
from .embed.loading import EncoderLoadError, check_model, load_encoder
from .index.errors import StoreCorrupt, StoreError, classify_sqlite_error, storage_os_error
from .index.graph_sync import GraphChange, drift, follow_all, follow_texts
from .index.indexer import EmbedReport, Indexer, ProgressCallback, SyncReport, chunker_fingerprint
from .index.overlap import overlap_pays, sync_and_embed
from .index.store import ChunkRow, Store
from .index.vector_index import VectorIndex
from .paths import workspace_dir
from .query.filters import SearchFilters
from .query.related import locate_chunk, similar_hits
from .query.rerank import DEFAULT_RERANK_K, OnnxRanker, load_ranker
from .query.scoring import RankingWeights
from .query.search import run_search
from .read_gate import GateClosed, ReadGate
from .types import Encoder, SearchHit, SearchMode, Vectors
from .walk.walker import DEFAULT_MAX_FILE_SIZE, WalkOptions, walk

log = logging.getLogger(__name__)

INDEX_SAVE_INTERVAL_S = 60.0
SAVE_MIN_CHANGES = 1024
PENDING_CACHE_S = 2.0
IGNORE_FILES = frozenset({".gitignore", ".codesearchignore"})
CLOSE_WAIT_S = 30.0  # close waits this long for searches in flight before closing under them
MAX_QUERY_CHARS = 2000  # a query is a question or a name; longer text is cut (the encoder reads ~256 tokens)

P = ParamSpec("P")
R = TypeVar("R")


class EngineError(RuntimeError):
    """A problem the user can act on (bad path, unusable model, busy workspace)."""


class WorkspaceBusy(EngineError):
    """Another process holds this workspace's write lock."""


class EngineClosed(EngineError):
    """The engine was closed (a folder removed, settings changed) before this read began."""


class IndexUnavailable(EngineError):
    """The index folder cannot be used as needed: full disk, I/O error, permissions, read-only."""


class IndexReadOnly(IndexUnavailable):
    """The index can be searched but not written (its folder or database is read-only)."""


def workspace_root(root: Path | str) -> Path:
    """The workspace folder, resolved; EngineError if it is missing or not a folder."""
    path = Path(root).expanduser()
    if not path.exists():
        raise EngineError(f"{path} does not exist")
    if not path.is_dir():
        raise EngineError(f"{path} is not a folder")
    return path.resolve()


def index_location(root: Path | str, index_dir: Path | None = None) -> Path:
    """The index folder of a workspace, without creating anything."""
    return Path(index_dir) if index_dir else workspace_dir(Path(root).expanduser().resolve())


def remove_index(root: Path | str, index_dir: Path | None = None) -> Path | None:
    """Delete a workspace's index folder without opening the index (it may be damaged, or the disk
    full); the removed folder, or None when there was none. WorkspaceBusy while another process
    writes it, IndexUnavailable when it cannot be deleted."""
    folder = index_location(workspace_root(root), index_dir)
    if not folder.exists():
        return None
    lock = FileLock(str(folder / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise WorkspaceBusy(f"another codesearch process is indexing {root}; stop it first") from None
    except IsADirectoryError:
        pass  # not a lock anyone can hold: removed with the rest
    except OSError as exc:
        raise IndexUnavailable(f"cannot remove the index {folder}: {exc.strerror or exc}") from exc
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise IndexUnavailable(f"cannot remove the index {folder}: {exc.strerror or exc}") from exc
    finally:
        lock.release(force=True)
    return folder


def _storage_errors(method: Callable[Concatenate[Engine, P], R]) -> Callable[Concatenate[Engine, P], R]:
    """SQLite and file-system refusals while using the index become :class:`IndexUnavailable`."""

    @functools.wraps(method)
    def wrapper(self: Engine, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self._unavailable(classify_sqlite_error(exc, self.dir / "index.db")) from exc
        except StoreError as exc:
            raise self._unavailable(exc) from exc
        except OSError as exc:
            refusal = storage_os_error(exc, self.dir)
            if refusal is None:
                raise
            raise IndexUnavailable(str(refusal)) from exc

    return wrapper


def _reads(method: Callable[Concatenate[Engine, P], R]) -> Callable[Concatenate[Engine, P], R]:
    """A read that :meth:`Engine.close` waits for; one begun after close raises :class:`EngineClosed`."""

    @functools.wraps(method)
    def wrapper(self: Engine, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with self._gate.reading():
                return method(self, *args, **kwargs)
        except GateClosed:
            raise EngineClosed(f"the index of {self.root} was closed") from None

    return wrapper


@dataclass(frozen=True)
class EngineConfig:
    model: str | None = None  # None/"default", an exported folder, an HF folder or an HF id
    device: str = "auto"  # auto | cpu | cuda
    exclude: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    ranker: str | None = None  # an exported ranker folder; re-ranks the top rerank_k hits
    rerank_k: int = DEFAULT_RERANK_K

    def walk_options(self) -> WalkOptions:
        return WalkOptions(max_file_size=self.max_file_size, exclude=tuple(self.exclude))


@dataclass
class EngineStatus:
    root: str
    index_dir: str
    files: int
    chunks: int
    embedded: int
    pending: int
    model: str
    model_key: str
    provider: str
    provider_reason: str
    index_bytes: int
    parse_failures: list[str]
    writer: bool
    messages: list[str] = field(default_factory=list)
    model_problem: str = ""  # why the model could not be loaded: searches are by keywords only

    @property
    def ready(self) -> bool:
        return self.pending == 0


@dataclass
class SearchResult:
    hits: list[SearchHit]
    pending: int  # chunks not yet embedded: dense results are partial while > 0
    dense_used: bool
    lexical_used: bool
    reranked: int = 0  # how many of the top hits the ranker re-ordered
    rerank_skipped: str | None = None  # why a configured ranker was not applied
    dense_skipped: str | None = None  # why a fused search ran on keywords only
    query_cut: int = 0  # characters dropped from an over-long query (see MAX_QUERY_CHARS)

    @property
    def notes(self) -> list[str]:
        """What the user should know about how this search was answered."""
        if not self.query_cut:
            return []
        return [f"the query was cut to its first {MAX_QUERY_CHARS} characters ({self.query_cut} left out)"]


def cap_query(query: str) -> tuple[str, int]:
    """The query cut to MAX_QUERY_CHARS (at a space where one is near), and how much was cut."""
    query = query.strip()
    if len(query) <= MAX_QUERY_CHARS:
        return query, 0
    head = query[:MAX_QUERY_CHARS]
    space = head.rfind(" ", MAX_QUERY_CHARS - 100)
    head = head[:space] if space > 0 else head
    return head, len(query) - len(head)


class Engine:
    def __init__(self, root: Path | str, config: EngineConfig = EngineConfig(), *,
                 encoder: Encoder | None = None, index_dir: Path | None = None,
                 on_message: Callable[[str], None] | None = None) -> None:
        root = workspace_root(root)
        self._locate(root, config, index_location(root, index_dir), on_message)
        self.store = self._open_store()
        self.read_only_reason = self.store.read_only_reason
        if self.read_only_reason:
            self._say(f"{self.read_only_reason}; searching the index as it is (read-only)")
        self._init_state(encoder)

    @classmethod
    def open_read_only(cls, index_dir: Path | str, config: EngineConfig = EngineConfig(), *,
                       encoder: Encoder | None = None, on_message: Callable[[str], None] | None = None) -> Engine:
        """A finished index (an index shard) searched as it is: no write lock, nothing written, no file
        created, so ``index_dir`` may be on a read-only filesystem; writes raise :class:`IndexReadOnly`.
        ``root`` is the folder the index was built from, as recorded in it; it need not exist here."""
        index_dir = Path(index_dir).expanduser()
        path = index_dir / "index.db"
        if not path.is_file():
            raise IndexUnavailable(f"there is no index in {index_dir}")
        try:
            store = Store(path, read_only=True)
        except sqlite3.Error as exc:
            raise IndexUnavailable(str(classify_sqlite_error(exc, path))) from exc
        except StoreError as exc:
            raise IndexUnavailable(f"the index in {index_dir} cannot be opened: {exc}") from exc
        engine = cls.__new__(cls)
        engine._locate(Path(store.get_meta("root") or index_dir), config, index_dir, on_message)
        engine.store = store
        engine.read_only_reason = f"the index in {index_dir} was opened read-only"
        engine._init_state(encoder)
        engine.frozen = True
        return engine

    def _locate(self, root: Path, config: EngineConfig, index_dir: Path,
                on_message: Callable[[str], None] | None) -> None:
        self.root = root
        self.config = config
        self.dir = index_dir
        self._on_message = on_message or (lambda m: log.info("%s", m))
        self.messages: list[str] = []
        self._damaged = False  # the database failed while in use: leave it marked for a check on next open

    def _init_state(self, encoder: Encoder | None) -> None:
        self.frozen = False  # opened by open_read_only: nobody writes it while it is open
        self._encoder = encoder
        self.model_problem = ""
        self._index: VectorIndex | None = None
        self._overlays: dict[str, str] = {}
        self._gate = ReadGate()
        self._write = threading.RLock()
        self._state = threading.Lock()
        self._index_lock = threading.Lock()
        self._ranker: OnnxRanker | None = None
        self._ranker_problem: str | None = None
        self._ranker_loaded = False
        self._ranker_lock = threading.Lock()  # loading takes a second; searches of the index need not wait
        self._pending_cache: tuple[str, float, int] | None = None
        self._file_lock = FileLock(str(self.dir / "write.lock"))
        self._last_save = time.monotonic()
        self._last_save_s = 0.0
        self.indexer = Indexer(self.root, self.store, self.config.walk_options())
        self.weights = RankingWeights()

    def _say(self, message: str) -> None:
        self.messages.append(message)
        self._on_message(message)

    def _open_store(self) -> Store:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexUnavailable(f"cannot create the index folder {self.dir}: {exc.strerror or exc} "
                                   "(CODESEARCH_CACHE_DIR chooses where indexes are kept)") from exc
        try:
            store, notes = Store.open_or_rebuild(self.dir / "index.db")
        except sqlite3.Error as exc:
            raise self._unavailable(classify_sqlite_error(exc, self.dir / "index.db")) from exc
        except StoreError as exc:
            raise self._unavailable(exc) from exc
        for note in notes:
            self._say(note)
        return store

    @_storage_errors
    def _record_workspace(self) -> None:
        """Note the workspace and chunker in the index (writing nothing when they are as recorded,
        so that a full disk still lets the index be opened and searched)."""
        if self.store.get_meta("root") != str(self.root):
            self.store.set_meta("root", str(self.root))
        fingerprint = chunker_fingerprint()
        if self.store.get_meta("chunker") != fingerprint:
            if self.store.get_meta("chunker") is not None:
                self._say("the chunker changed since this index was built: every file will be re-chunked "
                          "(unchanged code keeps its cached vectors)")
                self.store.forget_file_state()
            self.store.set_meta("chunker", fingerprint)

    def _unavailable(self, exc: StoreError) -> IndexUnavailable:
        if isinstance(exc, StoreCorrupt):
            self._damaged = True
            return IndexUnavailable(f"the index in {self.dir} is damaged ({exc}); the next run checks it and "
                                    "rebuilds what is lost (`codesearch clean` removes it)")
        return IndexUnavailable(str(exc))

    # model ----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The configured model, loaded on first use (shared by every engine of this process)."""
        if self._encoder is None:
            with self._state:
                if self._encoder is None:
                    try:
                        self._encoder = load_encoder(self.config.model, self.config.device, self._say)
                    except EncoderLoadError as exc:
                        self.model_problem = str(exc)
                        raise EngineError(str(exc)) from exc
                    self.model_problem = ""
        return self._encoder

    def check_model(self) -> None:
        """``EngineError`` now if the configured model can never load, or CUDA was asked for and cannot
        be used; loads nothing."""
        if self._encoder is None:
            try:
                check_model(self.config.model)
                if self.config.device == "cuda":
                    choose_provider("cuda")
            except (EncoderLoadError, ProviderError) as exc:
                self.model_problem = str(exc)
                raise EngineError(str(exc)) from exc

    @property
    def encoder_loaded(self) -> bool:
        return self._encoder is not None

    def load_encoder(self) -> bool:
        """Load the model now; False (with ``model_problem`` set) if it cannot be: keyword search only."""
        try:
            self.encoder  # noqa: B018 - loads it
        except EngineError:
            return False
        return True

    def _vector_index(self) -> VectorIndex:
        """The HNSW graph for the current model, loaded and checked, or rebuilt from stored vectors."""
        if self._index is not None:
            return self._index
        encoder = self.encoder
        with self._index_lock:
            if self._index is None:
                self._index = self._load_vector_index(encoder)
            return self._index

    def _load_vector_index(self, encoder: Encoder) -> VectorIndex:
        path = self.dir / "vectors.hnsw"
        previous = self.store.get_meta("model_key")
        if previous and previous != encoder.model_key:
            self._say("the model changed: code will be re-embedded with the new model "
                      "(vectors of the old one are kept in the cache)")
        try:
            index = VectorIndex.load(path, self._index_key(encoder), encoder.dimension)
        except ValueError as exc:
            if path.exists() and previous == encoder.model_key:
                self._say(f"the vector index was unusable ({exc}); rebuilding it from stored vectors")
            index = VectorIndex(encoder.dimension, capacity=max(1024, self.store.count_vectors(encoder.model_key)))
        change = follow_all(self.store, encoder.model_key, index)
        if change:
            log.info("vector index reconciled: +%d -%d", change.added, change.removed)
        if self.is_writer and previous != encoder.model_key:
            self.store.set_meta("model_key", encoder.model_key)
        return index

    def _index_key(self, encoder: Encoder) -> str:
        return f"{self.store.instance}:{encoder.model_key}"

    def _follow_store(self, touched_texts: set[str]) -> GraphChange:
        """The graph follows the store after a sync: texts no chunk uses any more leave it, texts
        that came back (an edit undone, a branch switched back, a copied file) rejoin it from the cache."""
        if self._index is None or self._encoder is None or not touched_texts:
            return GraphChange()
        return follow_texts(self.store, self._encoder.model_key, self._index, touched_texts)

    def _resync_graph(self) -> None:
        """A sync stopped part-way (an error, Ctrl-C): the files it did change are committed, so the
        graph is compared with the whole store."""
        self._pending_cache = None
        if self._index is None or self._encoder is None:
            return
        try:
            follow_all(self.store, self._encoder.model_key, self._index)
        except Exception:  # the error that stopped the sync is the one to report
            log.warning("could not bring the vector graph in step after a failed sync", exc_info=True)

    @_reads
    @_storage_errors
    def graph_drift(self) -> tuple[set[int], set[int]]:
        """(vectors the loaded graph lacks, labels it should not have); both empty when in step."""
        if self._index is None or self._encoder is None:
            return set(), set()
        return drift(self.store, self._encoder.model_key, self._index)

    # writing ---------------------------------------------------------------------------------
    @_storage_errors
    def acquire_writer(self, wait: bool | float = True) -> bool:
        """Take the workspace write lock; ``wait`` False/0 returns at once, a float is seconds.
        Always False for a read-only index."""
        if self.read_only_reason:
            return False
        timeout = -1 if wait is True else (0 if wait is False else float(wait))
        try:
            self._file_lock.acquire(timeout=timeout)
        except Timeout:
            return False
        except IsADirectoryError as exc:
            raise IndexUnavailable(f"cannot lock the index in {self.dir}: {self._file_lock.lock_file} is a folder, "
                                   "not a lock file; remove it and try again") from exc
        try:
            self.store.mark_writer(True)
            self._record_workspace()  # only the writer: a reader of another version must not reset the index
        except BaseException:
            self._file_lock.release(force=True)
            raise
        return True

    @property
    def is_writer(self) -> bool:
        return self._file_lock.is_locked

    def release_writer(self) -> None:
        if self._file_lock.is_locked and not self._damaged:
            try:
                self.store.mark_writer(False)
            except sqlite3.Error as exc:  # a full disk: the next open checks the database, no harm
                log.warning("could not mark the index as cleanly closed: %s", exc)
        while self._file_lock.is_locked:
            self._file_lock.release()

    @contextmanager
    def writing(self, wait: bool | float = False, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the workspace write lock for a block; ``WorkspaceBusy`` if another process keeps it
        (after ``wait`` seconds, or at once; ``on_wait`` is told before waiting), ``IndexReadOnly``
        if the index cannot be written at all.

        Reentrant: a block inside a block (or inside a long-lived ``acquire_writer``) keeps the lock.
        """
        held = self.is_writer
        if not held and not self.acquire_writer(False):
            self._refuse_read_only()
            if wait is not False and on_wait is not None:
                on_wait()
            if wait is False or not self.acquire_writer(wait):
                raise WorkspaceBusy(f"another codesearch process (an editor's language server, or another "
                                    f"`codesearch index`) is keeping the index of {self.root} up to date")
        try:
            yield
        finally:
            if not held:
                self.release_writer()

    def _refuse_read_only(self) -> None:
        if self.read_only_reason:
            raise IndexReadOnly(f"{self.read_only_reason}: the index can be searched but not updated")

    def _require_writer(self) -> None:
        if not self.is_writer and not self.acquire_writer(wait=False):
            self._refuse_read_only()
            raise WorkspaceBusy(f"another codesearch process is indexing {self.root}")

    @_storage_errors
    def sync(self, cancel: threading.Event | None = None, progress: ProgressCallback | None = None,
             parallel: bool = True) -> SyncReport:
        """Phase one: files → chunks → lexical index. Seconds, even for large repositories.
        ``parallel``: worker processes may read and chunk files (not worth starting for a short sync)."""
        with self._write:
            self._require_writer()
            try:
                report = self.indexer.sync(dict(self._overlays), cancel, progress, parallel=parallel)
            except BaseException:
                self._resync_graph()
                raise
            self._follow_store(report.touched_texts)
            self._pending_cache = None
            return report

    @_storage_errors
    def embed(self, cancel: threading.Event | None = None, progress: ProgressCallback | None = None
              ) -> EmbedReport:
        """Phase two: embed what lacks a vector, newest files first; saves the graph as it goes."""
        with self._write:
            self._require_writer()
            index = self._vector_index()
            try:
                report = self.indexer.embed_pending(self.encoder, index, cancel, progress,
                                                    on_batch=self._maybe_save)
            except BaseException:  # a batch may be stored without having joined the graph
                self._resync_graph()
                raise
            self._pending_cache = None
            self.save()
            self.store.prune_vectors()
            return report

    def update(self, cancel: threading.Event | None = None, progress: ProgressCallback | None = None,
               on_synced: Callable[[SyncReport], None] | None = None, overlap: bool | None = None
               ) -> tuple[SyncReport, EmbedReport]:
        """Sync, then embed; ``on_synced`` runs once the lexical index is complete. With ``overlap``
        (default: when a GPU embeds) embedding starts while files are still being chunked."""
        if overlap if overlap is not None else overlap_pays(self._encoder, self.config.device):
            return self._sync_and_embed(cancel, progress, on_synced)
        sync = self.sync(cancel, progress)
        if on_synced is not None:
            on_synced(sync)
        if sync.cancelled:
            return sync, EmbedReport(cancelled=True)
        return sync, self.embed(cancel, progress)

    @_storage_errors
    def _sync_and_embed(self, cancel: threading.Event | None, progress: ProgressCallback | None,
                        on_synced: Callable[[SyncReport], None] | None) -> tuple[SyncReport, EmbedReport]:
        with self._write:
            self._require_writer()
            index = self._vector_index()

            def synced(report: SyncReport) -> None:  # before the vectors buffered meanwhile are written
                self._follow_store(report.touched_texts)
                self._pending_cache = None
                if on_synced is not None:
                    on_synced(report)

            try:
                sync, report = sync_and_embed(self.indexer, self.encoder, index, dict(self._overlays), cancel,
                                              progress, synced, on_batch=self._maybe_save)
            except BaseException:  # files and vectors stored before the error may not be in the graph
                self._resync_graph()
                raise
            self._pending_cache = None
            self.save()
            self.store.prune_vectors()
            return sync, report

    @_storage_errors
    def update_paths(self, paths: Iterable[str | Path], embed: bool = True) -> SyncReport:
        """Re-index just these files (watcher events, editor buffers); absolute or relative paths."""
        rel = [p for p in (self.relative(x) for x in paths) if p is not None]
        with self._write:
            self._require_writer()
            try:
                if any(p.rsplit("/", 1)[-1] in IGNORE_FILES or p.endswith("info/exclude") for p in rel):
                    self.indexer.invalidate_rules()
                    report = self.indexer.sync(dict(self._overlays))  # what is ignored may have changed anywhere
                else:
                    report = self.indexer.sync_paths(rel, dict(self._overlays))
            except BaseException:
                self._resync_graph()
                raise
            self._follow_store(report.touched_texts)
            if embed and report.changed and self.encoder_loaded:
                self.indexer.embed_pending(self.encoder, self._vector_index())
            self._pending_cache = None
            return report

    def set_overlay(self, path: str | Path, text: str | None) -> str | None:
        """Unsaved editor text for a file (None drops it); the next sync/update_paths reads it."""
        rel = self.relative(path)
        if rel is None:
            return None
        with self._state:
            if text is None:
                self._overlays.pop(rel, None)
            else:
                self._overlays[rel] = text
        return rel

    def relative(self, path: str | Path) -> str | None:
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()
        try:
            return p.resolve().relative_to(self.root).as_posix() if p.exists() else \
                p.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def _maybe_save(self) -> None:
        """Save now and then while embedding: every minute, or less often when saving is slow (a large
        graph), so that saving takes at most a tenth of the time."""
        if time.monotonic() - self._last_save > max(INDEX_SAVE_INTERVAL_S, 10 * self._last_save_s):
            self.save()

    @_storage_errors
    def save(self, force: bool = False) -> None:
        """Write the graph if it changed by :data:`SAVE_MIN_CHANGES` labels (or ``force``): a graph a few
        edits behind the store is brought up to date when loaded, for less than writing it costs."""
        if self._index is None or self._encoder is None or not self.is_writer:
            return
        path = self.dir / "vectors.hnsw"
        if force or self._index.changes >= SAVE_MIN_CHANGES or not path.exists():
            clock = time.monotonic()
            self._index.save(path, self._index_key(self._encoder))
            self._last_save = time.monotonic()
            self._last_save_s = self._last_save - clock

    # reading ---------------------------------------------------------------------------------
    @_reads
    @_storage_errors
    def search(self, query: str, *, limit: int = 10, languages: Iterable[str] = (),
               path_glob: str | None = None, mode: SearchMode | str = SearchMode.FUSED,
               load_model: bool = True) -> SearchResult:
        """Search the index. A fused search runs on keywords only while the model is not loaded
        (``load_model=False`` never waits for it) or cannot be, and says why in ``dense_skipped``."""
        if not query or not query.strip():
            raise EngineError("the query is empty")
        if limit < 1:
            raise EngineError("limit must be at least 1")
        query, cut = cap_query(query)
        mode = SearchMode(mode)
        dense_skipped = None
        if mode == SearchMode.FUSED and not self._dense_available(load_model):
            mode = SearchMode.LEXICAL
            dense_skipped = self.model_problem or "the model is still loading"
        encoder = self.encoder if mode != SearchMode.LEXICAL else None
        index = self._vector_index() if encoder is not None else None
        filters = SearchFilters(languages=tuple(languages), path_glob=path_glob or None)
        ranker = self._load_ranker() if mode == SearchMode.FUSED else None
        outcome = run_search(self.store, index, encoder, query, limit=limit, filters=filters, weights=self.weights,
                             mode=mode, ranker=ranker, rerank_k=self.config.rerank_k)
        pending = self._pending_count(encoder.model_key) if encoder else self.store.counts("")[1]
        skipped = outcome.rerank.skipped if ranker is not None else self._ranker_problem
        return SearchResult(outcome.hits, pending, outcome.dense_used, outcome.lexical_used,
                            reranked=outcome.rerank.k, rerank_skipped=skipped, dense_skipped=dense_skipped,
                            query_cut=cut)

    @_reads
    @_storage_errors
    def vectors_stored(self) -> bool:
        """Whether any chunk has a vector of the model this index was last embedded with; loads no model."""
        key = self._encoder.model_key if self._encoder is not None else self.store.get_meta("model_key")
        return bool(key) and self.store.counts(key or "")[2] > 0

    def _dense_available(self, load_model: bool) -> bool:
        if self._encoder is not None:
            return True
        if self.model_problem or not load_model:
            return False
        return self.load_encoder()

    def _pending_count(self, model_key: str) -> int:
        """Chunks without a vector; cached briefly (for good when frozen), as every search reports it."""
        now = time.monotonic()
        cached = self._pending_cache
        if cached is not None and cached[0] == model_key and (self.frozen or now - cached[1] < PENDING_CACHE_S):
            return cached[2]
        count = self.store.count_pending(model_key)
        self._pending_cache = (model_key, now, count)
        return count

    def _load_ranker(self) -> OnnxRanker | None:
        """The configured ranker, loaded once; a broken one is reported once and left out."""
        if not self.config.ranker:
            return None
        with self._ranker_lock:
            if not self._ranker_loaded:
                self._ranker_loaded = True
                self._ranker, self._ranker_problem = load_ranker(self.config.ranker, self.config.device)
                if self._ranker_problem:
                    self._say(self._ranker_problem)
        return self._ranker

    # code like a definition ----------------------------------------------------------------------
    @_reads
    def chunk_at(self, path: str, line: int | None = None, symbol: str | None = None) -> ChunkRow | None:
        """The indexed chunk of a file (workspace-relative) at ``line`` and/or named ``symbol``."""
        return locate_chunk(self.store.file_chunks(path), line, symbol)

    @_reads
    def file_chunk_texts(self, path: str) -> dict[tuple[int, int], str]:
        """(start_line, end_line) → indexed text of every chunk of one file: fuller snippets for hits."""
        return {(r.chunk.start_line, r.chunk.end_line): r.chunk.text for r in self.store.file_chunks(path)}

    @_reads
    def chunk_vector(self, row: ChunkRow) -> Vectors | None:
        """The chunk's stored vector for the loaded model; None while it waits to be embedded."""
        if not self.encoder_loaded:
            raise EngineError(self.model_problem or "the model is still loading; try again in a few seconds")
        return self.store.vector(row.embed_hash, self.encoder.model_key)

    @_reads
    def similar(self, vector: Vectors, k: int = 10, exclude: ChunkRow | None = None) -> list[SearchHit]:
        """Chunks nearest to a stored vector (cosine), leaving out ``exclude`` and what overlaps it."""
        if k < 1:
            raise EngineError("k must be at least 1")
        if not self.encoder_loaded:
            raise EngineError(self.model_problem or "the model is still loading; try again in a few seconds")
        return similar_hits(self.store, self._vector_index(), vector, k, exclude)

    @_storage_errors
    def refresh_from_store(self) -> None:
        """A read-only process picks up what the writing process has stored since (chunks and vectors)."""
        self._pending_cache = None
        if self._index is not None and self._encoder is not None:
            follow_all(self.store, self._encoder.model_key, self._index)

    @_reads
    @_storage_errors
    def status(self) -> EngineStatus:
        key = self._encoder.model_key if self._encoder else (self.store.get_meta("model_key") or "")
        files, chunks, embedded = self.store.counts(key)
        size = sum(p.stat().st_size for p in self.dir.glob("*") if p.is_file())
        model = provider = reason = ""
        if self._encoder is not None:
            model, provider, reason = self._encoder.model_id, self._encoder.provider, self._encoder.provider_reason
        return EngineStatus(
            root=str(self.root), index_dir=str(self.dir), files=files, chunks=chunks, embedded=embedded,
            pending=self.store.count_pending(key) if key else chunks, model=model, model_key=key,
            provider=provider, provider_reason=reason, index_bytes=size,
            parse_failures=self.store.parse_failures(), writer=self.is_writer, messages=list(self.messages),
            model_problem=self.model_problem,
        )

    def stale_files(self) -> list[str]:
        """Files whose size or mtime on disk differ from the index (or that are new or gone)."""
        known = self.store.files()
        current = {f.path: f for f in walk(self.root, self.config.walk_options()).files}
        stale = [p for p, f in current.items()
                 if p not in known or known[p].size != f.size or known[p].mtime_ns != f.mtime_ns]
        stale.extend(p for p in known if p not in current)
        return sorted(stale)

    @_storage_errors
    def close(self) -> None:
        if not self._gate.close(CLOSE_WAIT_S):
            log.warning("closing the index of %s while a search still runs after %.0f s", self.root, CLOSE_WAIT_S)
        with self._write:
            try:
                self.save()
            finally:
                self.release_writer()
                self.store.close()

    def clean(self) -> None:
        """Close and delete this workspace's index folder entirely."""
        if self.frozen:
            raise IndexReadOnly(f"{self.read_only_reason}: it is not deleted")
        self.close()
        remove_index(self.root, self.dir)
