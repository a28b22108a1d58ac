"""What the background indexer of a workspace is doing, as the files it leaves say.

The indexer (:mod:`.background`) keeps ``background.json`` in the index folder up to date; a search,
``codesearch status`` and ``codesearch stop`` read it here and tell a live indexer from one that died
without finishing (its pid is gone, or the write lock is free). Embedding rates are remembered across
workspaces (``embed-rates.json`` in the cache) for a first ETA.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from filelock import FileLock, Timeout

from ..engine import EngineConfig
from ..paths import cache_root

STATE_FILE = "background.json"
LOG_FILE = "background.log"
FINAL = ("done", "stopped", "failed")


@dataclass(frozen=True)
class BackgroundState:
    pid: int
    root: str
    started: float
    updated: float
    phase: str  # starting | scan | chunk | embed | done | stopped | failed
    files_done: int = 0
    files_total: int = 0
    embedded: int = 0
    to_embed: int = 0
    rate: float = 0.0  # chunks embedded per second, recent
    eta_s: float | None = None
    message: str = ""

    @property
    def final(self) -> bool:
        return self.phase in FINAL

    def describe(self) -> str:
        if self.phase in ("starting", "scan", "chunk"):
            files = f" ({self.files_done}/{self.files_total} files)" if self.files_total else ""
            return f"pid {self.pid}, reading files{files}"
        rate = f", {self.rate:.1f} chunks/s" if self.rate > 0 else ""
        return f"pid {self.pid}, embedded {self.embedded}/{self.to_embed}{rate}, ETA {format_eta(self.eta_s)}"


class Liveness(str, Enum):
    NONE = "none"  # never ran here
    RUNNING = "running"
    FINISHED = "finished"  # done, stopped or failed, and said so
    CRASHED = "crashed"  # its state says it is working, but it is gone


@dataclass(frozen=True)
class Inspection:
    liveness: Liveness
    state: BackgroundState | None

    @property
    def running(self) -> bool:
        return self.liveness == Liveness.RUNNING


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "measuring"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# the state file -----------------------------------------------------------------------------------------
def state_path(index_dir: Path) -> Path:
    return Path(index_dir) / STATE_FILE


def read_state(index_dir: Path) -> BackgroundState | None:
    try:
        data = json.loads(state_path(index_dir).read_text())
        return BackgroundState(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_state(index_dir: Path, state: BackgroundState) -> None:
    path = state_path(index_dir)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: a reused pid runs something else
        with contextlib.suppress(OSError):
            return b"codesearch.service.background" in cmdline.read_bytes()
    return True


def lock_free(index_dir: Path) -> bool:
    """Whether no process holds the workspace write lock (tried, and let go at once)."""
    lock = FileLock(str(Path(index_dir) / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):  # held, or cannot be opened here (read-only folder): not known to be free
        return False
    lock.release()
    return True


def inspect(index_dir: Path, lock_held_here: bool = False) -> Inspection:
    """What became of this workspace's background indexer. ``lock_held_here``: the caller holds the
    write lock, so no background indexer can be running."""
    state = read_state(index_dir)
    if state is None:
        return Inspection(Liveness.NONE, None)
    if state.final:
        return Inspection(Liveness.FINISHED, state)
    if not lock_held_here and pid_alive(state.pid) and (state.phase == "starting" or not lock_free(index_dir)):
        return Inspection(Liveness.RUNNING, state)
    return Inspection(Liveness.CRASHED, state)


# rates remembered across workspaces, for a first ETA ------------------------------------------------------
def _rates_path() -> Path:
    return cache_root() / "embed-rates.json"


def rate_key(config: EngineConfig) -> str:
    return f"{config.model or 'default'}|{config.device}"


def remembered_rate(config: EngineConfig) -> float | None:
    try:
        value = json.loads(_rates_path().read_text()).get(rate_key(config))
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def remember_rate(config: EngineConfig, rate: float) -> None:
    path = _rates_path()
    try:
        rates = json.loads(path.read_text())
        if not isinstance(rates, dict):
            rates = {}
    except (OSError, ValueError):
        rates = {}
    rates[rate_key(config)] = round(rate, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rates))
    os.replace(tmp, path)


def estimate(state: BackgroundState | None, pending: int, config: EngineConfig) -> float | None:
    """Seconds to embed ``pending`` chunks: the running indexer's rate, else one remembered from before."""
    rate = state.rate if state is not None and state.rate > 0 else remembered_rate(config)
    return pending / rate if rate else None
