"""``$/progress`` for folder indexing: one work-done token per busy period of a folder.

A token is created when a folder reports progress, begun once the client has accepted it, reported
at most every ``REPORT_INTERVAL_S`` (and on every change of phase), and ended when the folder goes
idle, is removed or restarts. Cancelling the token pauses the folder's indexing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from ..index.indexer import Phase, Progress
from ..service.folder import FolderIndexer, FolderState

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.2
REGISTRATION_TIMEOUT_S = 10.0


@dataclass
class _Tracker:
    token: str
    folder: FolderIndexer
    begun: bool = False
    ended: bool = False
    dead: bool = False
    latest: Progress | None = None
    last_phase: Phase | None = None
    last_sent: float = 0.0


def progress_message(p: Progress) -> str:
    if p.phase == Phase.SCAN:
        return "scanning files"
    if p.phase == Phase.CHUNK:
        return f"{p.files_done}/{p.files_total} files"
    if p.phase == Phase.EMBED:
        eta = f", about {p.eta_s:.0f}s left" if p.eta_s is not None and p.eta_s > 0 else ""
        return f"{p.embedded}/{p.to_embed} chunks embedded ({p.rate:.0f}/s{eta}); {p.files_total} files"
    return "done"


class ProgressReporter:
    """Runs on the server's event loop; ``spawn`` schedules the token's creation on it."""

    def __init__(self, server: LanguageServer, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._server = server
        self._spawn = spawn
        self._trackers: dict[Path, _Tracker] = {}
        self._tokens: dict[str, _Tracker] = {}
        self._ids = itertools.count(1)

    def _client_has_progress(self) -> bool:
        try:
            window = self._server.client_capabilities.window
        except Exception:
            return False
        return bool(window and window.work_done_progress)

    def on_progress(self, folder: FolderIndexer, progress: Progress) -> None:
        if not self._client_has_progress():
            return
        tracker = self._trackers.get(folder.root)
        if tracker is None or tracker.ended:
            tracker = _Tracker(token=f"codesearch-index-{os.getpid()}-{next(self._ids)}", folder=folder)
            self._trackers[folder.root] = tracker
            self._tokens[tracker.token] = tracker
            self._spawn(self._open(tracker))
        tracker.latest = progress
        if tracker.begun and not tracker.ended:
            now = time.monotonic()
            if progress.phase != tracker.last_phase or now - tracker.last_sent >= REPORT_INTERVAL_S:
                self._report(tracker, progress)

    def on_idle(self, folder: FolderIndexer) -> None:
        tracker = self._trackers.get(folder.root)
        if tracker is None or tracker.ended or tracker.folder is not folder:
            return
        self._finish(tracker)

    def forget(self, root: Path) -> None:
        """The folder was removed or restarted: end its token if one is open."""
        tracker = self._trackers.pop(root, None)
        if tracker is not None and not tracker.ended:
            self._finish(tracker)

    def cancel(self, token: types.ProgressToken) -> FolderIndexer | None:
        """The folder whose indexing the client cancelled, if the token is ours."""
        tracker = self._tokens.get(str(token))
        if tracker is None:
            log.info("cancel for unknown progress token %r", token)
            return None
        return tracker.folder

    async def _open(self, tracker: _Tracker) -> None:
        progress = self._server.work_done_progress
        try:
            await asyncio.wait_for(progress.create_async(tracker.token), REGISTRATION_TIMEOUT_S)
        except Exception as exc:
            log.info("the client did not create a progress token: %s", exc)
            tracker.dead = tracker.ended = True
            self._tokens.pop(tracker.token, None)
            return
        progress.begin(tracker.token, types.WorkDoneProgressBegin(
            title=f"codesearch: indexing {tracker.folder.name}", cancellable=True, message="scanning files",
            percentage=0))
        tracker.begun = True
        if tracker.latest is not None:
            self._report(tracker, tracker.latest)
        if tracker.ended:
            self._end(tracker)

    def _report(self, tracker: _Tracker, progress: Progress) -> None:
        tracker.last_phase = progress.phase
        tracker.last_sent = time.monotonic()
        self._server.work_done_progress.report(tracker.token, types.WorkDoneProgressReport(
            message=progress_message(progress), percentage=min(max(progress.percentage, 0), 100), cancellable=True))

    def _finish(self, tracker: _Tracker) -> None:
        tracker.ended = True
        if tracker.begun and not tracker.dead:
            self._end(tracker)

    def _end(self, tracker: _Tracker) -> None:
        snap = tracker.folder.snapshot()
        if snap.state == FolderState.ERROR or snap.paused:
            message = snap.message
        else:
            message = f"{snap.files} files, {snap.chunks} chunks indexed"
        self._server.work_done_progress.end(tracker.token, types.WorkDoneProgressEnd(message=message))
        self._tokens.pop(tracker.token, None)
        self._server.work_done_progress.tokens.pop(tracker.token, None)
