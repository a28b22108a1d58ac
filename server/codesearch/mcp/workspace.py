"""The MCP server's roots: one :class:`FolderIndexer` and one file watcher per root, searched together.

No protocol here: the tools in :mod:`.server` call these methods from worker threads and turn
:class:`~codesearch.engine.EngineError` (bad arguments included, as :class:`ArgumentError`) into
tool errors. A root whose index another process writes (an editor's ``codesearch-ls``, another
agent's ``codesearch-mcp``, ``codesearch index``) is read, never written, as the folder keeper
does for the language server; it takes over when that process exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import Engine, EngineConfig, EngineError
from ..index.indexer import Progress
from ..languages import UnknownLanguage, check_languages
from ..query.filters import glob_match, under_folder
from ..query.merge import merge_hits
from ..query.related import chunk_hit
from ..service.folder import FolderIndexer, FolderSnapshot, FolderState
from ..service.watcher import FolderWatcher
from ..shards.search import ShardSet
from ..types import Encoder, SearchHit

log = logging.getLogger(__name__)


class ArgumentError(EngineError):
    """A tool argument the server cannot use; the message says why and what would work."""


@dataclass(frozen=True)
class RootHit:
    root: Path
    hit: SearchHit
    text: str  # the chunk's indexed text ("" if it changed since): the snippet is cut from it
    repo: str = ""  # set for a hit from a mounted shard (``--shards``): the repository it belongs to


@dataclass(frozen=True)
class _Source:
    """Where hits come from: a root's engine, or a mounted shard's (``repo`` set)."""

    root: Path
    engine: Engine | None
    repo: str = ""


@dataclass(frozen=True)
class Found:
    hits: list[RootHit]
    indexing: bool  # an indexing run is under way: results may be partial
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Related:
    source: RootHit
    hits: list[RootHit]
    notes: list[str] = field(default_factory=list)


def parse_languages(language: str | None) -> list[str]:
    try:
        return list(check_languages((language or "").split(",")))
    except UnknownLanguage as exc:
        raise ArgumentError(str(exc)) from exc


class Workspace:
    def __init__(self, roots: Sequence[Path], config: EngineConfig, *, watch: bool = True,
                 encoder: Encoder | None = None, shards: ShardSet | None = None) -> None:
        unique = list(dict.fromkeys(Path(r).expanduser().resolve() for r in roots))
        self.config = config
        self.shards = shards  # other repositories, mounted read-only and searched with the roots
        self.folders = [FolderIndexer(root, config, self, encoder=encoder) for root in unique]
        self.watch = watch
        self.watchers: list[FolderWatcher] = []
        self.watch_problems: dict[Path, str] = {}
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def roots(self) -> list[Path]:
        return [f.root for f in self.folders]

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        for folder in self.folders:
            folder.start()
            if self.watch:
                self._watch(folder)

    def _watch(self, folder: FolderIndexer) -> None:
        try:
            self.watchers.append(folder.watch())
        except Exception as exc:  # inotify limits, a vanished folder...
            self.watch_problems[folder.root] = f"not watching for changes: {exc}"
            log.warning("codesearch: cannot watch %s for changes: %s", folder.root, exc)

    def stop(self) -> None:
        """Stop watchers and folder workers (saving indexes, releasing locks); idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        for watcher in self.watchers:
            watcher.stop()
        threads = [threading.Thread(target=f.stop, daemon=True) for f in self.folders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    # FolderListener: worker threads report here; the log is all an MCP server has to tell --------------
    def folder_progress(self, folder: FolderIndexer, progress: Progress) -> None:
        pass

    def folder_idle(self, folder: FolderIndexer) -> None:
        log.info("codesearch: %s indexed", folder.root)

    def folder_changed(self, folder: FolderIndexer) -> None:
        pass

    def folder_message(self, folder: FolderIndexer, message: str, error: bool) -> None:
        log.log(logging.ERROR if error else logging.INFO, "%s", message)

    # paths -------------------------------------------------------------------------------------------
    def folder_for(self, path: Path) -> FolderIndexer | None:
        inside = [f for f in self.folders if f.contains(path)]
        return max(inside, key=lambda f: len(f.root.parts)) if inside else None

    def locate(self, path: str) -> tuple[FolderIndexer, str]:
        """A file or folder named by an agent: absolute, or relative to a root. → (its root, relative path)."""
        raw = path.strip()
        if not raw:
            raise ArgumentError("path is empty: give a file or folder, relative to the workspace root or absolute")
        given = Path(raw).expanduser()
        tries = [given] if given.is_absolute() else [f.root / given for f in self.folders]
        outside = True
        for candidate in tries:
            resolved = candidate.resolve()
            folder = self.folder_for(resolved)
            if folder is None:
                continue
            outside = False
            if resolved.exists():
                rel = resolved.relative_to(folder.root).as_posix()
                return folder, "" if rel == "." else rel
        roots = ", ".join(str(r) for r in self.roots)
        if outside:
            raise ArgumentError(f"{raw} is outside the indexed roots ({roots})")
        raise ArgumentError(f"{raw} does not exist under the indexed roots ({roots})")

    # search ------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, language: str | None = None, glob: str | None = None,
               path: str | None = None) -> Found:
        query = query.strip()
        if not query:
            raise ArgumentError("the query is empty: describe what the code does, or name an identifier")
        targets, glob, notes = self._scope(glob, path)
        if targets is None:
            return Found([], False, notes)
        languages = parse_languages(language)
        per_source: list[tuple[_Source, Sequence[SearchHit]]] = []
        indexing = False
        for folder in targets:
            result = folder.search(query, k, languages, glob)
            per_source.append((_Source(folder.root, folder.engine), result.hits))
            indexing = indexing or folder.indexing or (result.pending > 0 and not folder.paused)
            notes.extend(self._search_notes(folder, result.pending, result.dense_skipped))
        if self.shards is not None and not (path or "").strip():
            per_source.extend(self._search_shards(query, k, languages, glob, notes))
        return Found(self._with_texts(merge_hits(per_source, k)), indexing, notes)

    def _search_shards(self, query: str, k: int, languages: Sequence[str], glob: str | None,
                       notes: list[str]) -> list[tuple[_Source, Sequence[SearchHit]]]:
        assert self.shards is not None
        result = self.shards.search(query, limit=k, languages=languages, path_glob=glob)
        notes.extend(f"shard left out: {error}" for error in result.errors)
        if result.dense_skipped:
            notes.append(f"shards searched by keywords only: {result.dense_skipped}")
        engines = {s.record.repo: s.engine for s in self.shards.shards}
        return [(_Source(h.root, engines.get(h.repo), h.repo), [h.hit]) for h in result.hits]

    def _scope(self, glob: str | None, path: str | None) -> tuple[list[FolderIndexer] | None, str | None, list[str]]:
        """Which roots to search and the glob that keeps a search below ``path``; None: nothing can match."""
        glob = (glob or "").strip() or None
        if not path or not path.strip():
            return list(self.folders), glob, []
        folder, rel = self.locate(path)
        if not rel:
            return [folder], glob, []
        if (folder.root / rel).is_dir():
            return [folder], under_folder(rel, glob), []
        if glob and not glob_match(rel, glob):
            return None, glob, [f"{rel} does not match the glob {glob}"]
        return [folder], rel, []

    def _search_notes(self, folder: FolderIndexer, pending: int, dense_skipped: str | None) -> list[str]:
        where = f" ({folder.root})" if len(self.folders) > 1 else ""
        notes = []
        if folder.engine is None:
            notes.append(f"the index is not open yet{where}: {folder.snapshot().message}")
        if dense_skipped:
            notes.append(f"searched by keywords only{where}: {dense_skipped}")
        elif pending:
            notes.append(f"{pending} chunks are not embedded yet{where}: code that matches only by meaning "
                         "may be missing")
        return notes

    @staticmethod
    def _with_texts(hits: list[tuple[_Source, SearchHit]]) -> list[RootHit]:
        """Each hit with its chunk's indexed text, read once per file."""
        texts: dict[tuple[Path, str, str], dict[tuple[int, int], str]] = {}
        out = []
        for source, hit in hits:
            key = (source.root, source.repo, hit.path)
            if key not in texts:
                texts[key] = source.engine.file_chunk_texts(hit.path) if source.engine is not None else {}
            span = (hit.match_start_line or hit.start_line, hit.match_end_line or hit.end_line)
            out.append(RootHit(source.root, hit, texts[key].get(span, ""), source.repo))
        return out

    # related code ------------------------------------------------------------------------------------
    def related(self, path: str, line: int | None = None, symbol: str | None = None, k: int = 10) -> Related:
        symbol = (symbol or "").strip() or None
        if line is None and symbol is None:
            raise ArgumentError("say which definition: give its line, its symbol name, or both")
        folder, rel = self.locate(path)
        if not rel or (folder.root / rel).is_dir():
            raise ArgumentError(f"{path} is a folder: give the file that holds the definition")
        engine = self._open_engine(folder)
        row = engine.chunk_at(rel, line, symbol)
        if row is None:
            raise ArgumentError(self._not_found(engine, rel, line, symbol))
        vector = engine.chunk_vector(row)
        if vector is None:
            pending = engine.status().pending
            raise EngineError(f"{rel}:{row.chunk.start_line}-{row.chunk.end_line} is not embedded yet "
                              f"({pending} chunks still waiting); try again shortly, or use search meanwhile")
        per_source: list[tuple[_Source, Sequence[SearchHit]]] = []
        notes: list[str] = []
        for other in self.folders:
            if other.engine is None or not other.engine.encoder_loaded:
                notes.append(f"{other.root} left out: its index or model is not ready yet")
                continue
            per_source.append((_Source(other.root, other.engine),
                               other.engine.similar(vector, k, row if other is folder else None)))
        source = RootHit(folder.root, chunk_hit(row, 1.0), row.chunk.text)
        return Related(source, self._with_texts(merge_hits(per_source, k)), notes)

    @staticmethod
    def _open_engine(folder: FolderIndexer) -> Engine:
        if folder.engine is None:
            raise EngineError(f"the index of {folder.root} is not open yet: {folder.snapshot().message}")
        return folder.engine

    @staticmethod
    def _not_found(engine: Engine, rel: str, line: int | None, symbol: str | None) -> str:
        if not engine.file_chunk_texts(rel):
            return (f"{rel} is not in the index (not indexed yet, ignored by .gitignore/.codesearchignore, "
                    "or too big)")
        what = " ".join(x for x in (f"named {symbol}" if symbol else "", f"at line {line}" if line else "") if x)
        return f"no chunk {what} in {rel}"

    # status ------------------------------------------------------------------------------------------
    def snapshots(self) -> list[tuple[FolderSnapshot, str]]:
        """Each root's state, with who keeps its index: this server, another process, or not known yet."""
        out = []
        for folder in self.folders:
            snap = folder.snapshot()
            if snap.writer:
                owner = "this server"
            elif folder.engine is None:
                owner = "unknown" if snap.state != FolderState.ERROR else "none"
            else:
                owner = "another process"
            out.append((snap, owner))
        return out
