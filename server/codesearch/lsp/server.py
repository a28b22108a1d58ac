"""The language server: LSP plumbing around one :class:`FolderIndexer` per workspace folder.

Requests run as ``async`` handlers on the event loop and push every blocking call (searching,
opening and closing indexes) to worker threads, so a search or a cancel is answered while
folders index in the background.  Folder workers report back through :class:`FolderListener`
callbacks, which are handed to the event loop before anything is sent to the client.

Handlers are module-level functions (as in the pygls examples), registered by :func:`create_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path

from .. import __version__
from ..engine import EngineError, SearchResult
from ..index.indexer import Progress
from ..query.filters import under_folder
from ..query.merge import merge_hits
from ..service.folder import FolderIndexer, FolderSnapshot, FolderState
from ..service.watcher import FolderWatcher, PathFilter, is_ignore_file
from ..types import SearchHit
from .progress import ProgressReporter
from .protocol import (
    SEARCH_METHOD,
    CodesearchProtocol,
    SearchParams,
    hit_json,
    hit_symbol,
    make_converter,
    uri_to_path,
)
from .settings import Settings, parse_settings
from .shard_mount import Origin, ShardMount

log = logging.getLogger(__name__)

SERVER_NAME = "codesearch-ls"
STATUS_NOTIFICATION = "codesearch/status"
CMD_REINDEX = "codesearch-ls.reindex"
CMD_STATUS = "codesearch-ls.status"
SYMBOL_LIMIT = 50
STATUS_INTERVAL_S = 0.5
REGISTRATION_TIMEOUT_S = 10.0
PARENT_CHECK_S = 5.0


# the server -------------------------------------------------------------------------------------------
class CodesearchLanguageServer(LanguageServer):
    def __init__(self) -> None:
        # lsprotocol's own converter: params of custom methods stay plain JSON (pygls' default
        # turns them into namedtuples).
        super().__init__(SERVER_NAME, __version__, protocol_cls=CodesearchProtocol,
                         converter_factory=make_converter,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental, max_workers=4)
        self.settings = Settings()
        self.settings_warnings: list[str] = []
        self.folders: dict[Path, FolderIndexer] = {}
        self.watchers: dict[Path, FolderWatcher] = {}
        self.filters: dict[Path, PathFilter] = {}
        self.watch_mode = "none"  # client | watchdog | none
        self.initial_folders: list[Path] = []
        self.shard_mount = ShardMount()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.index_progress = ProgressReporter(self, self._spawn)
        self._last_status: dict[str, Any] | None = None
        self._status_due: asyncio.TimerHandle | None = None
        self._last_status_time = 0.0
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._errors_said: set[str] = set()  # errors folders reported, each sent to the client once
        self._said_lock = threading.Lock()
        self._tasks: set[asyncio.Future[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # threads → event loop ------------------------------------------------------------------------------
    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(fn, *args)

    def folder_progress(self, folder: FolderIndexer, progress: Progress) -> None:
        self._soon(self._on_progress, folder, progress)

    def folder_idle(self, folder: FolderIndexer) -> None:
        self._soon(self._on_idle, folder)

    def folder_changed(self, folder: FolderIndexer) -> None:
        self._soon(self.schedule_status)

    def folder_message(self, folder: FolderIndexer, message: str, error: bool) -> None:
        if error:
            with self._said_lock:
                if message in self._errors_said:  # e.g. one model that fails for every folder: said once
                    return
                self._errors_said.add(message)
        self._soon(self.log_to_client, message, types.MessageType.Error if error else types.MessageType.Info)

    # messages ----------------------------------------------------------------------------------------
    def log_to_client(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        try:
            self.window_log_message(types.LogMessageParams(type=kind, message=message))
        except Exception:
            log.debug("could not send a log message", exc_info=True)
            (log.error if kind == types.MessageType.Error else log.info)("%s", message)
        else:  # the client shows it; stderr (which clients show too) gets a copy only at INFO
            log.info("%s", message)

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Request errors are answered (and logged by the handlers); the rest go to the log, not a popup.
        from pygls.exceptions import FeatureRequestError

        if source is FeatureRequestError:
            return
        self.log_to_client(f"codesearch-ls: internal error: {error}", types.MessageType.Error)

    # progress -------------------------------------------------------------------------------------------
    def _on_progress(self, folder: FolderIndexer, progress: Progress) -> None:
        if self.folders.get(folder.root) is folder:  # not a folder removed or restarted since
            self.index_progress.on_progress(folder, progress)

    def _on_idle(self, folder: FolderIndexer) -> None:
        self.index_progress.on_idle(folder)
        self.schedule_status()

    def cancel_progress(self, token: types.ProgressToken) -> None:
        folder = self.index_progress.cancel(token)
        if folder is not None:
            self.log_to_client(f"codesearch: indexing of {folder.root} cancelled")
            folder.cancel()

    # status --------------------------------------------------------------------------------------------
    def snapshots(self) -> list[FolderSnapshot]:
        return [f.snapshot() for f in self.folders.values()]

    def status_params(self) -> dict[str, Any]:
        snaps = self.snapshots()
        if not snaps:
            return {"state": "ready", "message": "no workspace folder to index", "files": 0, "chunks": 0,
                    "embedded": 0}
        states = {s.state for s in snaps}
        state = next((s for s in (FolderState.ERROR, FolderState.INDEXING) if s in states), FolderState.READY)
        if len(snaps) == 1:
            message = snaps[0].message
        else:
            by_message: dict[str, list[str]] = {}  # one note for folders that say the same
            for snap in snaps:
                if snap.message and snap.message != "ready":
                    by_message.setdefault(snap.message, []).append(snap.name)
            notes = [f"{', '.join(names)}: {text}" for text, names in by_message.items()]
            message = "; ".join(notes) if notes else "ready"
        params: dict[str, Any] = {
            "state": state.value, "message": message,
            "files": sum(s.files for s in snaps), "chunks": sum(s.chunks for s in snaps),
            "embedded": sum(s.embedded for s in snaps),
        }
        model = next((s.model for s in snaps if s.model), "")
        provider = next((s.provider for s in snaps if s.provider), "")
        if model:
            params["model"] = model
        if provider:
            params["provider"] = provider
        busy = [s.percentage for s in snaps if s.state == FolderState.INDEXING and s.percentage is not None]
        if busy:
            params["percentage"] = min(busy)
        elif state == FolderState.READY:
            params["percentage"] = 100
        return params

    def schedule_status(self) -> None:
        """Send ``codesearch/status`` now on a change of state, else at most every STATUS_INTERVAL_S."""
        if self.loop is None:
            return
        params = self.status_params()
        last = self._last_status
        if last is not None and params == last:
            return
        now = time.monotonic()
        urgent = last is None or params["state"] != last.get("state") or params.get("model") != last.get("model")
        if urgent or now - self._last_status_time >= STATUS_INTERVAL_S:
            self._send_status(params)
        elif self._status_due is None:
            self._status_due = self.loop.call_later(STATUS_INTERVAL_S - (now - self._last_status_time),
                                                    self._flush_status)

    def _flush_status(self) -> None:
        self._status_due = None
        params = self.status_params()
        if params != self._last_status:
            self._send_status(params)

    def _send_status(self, params: dict[str, Any]) -> None:
        self._last_status = params
        self._last_status_time = time.monotonic()
        self.protocol.notify(STATUS_NOTIFICATION, params)

    def status_report(self) -> dict[str, Any]:
        return {**self.status_params(), "version": __version__, "watching": self.watch_mode,
                "settings": self.settings.to_json(), "folders": [s.to_json() for s in self.snapshots()],
                "shards": self.shard_mount.to_json()}

    # folders -------------------------------------------------------------------------------------------
    def folder_for(self, path: Path) -> FolderIndexer | None:
        best: FolderIndexer | None = None
        for folder in self.folders.values():
            if folder.contains(path) and (best is None or len(str(folder.root)) > len(str(best.root))):
                best = folder
        return best

    def find_folder(self, spec: str) -> FolderIndexer | None:
        found, prefix = self.locate(spec)
        return found if not prefix else None

    def locate(self, spec: str) -> tuple[FolderIndexer | None, str]:
        """A workspace folder (by URI, path or name), or a folder inside one: (its folder, relative prefix)."""
        path = uri_to_path(spec) if "://" in spec else Path(spec).expanduser()
        if path is not None and path.is_absolute():
            resolved = path.resolve()
            folder = self.folder_for(resolved)
            if folder is None:
                return None, ""
            return folder, "" if resolved == folder.root else resolved.relative_to(folder.root).as_posix()
        matches = [f for f in self.folders.values() if f.name == spec]
        return (matches[0] if len(matches) == 1 else None), ""

    def add_folder(self, root: Path) -> None:
        root = root.resolve()
        if root in self.folders:
            return
        folder = FolderIndexer(root, self.settings.engine_config(), self)
        self.folders[root] = folder
        self.filters[root] = PathFilter(root, self.settings.engine_config().walk_options())
        folder.start()
        if self.watch_mode == "watchdog":
            self._start_watcher(folder)

    def remove_folder(self, root: Path) -> FolderIndexer | None:
        root = root.resolve()
        folder = self.folders.pop(root, None)
        self.filters.pop(root, None)
        watcher = self.watchers.pop(root, None)
        if watcher is not None:
            watcher.stop()
        self.index_progress.forget(root)
        return folder

    def _start_watcher(self, folder: FolderIndexer) -> None:
        if folder.root in self.watchers or not folder.root.is_dir():
            return

        try:
            watcher = folder.watch()
        except Exception as exc:  # inotify limits, vanished folder...
            self.log_to_client(f"codesearch: cannot watch {folder.root} for changes: {exc}", types.MessageType.Warning)
            return
        self.watchers[folder.root] = watcher

    def start_watchdog(self) -> None:
        self.watch_mode = "watchdog"
        for folder in self.folders.values():
            self._start_watcher(folder)

    async def register_client_watching(self) -> None:
        registration = types.Registration(
            id="codesearch-ls-watched-files", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                watchers=[types.FileSystemWatcher(glob_pattern="**/*")]))
        try:
            await asyncio.wait_for(
                self.client_register_capability_async(types.RegistrationParams(registrations=[registration])),
                REGISTRATION_TIMEOUT_S)
        except Exception as exc:
            log.info("client file watching unavailable (%s); watching with watchdog", exc)
            self.start_watchdog()
            return
        self.watch_mode = "client"

    def client_can_watch(self) -> bool:
        try:
            watched = self.client_capabilities.workspace.did_change_watched_files  # type: ignore[union-attr]
        except AttributeError:
            return False
        return bool(watched and watched.dynamic_registration)

    async def restart_folders(self) -> None:
        roots = list(self.folders)
        with self._said_lock:
            self._errors_said.clear()
        old = [self.remove_folder(root) for root in roots]
        await asyncio.gather(*(asyncio.to_thread(f.stop) for f in old if f is not None))
        for root in roots:
            self.add_folder(root)
        self.schedule_status()

    async def mount_shards(self) -> None:
        """Mount the ``shards`` setting's folder read-only (in a thread: it loads the model)."""
        notes = await asyncio.to_thread(self.shard_mount.mount, self.settings.shards, self.settings.engine_config(),
                                        lambda m: log.info("%s", m))
        for note in notes:
            self.log_to_client(note)

    def stop_all(self) -> None:
        """Stop watchers and folder workers (saving indexes, releasing locks); idempotent, any thread."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        for watcher in list(self.watchers.values()):
            watcher.stop()
        self.watchers.clear()
        folders = list(self.folders.values())
        threads = [threading.Thread(target=f.stop, daemon=True) for f in folders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.shard_mount.close()

    # searching --------------------------------------------------------------------------------------
    async def search(self, query: str, limit: int, languages: Sequence[str], path_glob: str | None,
                     folder: str | None = None) -> tuple[list[tuple[Origin, SearchHit]], bool]:
        """Every folder (or one, or a folder inside one) and the mounted shards searched in parallel, merged
        on score."""
        targets, path_glob = self._targets(folder, path_glob)

        def one(f: FolderIndexer) -> SearchResult:
            return f.search(query, limit, languages, path_glob)

        shard_hits = asyncio.to_thread(self.shard_mount.search, query, limit, languages, path_glob) \
            if folder is None else asyncio.sleep(0, [])
        results, from_shards = await asyncio.gather(asyncio.gather(*(asyncio.to_thread(one, f) for f in targets)),
                                                    shard_hits)
        groups = [(Origin(f.root), r.hits) for f, r in zip(targets, results, strict=True)]
        hits = merge_hits([*groups, *from_shards], limit)
        indexing = any(f.indexing or (r.pending > 0 and not f.paused) for f, r in zip(targets, results, strict=True))
        return hits, indexing

    def _targets(self, folder: str | None, path_glob: str | None) -> tuple[list[FolderIndexer], str | None]:
        if folder is None:
            return list(self.folders.values()), path_glob
        found, prefix = self.locate(folder)
        if found is None:
            raise JsonRpcInvalidParams(f"folder {folder!r} is not one of this workspace's folders or inside one")
        return [found], under_folder(prefix, path_glob) if prefix else path_glob


def _guard(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Answer failures as JSON-RPC errors, tell the client's log about internal ones, live on."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        async def handler(ls: CodesearchLanguageServer, *args: Any) -> Any:
            try:
                return await fn(ls, *args)
            except JsonRpcException:
                raise
            except asyncio.CancelledError:
                raise
            except EngineError as exc:
                ls.log_to_client(f"codesearch-ls: {name} failed: {exc}", types.MessageType.Error)
                raise JsonRpcInternalError(f"{name} failed: {exc}") from exc
            except Exception as exc:
                log.exception("%s failed", name)
                ls.log_to_client(f"codesearch-ls: {name} failed: {type(exc).__name__}: {exc}",
                                 types.MessageType.Error)
                raise JsonRpcInternalError(f"{name} failed: {type(exc).__name__}: {exc}") from exc

        handler.__name__ = fn.__name__
        handler.__qualname__ = fn.__qualname__
        return handler

    return wrap


# handlers -------------------------------------------------------------------------------------------
def initialize(ls: CodesearchLanguageServer, params: types.InitializeParams) -> None:
    ls.settings, ls.settings_warnings = parse_settings(params.initialization_options)
    ls.initial_folders = _workspace_roots(params)


def _workspace_roots(params: types.InitializeParams) -> list[Path]:
    roots = [p for p in (uri_to_path(wf.uri) for wf in params.workspace_folders or []) if p is not None]
    if not roots:
        root_uri = params.root_uri or (from_fs_path(params.root_path) if params.root_path else None)
        path = uri_to_path(root_uri) if root_uri else None
        roots = [path] if path is not None else []
    return roots


async def initialized(ls: CodesearchLanguageServer, params: types.InitializedParams) -> None:
    ls.loop = asyncio.get_running_loop()
    for warning in ls.settings_warnings:
        ls.log_to_client(f"codesearch-ls: {warning}", types.MessageType.Warning)
    if not ls.client_can_watch():
        ls.watch_mode = "watchdog"
    for root in ls.initial_folders:
        ls.add_folder(root)
    if not ls.initial_folders:
        ls.log_to_client("codesearch-ls: no workspace folder was given; nothing to index", types.MessageType.Warning)
    if ls.watch_mode != "watchdog":
        ls._spawn(ls.register_client_watching())  # indexing never waits for the reply
    if ls.settings.shards is not None:
        ls._spawn(ls.mount_shards())
    ls.schedule_status()
    _watch_parent(ls)


async def shutdown(ls: CodesearchLanguageServer, params: None) -> None:
    await asyncio.to_thread(ls.stop_all)


def exit_(ls: CodesearchLanguageServer, params: None) -> None:
    ls.stop_all()


async def did_change_configuration(ls: CodesearchLanguageServer, params: types.DidChangeConfigurationParams) -> None:
    settings, warnings = parse_settings(params.settings, ls.settings)
    for warning in warnings:
        ls.log_to_client(f"codesearch-ls: {warning}", types.MessageType.Warning)
    if settings == ls.settings:
        return
    old, ls.settings = ls.settings, settings
    if settings.shards != old.shards or settings.engine_config() != old.engine_config():
        await ls.mount_shards()
    if replace(settings, shards=old.shards) == old:
        return  # only the shards folder changed
    ls.log_to_client(f"codesearch-ls: settings changed ({settings.to_json()}); re-indexing")
    await ls.restart_folders()


async def did_change_folders(ls: CodesearchLanguageServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    removed = [ls.remove_folder(path) for path in _paths(params.event.removed)]
    await asyncio.gather(*(asyncio.to_thread(f.stop) for f in removed if f is not None))
    for path in _paths(params.event.added):
        ls.add_folder(path)
    ls.schedule_status()


def _paths(folders: Sequence[types.WorkspaceFolder]) -> list[Path]:
    return [p for p in (uri_to_path(wf.uri) for wf in folders) if p is not None]


def did_change_watched_files(ls: CodesearchLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    batches: dict[Path, tuple[FolderIndexer, list[str], list[bool]]] = {}
    for change in params.changes:
        path = uri_to_path(change.uri)
        folder = ls.folder_for(path) if path is not None else None
        if path is None or folder is None:
            continue
        rel = path.relative_to(folder.root).as_posix() if path != folder.root else ""
        path_filter = ls.filters.get(folder.root)
        if not rel or (path_filter is not None and not path_filter.wanted(rel)):
            continue
        _, rels, full = batches.setdefault(folder.root, (folder, [], [False]))
        rels.append(rel)
        # a deleted folder arrives as one event for the folder: re-check everything
        if change.type == types.FileChangeType.Deleted and not path.suffix and not is_ignore_file(rel):
            full[0] = True
    for folder, rels, full in batches.values():
        folder.notify_paths(rels, full=full[0])


def _overlay(ls: CodesearchLanguageServer, uri: str, text: str | None) -> None:
    path = uri_to_path(uri) if uri.startswith("file:") else None
    folder = ls.folder_for(path) if path is not None else None
    if path is not None and folder is not None:
        folder.set_overlay(str(path), text)


def did_open(ls: CodesearchLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    _overlay(ls, params.text_document.uri, params.text_document.text)


def did_change(ls: CodesearchLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    _overlay(ls, params.text_document.uri, doc.source)


def did_close(ls: CodesearchLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    _overlay(ls, params.text_document.uri, None)


def progress_cancel(ls: CodesearchLanguageServer, params: types.WorkDoneProgressCancelParams) -> None:
    ls.cancel_progress(params.token)


@_guard(SEARCH_METHOD)
async def search(ls: CodesearchLanguageServer, params: SearchParams) -> dict[str, Any]:
    hits, indexing = await ls.search(params.query, params.limit, params.languages, params.path_glob, params.folder)
    return {"results": [origin_json(origin, hit) for origin, hit in hits], "indexing": indexing}


def origin_json(origin: Origin, hit: SearchHit) -> dict[str, Any]:
    """A hit's JSON; a shard's hit also names its repository."""
    found = hit_json(origin.root, hit)
    return {**found, "repo": origin.repo} if origin.repo is not None else found


@_guard(types.WORKSPACE_SYMBOL)
async def workspace_symbol(ls: CodesearchLanguageServer,
                           params: types.WorkspaceSymbolParams) -> list[types.SymbolInformation]:
    query = params.query.strip()
    if not query:
        return []
    hits, _ = await ls.search(query, SYMBOL_LIMIT, (), None)
    return [hit_symbol(origin.root, hit) for origin, hit in hits]


@_guard(CMD_REINDEX)
async def reindex(ls: CodesearchLanguageServer, *args: Any) -> dict[str, Any]:
    targets = list(ls.folders.values())
    if args and args[0]:
        spec = args[0].get("folder") if isinstance(args[0], dict) else args[0]
        found = ls.find_folder(spec) if isinstance(spec, str) else None
        if found is None:
            raise JsonRpcInvalidParams(f"{CMD_REINDEX}: {args[0]!r} is not one of this workspace's folders")
        targets = [found]
    for folder in targets:
        folder.reindex()
    ls.schedule_status()
    return {"reindexing": [str(f.root) for f in targets]}


@_guard(CMD_STATUS)
async def status(ls: CodesearchLanguageServer, *args: Any) -> dict[str, Any]:
    return ls.status_report()


FEATURES: list[tuple[str, Any, Callable[..., Any]]] = [
    (types.INITIALIZE, None, initialize),
    (types.INITIALIZED, None, initialized),
    (types.SHUTDOWN, None, shutdown),
    (types.EXIT, None, exit_),
    (types.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
    (types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS, None, did_change_folders),
    (types.WORKSPACE_DID_CHANGE_WATCHED_FILES, None, did_change_watched_files),
    (types.TEXT_DOCUMENT_DID_OPEN, None, did_open),
    (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (types.WINDOW_WORK_DONE_PROGRESS_CANCEL, None, progress_cancel),
    (SEARCH_METHOD, None, search),
    (types.WORKSPACE_SYMBOL, types.WorkspaceSymbolOptions(resolve_provider=False), workspace_symbol),
]
COMMANDS: list[tuple[str, Callable[..., Any]]] = [(CMD_REINDEX, reindex), (CMD_STATUS, status)]


def create_server() -> CodesearchLanguageServer:
    server = CodesearchLanguageServer()
    for method, options, handler in FEATURES:
        server.feature(method, options)(handler)
    for name, command in COMMANDS:
        server.command(name)(command)
    return server


def _watch_parent(ls: CodesearchLanguageServer) -> None:
    """Exit when the editor that started us is gone without saying goodbye."""
    pid = ls.process_id
    if not pid or pid == os.getpid():
        return

    def run() -> None:
        while not ls._stopped:
            time.sleep(PARENT_CHECK_S)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log.warning("the client process %s is gone; exiting", pid)
                ls.stop_all()
                os._exit(0)
            except PermissionError:
                pass

    threading.Thread(target=run, name="codesearch-parent-watch", daemon=True).start()
