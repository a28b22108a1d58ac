"""The facade over one workspace that the CLI and the language server both call.

Threading: one writer at a time inside a process (``_write``), one writer process at a time per
workspace (a file lock beside the index); searches never wait for indexing. A process that cannot
take the file lock works read-only from what the writer has stored, and says so.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .embed.encoder import CUDA, ProviderError, choose_provider
from .embed.loading import EncoderLoadError, check_model, load_encoder
from .index.indexer import EmbedReport, Indexer, ProgressCallback, SyncReport, chunker_fingerprint
from .index.overlap import sync_and_embed
from .index.store import Store
from .index.vector_index import VectorIndex
from .paths import workspace_dir
from .query.filters import SearchFilters
from .query.rerank import DEFAULT_RERANK_K, OnnxRanker, load_ranker
from .query.scoring import RankingWeights
from .query.search import run_search
from .types import Encoder, SearchHit, SearchMode
from .walk.walker import DEFAULT_MAX_FILE_SIZE, WalkOptions, walk

log = logging.getLogger(__name__)

INDEX_SAVE_INTERVAL_S = 60.0
SAVE_MIN_CHANGES = 1024
PENDING_CACHE_S = 2.0
IGNORE_FILES = frozenset({".gitignore", ".codesearchignore"})


class EngineError(RuntimeError):
    """A problem the user can act on (bad path, unusable model, busy workspace)."""


class WorkspaceBusy(EngineError):
    """Another process holds this workspace's write lock."""


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


class Engine:
    def __init__(self, root: Path | str, config: EngineConfig = EngineConfig(), *,
                 encoder: Encoder | None = None, index_dir: Path | None = None,
                 on_message: Callable[[str], None] | None = None) -> None:
        root = Path(root).expanduser()
        if not root.exists():
            raise EngineError(f"{root} does not exist")
        if not root.is_dir():
            raise EngineError(f"{root} is not a folder")
        self.root = root.resolve()
        self.config = config
        self.dir = Path(index_dir) if index_dir else workspace_dir(self.root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._on_message = on_message or (lambda m: log.info("%s", m))
        self.messages: list[str] = []
        self.store, problem = Store.open_or_rebuild(self.dir / "index.db")
        if problem:
            self._say(problem)
        self.store.set_meta("root", str(self.root))
        fingerprint = chunker_fingerprint()
        if self.store.get_meta("chunker") != fingerprint:
            if self.store.get_meta("chunker") is not None:
                self._say("the chunker changed since this index was built: every file will be re-chunked "
                          "(unchanged code keeps its cached vectors)")
                self.store.forget_file_state()
            self.store.set_meta("chunker", fingerprint)
        self._encoder = encoder
        self.model_problem = ""
        self._index: VectorIndex | None = None
        self._overlays: dict[str, str] = {}
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
        self.indexer = Indexer(self.root, self.store, config.walk_options())
        self.weights = RankingWeights()

    def _say(self, message: str) -> None:
        self.messages.append(message)
        self._on_message(message)

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
            index = VectorIndex(encoder.dimension, capacity=max(1024, self.store.counts("")[1]))
        added, removed = self.indexer.reconcile_index(encoder.model_key, index)
        if added or removed:
            log.info("vector index reconciled: +%d -%d", added, removed)
        if self.is_writer:
            self.store.set_meta("model_key", encoder.model_key)
        return index

    def _index_key(self, encoder: Encoder) -> str:
        return f"{self.store.instance}:{encoder.model_key}"

    # writing ---------------------------------------------------------------------------------
    def acquire_writer(self, wait: bool | float = True) -> bool:
        """Take the workspace write lock; ``wait`` False/0 returns at once, a float is seconds."""
        timeout = -1 if wait is True else (0 if wait is False else float(wait))
        try:
            self._file_lock.acquire(timeout=timeout)
        except Timeout:
            return False
        self.store.mark_writer(True)
        return True

    @property
    def is_writer(self) -> bool:
        return self._file_lock.is_locked

    def release_writer(self) -> None:
        if self._file_lock.is_locked:
            self.store.mark_writer(False)
        while self._file_lock.is_locked:
            self._file_lock.release()

    @contextmanager
    def writing(self, wait: bool | float = False, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the workspace write lock for a block; ``WorkspaceBusy`` if another process keeps it
        (after ``wait`` seconds, or at once; ``on_wait`` is told before waiting).

        Reentrant: a block inside a block (or inside a long-lived ``acquire_writer``) keeps the lock.
        """
        held = self.is_writer
        if not held and not self.acquire_writer(False):
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

    def _require_writer(self) -> None:
        if not self.is_writer and not self.acquire_writer(wait=False):
            raise WorkspaceBusy(f"another codesearch process is indexing {self.root}")

    def sync(self, cancel: threading.Event | None = None, progress: ProgressCallback | None = None,
             parallel: bool = True) -> SyncReport:
        """Phase one: files → chunks → lexical index. Seconds, even for large repositories.
        ``parallel``: worker processes may read and chunk files (not worth starting for a short sync)."""
        with self._write:
            self._require_writer()
            report = self.indexer.sync(dict(self._overlays), cancel, progress, parallel=parallel)
            self._drop_from_index(report.removed_chunk_ids)
            self._pending_cache = None
            return report

    def embed(self, cancel: threading.Event | None = None, progress: ProgressCallback | None = None
              ) -> EmbedReport:
        """Phase two: embed what lacks a vector, newest files first; saves the graph as it goes."""
        with self._write:
            self._require_writer()
            index = self._vector_index()
            report = self.indexer.embed_pending(self.encoder, index, cancel, progress,
                                                on_batch=self._maybe_save)
            self.save()
            self.store.prune_vectors()
            self._pending_cache = None
            return report

    def update(self, cancel: threading.Event | None = None, progress: ProgressCallback | None = None,
               on_synced: Callable[[SyncReport], None] | None = None, overlap: bool | None = None
               ) -> tuple[SyncReport, EmbedReport]:
        """Sync, then embed; ``on_synced`` runs once the lexical index is complete. With ``overlap``
        (default: when a GPU embeds) embedding starts while files are still being chunked."""
        if overlap if overlap is not None else self._overlap_pays():
            return self._sync_and_embed(cancel, progress, on_synced)
        sync = self.sync(cancel, progress)
        if on_synced is not None:
            on_synced(sync)
        if sync.cancelled:
            return sync, EmbedReport(cancelled=True)
        return sync, self.embed(cancel, progress)

    def _sync_and_embed(self, cancel: threading.Event | None, progress: ProgressCallback | None,
                        on_synced: Callable[[SyncReport], None] | None) -> tuple[SyncReport, EmbedReport]:
        with self._write:
            self._require_writer()
            index = self._vector_index()
            sync, report = sync_and_embed(self.indexer, self.encoder, index, dict(self._overlays), cancel,
                                          progress, on_synced, on_batch=self._maybe_save)
            self._drop_from_index(sync.removed_chunk_ids)
            self.save()
            self.store.prune_vectors()
            self._pending_cache = None
            return sync, report

    def _overlap_pays(self) -> bool:
        """Embedding while syncing pays on a GPU; on a CPU both would compete for the same cores.
        ``CODESEARCH_OVERLAP=on|off`` decides instead (benchmarks, tests)."""
        mode = os.environ.get("CODESEARCH_OVERLAP", "auto").lower()
        if mode in ("on", "1", "off", "0"):
            return mode in ("on", "1")
        if self._encoder is not None:
            return self._encoder.provider == CUDA
        try:
            return self.config.device != "cpu" and choose_provider(self.config.device).provider == CUDA
        except ProviderError:
            return False  # loading the model says why

    def update_paths(self, paths: Iterable[str | Path], embed: bool = True) -> SyncReport:
        """Re-index just these files (watcher events, editor buffers); absolute or relative paths."""
        rel = [p for p in (self.relative(x) for x in paths) if p is not None]
        with self._write:
            self._require_writer()
            if any(p.rsplit("/", 1)[-1] in IGNORE_FILES or p.endswith("info/exclude") for p in rel):
                self.indexer.invalidate_rules()
                report = self.indexer.sync(dict(self._overlays))  # what is ignored may have changed anywhere
            else:
                report = self.indexer.sync_paths(rel, dict(self._overlays))
            self._drop_from_index(report.removed_chunk_ids)
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

    def _drop_from_index(self, chunk_ids: list[int]) -> None:
        if chunk_ids and self._index is not None:
            self._index.remove(chunk_ids)

    def _maybe_save(self) -> None:
        """Save now and then while embedding: every minute, or less often when saving is slow (a large
        graph), so that saving takes at most a tenth of the time."""
        if time.monotonic() - self._last_save > max(INDEX_SAVE_INTERVAL_S, 10 * self._last_save_s):
            self.save()

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
    def search(self, query: str, *, limit: int = 10, languages: Iterable[str] = (),
               path_glob: str | None = None, mode: SearchMode | str = SearchMode.FUSED,
               load_model: bool = True) -> SearchResult:
        """Search the index. A fused search runs on keywords only while the model is not loaded
        (``load_model=False`` never waits for it) or cannot be, and says why in ``dense_skipped``."""
        if not query or not query.strip():
            raise EngineError("the query is empty")
        if limit < 1:
            raise EngineError("limit must be at least 1")
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
                            reranked=outcome.rerank.k, rerank_skipped=skipped, dense_skipped=dense_skipped)

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
        """Chunks without a vector; cached briefly, as every search reports it."""
        now = time.monotonic()
        cached = self._pending_cache
        if cached is not None and cached[0] == model_key and now - cached[1] < PENDING_CACHE_S:
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

    def refresh_from_store(self) -> None:
        """A read-only process picks up vectors the writing process has stored since."""
        if self._index is not None and self._encoder is not None:
            self.indexer.reconcile_index(self._encoder.model_key, self._index)

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

    def close(self) -> None:
        with self._write:
            try:
                self.save()
            finally:
                self.release_writer()
                self.store.close()

    def clean(self) -> None:
        """Delete this workspace's index folder entirely."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
