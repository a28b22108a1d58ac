"""The background indexer: a search answers at once and hands over; the lock, stop, a crash and a restart.

The CLI and the detached indexer run as real processes with the fake encoder, slowed down by
``CODESEARCH_TEST_ENCODER_DELAY`` (seconds per batch of 64 chunks) so there is time to look at them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from codesearch.engine import Engine, EngineConfig
from codesearch.service import background
from codesearch.service.background import BackgroundState, Liveness
from fakes import DELAY_ENV, fake_encoder_env
from fixture_repo import make_repo

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "codesearch.cli"]
DELAY = "1.0"
FUNCTIONS_PER_FILE = 16


def many_functions(root: Path, files: int = 40) -> Path:
    """A repository of ``files`` × 16 small functions (≈ 10 batches of the fake encoder)."""
    for f in range(files):
        body = "".join(f"def compute_{f}_{i}(value):\n    \"\"\"Scale value {i} in module {f}.\"\"\"\n"
                       f"    return value * {i} + {f}\n\n\n" for i in range(FUNCTIONS_PER_FILE))
        path = root / f"pkg{f % 4}" / f"module_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return root


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    out = fake_encoder_env(dict(os.environ))
    out[DELAY_ENV] = DELAY
    out[background.SYNC_BUDGET_ENV] = "120"  # whole syncs even on a busy machine (the budget is tested below)
    return out


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"codesearch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def status(env: dict[str, str], root: Path) -> dict[str, Any]:
    return json.loads(cli(env, "status", str(root), "--json").stdout)  # type: ignore[no-any-return]


def wait_for(condition: Callable[[], bool], timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def started_pid(stderr: str) -> int:
    match = re.search(r"embedding in the background \(pid (\d+)", stderr)
    assert match, stderr
    return int(match.group(1))


def index_dir(root: Path) -> Path:
    from codesearch.paths import workspace_dir

    return workspace_dir(root)


def test_search_answers_at_once_and_leaves_one_indexer(tmp_path: Path, env: dict[str, str]) -> None:
    root = many_functions(make_repo(tmp_path / "repo"))
    proc = cli(env, "search", "parse_retry_after", "--path", str(root), "--json")
    assert json.loads(proc.stdout)[0]["symbol"] == "parse_retry_after"  # answered from the lexical index
    assert "not embedded yet" in proc.stderr
    pid = started_pid(proc.stderr)
    state = background.read_state(index_dir(root))
    assert state is not None and state.pid == pid and not state.final

    # while it runs: a second search starts no second indexer, `index` is refused, status shows it
    again = cli(env, "search", "compute_3_4", "--path", str(root), "--json")
    assert json.loads(again.stdout)[0]["symbol"] == "compute_3_4"
    assert "background indexer is working" in again.stderr and "embedding in the background" not in again.stderr
    busy = cli(env, "index", str(root), check=False)
    assert busy.returncode == 5 and "background indexer" in busy.stderr and "codesearch stop" in busy.stderr
    shown = status(env, root)
    assert shown["background"]["state"] == "running" and shown["background"]["pid"] == pid

    wait_for(lambda: not background.pid_alive(pid), what="the background indexer to finish")
    final = status(env, root)
    assert final["pending"] == 0 and final["embedded"] == final["chunks"] > 600
    assert final["background"]["state"] == "finished" and final["background"]["phase"] == "done"
    assert background.lock_free(index_dir(root))
    assert "done after" in (index_dir(root) / background.LOG_FILE).read_text()
    semantic = cli(env, "search", "scale value in module", "--path", str(root))
    assert "answered by the semantic + lexical index" in semantic.stderr
    assert "not embedded" not in semantic.stderr and "background" not in semantic.stderr  # nothing left to do


def test_stop_keeps_what_was_embedded_and_a_search_resumes(tmp_path: Path, env: dict[str, str]) -> None:
    root = many_functions(tmp_path / "repo")
    pid = started_pid(cli(env, "search", "compute_1_1", "--path", str(root)).stderr)
    folder = index_dir(root)

    def embedding() -> bool:
        state = background.read_state(folder)
        return state is not None and state.phase == "embed" and state.embedded > 0

    wait_for(embedding, what="the first embedded batches")
    proc = cli(env, "stop", str(root))
    assert "stopped the background indexer" in proc.stderr
    assert not background.pid_alive(pid) and background.lock_free(folder)
    state = background.read_state(folder)
    assert state is not None and state.phase == "stopped"
    shown = status(env, root)
    assert 0 < shown["embedded"] < shown["chunks"]  # what it had embedded was saved
    assert "no background indexer is running" in cli(env, "stop", str(root)).stderr

    resumed = started_pid(cli(env, "search", "compute_1_1", "--path", str(root)).stderr)
    assert resumed != pid
    wait_for(lambda: not background.pid_alive(resumed), what="the resumed indexer")
    assert status(env, root)["pending"] == 0


def test_a_crashed_indexer_is_detected_and_replaced(tmp_path: Path, env: dict[str, str]) -> None:
    root = many_functions(tmp_path / "repo")
    pid = started_pid(cli(env, "search", "compute_2_2", "--path", str(root)).stderr)
    folder = index_dir(root)
    wait_for(lambda: (background.read_state(folder) or BackgroundState(0, "", 0, 0, "")).phase == "embed",
             what="embedding to start")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not background.pid_alive(pid), what="the kill")
    assert background.inspect(folder).liveness == Liveness.CRASHED  # its state file says embedding, pid is gone
    assert "stopped before finishing" in cli(env, "status", str(root)).stdout

    proc = cli(env, "search", "compute_2_2", "--path", str(root), "--json")
    assert json.loads(proc.stdout)[0]["symbol"] == "compute_2_2"
    assert f"last background indexer (pid {pid}) stopped before finishing" in proc.stderr
    replacement = started_pid(proc.stderr)
    wait_for(lambda: not background.pid_alive(replacement), what="the replacement indexer")
    final = status(env, root)
    assert final["pending"] == 0 and final["background"]["phase"] == "done"


def test_search_wait_embeds_everything_first(tmp_path: Path, env: dict[str, str]) -> None:
    env[DELAY_ENV] = "0"
    root = many_functions(tmp_path / "repo", files=8)
    proc = cli(env, "search", "scale value", "--path", str(root), "--wait", "--json")
    assert json.loads(proc.stdout)
    assert "not embedded" not in proc.stderr and "background" not in proc.stderr
    assert background.read_state(index_dir(root)) is None
    assert status(env, root)["pending"] == 0


def test_index_says_searchable_before_embedding(tmp_path: Path, env: dict[str, str]) -> None:
    env[DELAY_ENV] = "0.05"
    root = many_functions(tmp_path / "repo", files=8)
    proc = cli(env, "index", str(root))
    lines = proc.stderr.splitlines()
    searchable = next(i for i, line in enumerate(lines) if line.startswith("searchable now"))
    assert "128 chunks in the lexical index" in lines[searchable] and "embedding 128 chunks" in lines[searchable]
    assert any(line.startswith("indexed 8 files") for line in lines[searchable + 1:])


def test_cuda_asked_for_but_unusable_says_how_to_fix_it(tmp_path: Path, env: dict[str, str]) -> None:
    from codesearch.embed.encoder import CUDA, choose_provider

    if choose_provider("auto").provider == CUDA:
        pytest.skip("CUDA works on this machine")
    root = make_repo(tmp_path / "repo")
    for args in (["search", "retry", "--path", str(root), "--device", "cuda"],
                 ["index", str(root), "--device", "cuda"]):
        proc = cli(env, *args, check=False)
        assert proc.returncode == 4, proc.stderr
        assert "CUDA was requested but" in proc.stderr and "onnxruntime-gpu[cuda,cudnn]" in proc.stderr
        assert "docs/gpu.md" in proc.stderr and "Traceback" not in proc.stderr
    assert background.read_state(index_dir(root)) is None  # no indexer was left to fail in the background


# in-process pieces -----------------------------------------------------------------------------------------
def test_a_search_reads_files_for_a_bounded_time_then_the_indexer_reads_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in fake_encoder_env(dict(os.environ)).items():
        monkeypatch.setenv(key, value)  # the child started below runs the fake encoder
    root = many_functions(tmp_path / "repo", files=300)
    engine = Engine(root, EngineConfig(device="cpu"))
    quick = background.sync_briefly(engine, budget_s=0.0)
    assert quick.synced and quick.partial and engine.status().files < 300
    lines = background.hand_over(engine, quick, engine.status().chunks, dense_used=False)
    engine.close()
    assert any(line.startswith("read ") and "the rest is read in the background" in line for line in lines)
    pid = started_pid("\n".join(lines))
    wait_for(lambda: not background.pid_alive(pid), what="the background indexer")
    engine = Engine(root, EngineConfig(device="cpu"))
    assert engine.status().files == 300 and engine.status().pending == 0
    engine.close()


def test_inspect_tells_running_finished_and_crashed_apart(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    folder.mkdir()
    assert background.inspect(folder).liveness == Liveness.NONE
    now = time.time()
    background.write_state(folder, BackgroundState(pid=os.getpid(), root="r", started=now, updated=now,
                                                   phase="embed"))
    # this pid is alive, but it is not a background indexer (a reused pid): not running
    assert background.inspect(folder).liveness == Liveness.CRASHED
    background.write_state(folder, BackgroundState(pid=2**22 + 12345, root="r", started=now, updated=now,
                                                   phase="embed"))
    assert background.inspect(folder).liveness == Liveness.CRASHED
    background.write_state(folder, BackgroundState(pid=2**22 + 12345, root="r", started=now, updated=now,
                                                   phase="done", message="done"))
    assert background.inspect(folder).liveness == Liveness.FINISHED
    (folder / background.STATE_FILE).write_text("{broken")
    assert background.inspect(folder).liveness == Liveness.NONE


def test_eta_from_the_running_rate_or_a_remembered_one(tmp_path: Path) -> None:
    config = EngineConfig(model=str(tmp_path / "some-model"), device="cpu")
    assert background.estimate(None, 1000, config) is None
    background.remember_rate(config, 50.0)
    assert background.estimate(None, 1000, config) == pytest.approx(20.0)
    state = BackgroundState(pid=1, root="r", started=0, updated=0, phase="embed", rate=10.0)
    assert background.estimate(state, 1000, config) == pytest.approx(100.0)
    assert background.format_eta(None) == "measuring" and background.format_eta(4000) == "67 min"


def test_a_search_reads_files_until_about_2_5_s_after_its_process_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(background.SYNC_BUDGET_ENV, raising=False)
    assert 0 < background.process_age_s() < 3600  # this test process started a while ago
    monkeypatch.setattr(background, "process_age_s", lambda: 0.4)
    assert background.sync_budget() == pytest.approx(background.ANSWER_WITHIN_S - 0.4)
    monkeypatch.setattr(background, "process_age_s", lambda: 10.0)  # a slow start still reads a little
    assert background.sync_budget() == background.MIN_SYNC_S
    monkeypatch.setenv(background.SYNC_BUDGET_ENV, "7")
    assert background.sync_budget() == 7.0
