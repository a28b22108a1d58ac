"""One detached indexer per workspace: finishes what a quick ``codesearch search`` could not wait for.

``codesearch search`` syncs briefly, answers from what is ready and calls :func:`start`, which runs
``python -m codesearch.service.background ROOT …`` in its own session (it outlives the terminal),
logging to ``background.log`` in the index folder. The child takes the workspace write lock (one
writer per workspace, so at most one background indexer), syncs, embeds newest files first, syncs
again in case files changed meanwhile, saves and exits. While it runs it keeps ``background.json``
beside the log up to date (pid, phase, progress, rate, ETA); ``codesearch status`` reads it.
SIGTERM (``codesearch stop``) ends it between batches: what is embedded is saved and the lock freed.

A child that died without finishing (killed, out of memory) leaves its state file behind with a
phase that is not final; :func:`inspect` tells that apart from a live one (the pid is gone, or the
write lock is free), and the next ``codesearch search`` starts a fresh child.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from ..engine import Engine, EngineConfig, EngineError, IndexUnavailable, index_location
from ..index.indexer import Phase, Progress
from .background_state import (
    FINAL,
    LOG_FILE,
    STATE_FILE,
    BackgroundState,
    Inspection,
    Liveness,
    estimate,
    format_eta,
    inspect,
    lock_free,
    pid_alive,
    read_state,
    remember_rate,
    remembered_rate,
    write_state,
)

__all__ = ["FINAL", "LOG_FILE", "STATE_FILE", "BackgroundState", "Inspection", "Liveness", "QuickSync", "estimate",
           "format_eta", "hand_over", "inspect", "lock_free", "pid_alive", "read_state", "remember_rate",
           "remembered_rate", "start", "stop", "sync_briefly", "write_state"]

log = logging.getLogger(__name__)

LOG_MAX_BYTES = 1 << 20
STATE_EVERY_S = 1.0
LOCK_WAIT_S = 30.0  # the starting CLI may still be releasing the lock
MAX_ROUNDS = 3  # sync + embed again while files keep changing, at most this often
ANSWER_WITHIN_S = 2.5  # a search stops reading files this long after its process started...
MIN_SYNC_S = 0.5  # ...but reads for this long at least
SYNC_BUDGET_ENV = "CODESEARCH_SYNC_BUDGET_S"
INLINE_EMBED_MAX = 32  # a search embeds this many changed chunks itself rather than start an indexer
RETRY_FAILED_S = 600.0  # a failed indexer is not restarted by searches for this long


# starting and stopping -------------------------------------------------------------------------------------
def command(root: Path, config: EngineConfig) -> list[str]:
    cmd = [sys.executable, "-m", "codesearch.service.background", str(root), "--device", config.device,
           "--max-file-size", str(config.max_file_size)]
    if config.model:
        cmd += ["--model", config.model]
    for pattern in config.exclude:
        cmd += ["--exclude", pattern]
    return cmd


def start(root: Path, index_dir: Path, config: EngineConfig) -> BackgroundState:
    """Start the detached indexer for ``root``; the caller checked that none runs (:func:`inspect`)."""
    index_dir = Path(index_dir)
    log_path = index_dir / LOG_FILE
    if log_path.exists() and log_path.stat().st_size > LOG_MAX_BYTES:
        log_path.replace(log_path.with_suffix(".log.1"))
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(command(root, config), stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    now = time.time()
    state = BackgroundState(pid=proc.pid, root=str(root), started=now, updated=now, phase="starting")
    write_state(index_dir, state)
    return state


def stop(index_dir: Path, timeout: float = 30.0) -> Inspection:
    """SIGTERM the running indexer and wait for it to save and exit; what it left says how it went."""
    found = inspect(index_dir)
    if not found.running or found.state is None:
        return found
    with contextlib.suppress(ProcessLookupError):
        os.kill(found.state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(found.state.pid):
        time.sleep(0.1)
    return inspect(index_dir)


# a quick search: sync briefly, answer, hand the rest over ---------------------------------------------------
@dataclass(frozen=True)
class QuickSync:
    synced: bool  # this process held the write lock and synced
    partial: bool  # the sync stopped at its time budget: some files are not read yet
    files_done: int
    files_total: int
    found: Inspection  # the background indexer, as found before syncing
    embedded: int = 0  # a few changed chunks embedded on the spot
    budget_s: float = 0.0  # how long it could read files
    problem: str = ""  # why the index could not be updated (a full disk, an I/O error, a lock that is a folder)
    read_only: bool = False  # the index can be searched but not written here


def sync_budget() -> float:
    """Seconds a search may read files: up to :data:`ANSWER_WITHIN_S` after the process started (Python's
    start and imports count), at least :data:`MIN_SYNC_S`; ``CODESEARCH_SYNC_BUDGET_S`` fixes it instead
    (tests that need whole syncs on a busy machine)."""
    try:
        return float(os.environ[SYNC_BUDGET_ENV])
    except (KeyError, ValueError):
        return max(MIN_SYNC_S, ANSWER_WITHIN_S - process_age_s())


def process_age_s() -> float:
    """Seconds since this process started (Linux; 0 where /proc cannot tell)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def sync_briefly(engine: Engine, budget_s: float | None = None) -> QuickSync:
    """Sync for at most ``budget_s`` (:func:`sync_budget`) if no other process writes this workspace, and
    embed a few changed chunks on the spot (an edit is searchable by meaning at once); the lock is
    released after. A storage problem is reported in ``problem``: the search answers from what is stored."""
    budget_s = sync_budget() if budget_s is None else budget_s
    try:
        if not engine.acquire_writer(wait=False):
            return QuickSync(False, False, 0, 0, inspect(engine.dir), read_only=bool(engine.read_only_reason))
    except IndexUnavailable as exc:
        return QuickSync(False, False, 0, 0, inspect(engine.dir), problem=str(exc))
    try:
        return _sync_holding_lock(engine, budget_s)
    except IndexUnavailable as exc:
        return QuickSync(False, False, 0, 0, Inspection(Liveness.NONE, None), budget_s=budget_s, problem=str(exc))
    finally:
        engine.release_writer()


def _sync_holding_lock(engine: Engine, budget_s: float) -> QuickSync:
    seen = [0, 0]

    def progress(p: Progress) -> None:
        if p.phase == Phase.CHUNK:
            seen[:] = [p.files_done, p.files_total]

    found = inspect(engine.dir, lock_held_here=True)
    cancel = threading.Event()
    timer = threading.Timer(budget_s, cancel.set)
    timer.daemon = True
    timer.start()
    try:
        report = engine.sync(cancel, progress, parallel=False)
    finally:
        timer.cancel()
    embedded = 0 if report.cancelled else _embed_a_few(engine)
    return QuickSync(True, report.cancelled, seen[0], seen[1], found, embedded, budget_s)


def _embed_a_few(engine: Engine) -> int:
    """Embed the changed chunks here when they are few and the model has embedded this index before."""
    if not engine.vectors_stored() or not engine.load_encoder():
        return 0
    pending = engine.store.count_pending(engine.encoder.model_key)
    return engine.embed().embedded if 0 < pending <= INLINE_EMBED_MAX else 0


def hand_over(engine: Engine, quick: QuickSync, pending: int, dense_used: bool) -> list[str]:
    """Start the background indexer when work is left and none runs; the lines that tell the user."""
    lines = _notes(engine, quick)
    if pending:
        lines.append(_pending_line(quick, pending, dense_used))
    lines.extend(_next_step(engine, quick, pending))
    return lines


def _notes(engine: Engine, quick: QuickSync) -> list[str]:
    lines: list[str] = []
    state = quick.found.state
    if quick.synced and quick.found.liveness == Liveness.CRASHED and state is not None:
        lines.append(f"the last background indexer (pid {state.pid}) stopped before finishing; its log: "
                     f"{engine.dir / LOG_FILE}")
    if quick.problem:
        lines.append(f"the index could not be updated: {quick.problem}; answering from what is stored")
    if quick.partial:
        lines.append(f"read {quick.files_done} of {quick.files_total} files so far (answering after "
                     f"{quick.budget_s:.1f} s); the rest is read in the background")
    return lines


def _pending_line(quick: QuickSync, pending: int, dense_used: bool) -> str:
    part = " and the part embedded so far" if dense_used else ""
    line = (f"{pending} chunks are not embedded yet{' (at least)' if quick.partial else ''}: "
            f"these results come from the lexical index{part}")
    if quick.problem:
        return line + " (run `codesearch index` once the problem above is solved)"
    if quick.read_only:
        return line + " (the index is read-only here)"
    if not quick.synced and not quick.found.running:
        return line + " (another codesearch process is embedding them; search again later)"
    return line


def _next_step(engine: Engine, quick: QuickSync, pending: int) -> list[str]:
    state = quick.found.state
    if not quick.synced:
        if quick.found.running and state is not None:
            return [f"the background indexer is working on this workspace ({state.describe()})"]
        if quick.problem or quick.read_only or pending:
            return []
        return ["another codesearch process (an editor's language server?) is indexing this workspace; "
                "answering from what it has stored so far"]
    if not (pending or quick.partial):
        return []
    failed = quick.found.liveness == Liveness.FINISHED and state is not None and state.phase == "failed" \
        and time.time() - state.updated < RETRY_FAILED_S
    if failed and state is not None:
        return [f"the background indexer failed {format_eta(time.time() - state.updated)} ago: "
                f"{state.message} (`codesearch index` shows it; log: {engine.dir / LOG_FILE})"]
    started = start(engine.root, engine.dir, engine.config)
    eta = estimate(None, pending, engine.config)
    return [f"embedding in the background (pid {started.pid}, ETA {format_eta(eta)}): "
            "`codesearch status` shows progress, `codesearch stop` ends it, `--wait` waits for it"]


# the child ---------------------------------------------------------------------------------------------------
class StateWriter:
    """Turns the engine's progress into the state file (at most once a second) and log lines."""

    def __init__(self, index_dir: Path, root: Path) -> None:
        now = time.time()
        self.index_dir = index_dir
        self.state = BackgroundState(pid=os.getpid(), root=str(root), started=now, updated=now, phase="scan")
        self._last = 0.0
        self._last_log = 0.0
        write_state(index_dir, self.state)

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < STATE_EVERY_S and p.phase != Phase.DONE:
            return
        self._last = now
        if p.phase == Phase.EMBED:
            self.update(phase="embed", embedded=p.embedded, to_embed=p.to_embed, rate=p.rate, eta_s=p.eta_s)
        else:
            self.update(phase=p.phase.value, files_done=p.files_done, files_total=p.files_total)
        if now - self._last_log > 30.0:
            self._last_log = now
            log.info("%s", self.state.describe())

    def update(self, **changes: object) -> None:
        self.state = replace(self.state, updated=time.time(), **changes)  # type: ignore[arg-type]
        write_state(self.index_dir, self.state)


def run(root: Path, config: EngineConfig, cancel: threading.Event) -> int:
    """Sync and embed until nothing changes, holding the write lock; 0 done or stopped, 1 failed, 3 busy
    or read-only."""
    engine = Engine(root, config, on_message=lambda m: log.info("%s", m))
    if not engine.acquire_writer(wait=LOCK_WAIT_S):
        _leave(engine, engine.read_only_reason or "another process was indexing this workspace")
        return 3
    writer = StateWriter(engine.dir, engine.root)
    try:
        _index(engine, config, cancel, writer)
        return 0
    except Exception as exc:
        log.error("background indexing failed: %s\n%s", exc, traceback.format_exc())
        writer.update(phase="failed", message=str(exc))
        return 1
    finally:
        with contextlib.suppress(EngineError):  # what could not be saved is caught up on the next load
            engine.close()


def _leave(engine: Engine, why: str) -> None:
    """Nothing to do here: say why in the state file (if it is still this process's) and close."""
    log.info("%s: nothing to do for %s", why, engine.root)
    mine = read_state(engine.dir)
    if mine is not None and mine.pid == os.getpid():  # else it is another indexer's state: leave it
        write_state(engine.dir, replace(mine, phase="stopped", updated=time.time(), message=why))
    engine.close()


def _index(engine: Engine, config: EngineConfig, cancel: threading.Event, writer: StateWriter) -> None:
    started = time.monotonic()
    embedded = 0
    for _ in range(MAX_ROUNDS):
        sync = engine.sync(cancel, writer)
        report = engine.embed(cancel, writer) if not sync.cancelled else None
        embedded += report.embedded if report else 0
        if cancel.is_set() or not engine.stale_files():
            break
    elapsed = time.monotonic() - started
    status = engine.status()
    phase = "stopped" if cancel.is_set() else "done"
    rate = writer.state.rate
    if embedded >= 100 and rate > 0:
        remember_rate(config, rate)
    writer.update(phase=phase, embedded=status.embedded, to_embed=status.chunks, eta_s=None,
                  message=f"{phase} after {elapsed:.0f} s: {embedded} chunks embedded, {status.pending} pending")
    log.info("%s", writer.state.message)


def _opening_failed(root: Path, exc: EngineError) -> int:
    """The index could not even be opened (a full disk, a read-only cache): the state file says so if it can."""
    log.error("background indexing could not start: %s", exc)
    with contextlib.suppress(OSError, EngineError):
        folder = index_location(root)
        mine = read_state(folder)
        if mine is not None and mine.pid == os.getpid():
            write_state(folder, replace(mine, phase="failed", updated=time.time(), message=str(exc)))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codesearch.service.background",
                                     description="Index one workspace in the background (started by codesearch).")
    parser.add_argument("root", type=Path)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--max-file-size", type=int, default=EngineConfig.max_file_size)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{os.getpid()}] %(levelname)s %(message)s")
    config = EngineConfig(model=args.model, device=args.device, exclude=tuple(args.exclude),
                          max_file_size=args.max_file_size)
    cancel = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: saving what is embedded and stopping", signum)
        cancel.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("background indexer for %s (%s)", args.root, " ".join(sys.argv[1:]))
    try:
        return run(args.root, config, cancel)
    except EngineError as exc:
        return _opening_failed(args.root, exc)


if __name__ == "__main__":
    raise SystemExit(main())
