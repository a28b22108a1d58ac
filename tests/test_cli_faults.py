"""The `codesearch` CLI under faults, in a subprocess (seeded fake encoder): clear messages and exit
codes, never a traceback, and nothing stored is lost.

Read-only folders: the tests run as root, and root writes anywhere; the CLI is therefore started
through ``setpriv`` with CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER dropped from its
bounding set, so the kernel applies the folders' permission bits to it as to any user (without
root, the permission bits alone do it). A full disk is a file-size limit (RLIMIT_FSIZE) on the
process: writes past it fail, as on a full disk, without tmpfs.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes import DELAY_ENV, fake_encoder_env
from fixture_repo import make_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CLI = [sys.executable, "-m", "codesearch.cli"]
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all", "--"]


def run(*args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None,
        preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), *CLI, *args], capture_output=True, text=True, timeout=120,
                          env=env or fake_encoder_env(dict(os.environ)), preexec_fn=preexec)


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Aborted!" not in proc.stderr, proc.stderr


def cache_dir() -> Path:
    return Path(os.environ["CODESEARCH_CACHE_DIR"])


def index_dir() -> Path:
    found = [p for p in (cache_dir() / "workspaces").iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to apply")
    return UNPRIVILEGED


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_a_read_only_cache_never_gives_a_traceback(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    env = fake_encoder_env({**os.environ, "CODESEARCH_CACHE_DIR": str(cache)})
    cache.chmod(0o555)
    try:
        for args in (["index", str(root)], ["search", "retry", "--path", str(root)]):
            proc = run(*args, env=env, prefix=unprivileged())
            no_traceback(proc)
            assert proc.returncode == EXIT_STORAGE, proc.stderr
            assert "cannot create the index folder" in proc.stderr and str(cache) in proc.stderr
            assert "Permission denied" in proc.stderr
        status = run("status", str(root), env=env, prefix=unprivileged())
        assert status.returncode == 0 and "not indexed yet" in status.stdout, status.stderr
        clean = run("clean", str(root), env=env, prefix=unprivileged())
        assert clean.returncode == 0 and "nothing to remove" in clean.stderr, clean.stderr
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o755)


def test_an_intact_read_only_index_answers_searches(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    assert run("index", str(root)).returncode == 0
    folder = index_dir()
    before = listing(folder)
    set_writable(cache_dir(), False)
    try:
        search = run("search", "parse_retry_after", "--path", str(root), "--json", prefix=unprivileged())
        no_traceback(search)
        assert search.returncode == 0, search.stderr
        assert json.loads(search.stdout)[0]["symbol"] == "parse_retry_after"
        assert "read-only" in search.stderr
        status = run("status", str(root), "--json", prefix=unprivileged())
        assert status.returncode == 0 and json.loads(status.stdout)["chunks"] > 0, status.stderr
        for args in (["index", str(root)], ["clean", str(root)]):
            proc = run(*args, prefix=unprivileged())
            no_traceback(proc)
            assert proc.returncode == EXIT_STORAGE, (args, proc.stderr)
            assert str(folder) in proc.stderr and ("read-only" in proc.stderr or "Permission denied" in proc.stderr)
        assert listing(folder) == before  # nothing renamed, nothing added
    finally:
        set_writable(cache_dir(), True)


def file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_keeps_the_index_and_the_cli_recovers(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    assert run("index", str(root)).returncode == 0
    folder = index_dir()
    vectors = sqlite3.connect(folder / "index.db").execute("SELECT count(*) FROM vectors").fetchone()[0]
    (root / "src" / "fresh.py").write_text("".join(f"def freshly_added_{i}(value):\n    return value + {i}\n\n\n"
                                                   for i in range(30)))
    for _ in range(2):  # a later command adds nothing either
        proc = run("index", str(root), preexec=file_size_limit(16 << 10))
        no_traceback(proc)
        assert proc.returncode == EXIT_STORAGE, proc.stderr
        assert str(folder) in proc.stderr and ("disk I/O error" in proc.stderr or "full" in proc.stderr)
        assert not [p for p in folder.iterdir() if ".corrupt-" in p.name]
    search = run("search", "parse_retry_after", "--path", str(root), "--json", preexec=file_size_limit(16 << 10))
    no_traceback(search)
    assert search.returncode == 0 and json.loads(search.stdout)[0]["symbol"] == "parse_retry_after", search.stderr
    assert "could not be updated" in search.stderr or "read-only" in search.stderr  # failed mid-way, or at open

    healed = run("index", str(root))
    assert healed.returncode == 0, healed.stderr
    assert "embedded 30" in healed.stderr and "moved aside" not in healed.stderr
    after = sqlite3.connect(folder / "index.db").execute("SELECT count(*) FROM vectors").fetchone()[0]
    assert after == vectors + 30


def test_ctrl_c_says_what_was_kept_and_the_next_run_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for f in range(40):
        (root / f"mod_{f}.py").write_text("".join(f"def handler_{f}_{i}(event):\n    return event.get('k{i}')\n\n\n"
                                                  for i in range(16)))
    env = fake_encoder_env({**os.environ, DELAY_ENV: "0.3"})
    proc = subprocess.Popen([*CLI, "index", str(root), "--quiet"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    embedded = 0
    while embedded == 0:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
        try:
            db = sqlite3.connect(f"file:{index_dir() / 'index.db'}?mode=ro", uri=True)
            embedded = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
            db.close()
        except (sqlite3.Error, AssertionError, FileNotFoundError):
            continue
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr, stderr
    assert "interrupted:" in stderr and "640 chunks" in stderr and f"codesearch index {root}" in stderr
    db = sqlite3.connect(index_dir() / "index.db")
    kept = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    db.close()
    assert 0 < kept < 640
    again = run("index", str(root))
    assert again.returncode == 0 and f"embedded {640 - kept}" in again.stderr, (kept, again.stderr)


def test_status_and_clean_of_a_workspace_never_indexed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    status = run("status", str(root), "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["indexed"] is False
    assert not (cache_dir() / "workspaces").exists() or not list((cache_dir() / "workspaces").iterdir())
    assert run("index", str(root)).returncode == 0
    assert json.loads(run("status", str(root), "--json").stdout)["indexed"] is True
    first = run("clean", str(root))
    assert first.returncode == 0 and "removed" in first.stderr
    second = run("clean", str(root))
    assert second.returncode == 0 and "nothing to remove" in second.stderr and "removed" not in second.stderr


def test_the_hint_while_another_process_owns_the_index(tmp_path: Path) -> None:
    from codesearch.engine import Engine
    from conftest import FakeEncoder

    root = make_repo(tmp_path / "repo")
    owner = Engine(root, encoder=FakeEncoder())
    assert owner.acquire_writer(wait=False)
    owner.sync()  # chunks stored, none embedded yet
    try:
        proc = run("search", "parse retry after", "--path", str(root))
        no_traceback(proc)
        assert proc.returncode == 0, proc.stderr
        assert "not embedded yet" in proc.stderr and "another codesearch process is embedding them" in proc.stderr
        assert "run `codesearch index` to finish" not in proc.stderr
    finally:
        owner.close()


def test_odd_files_and_a_lock_that_is_a_folder(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    os.mkfifo(root / "pipe.py")
    proc = run("index", str(root))
    assert proc.returncode == 0 and "1 special-file" in proc.stderr, proc.stderr
    lock = index_dir() / "write.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    proc = run("index", str(root))
    no_traceback(proc)
    assert proc.returncode == EXIT_STORAGE and "write.lock is a folder" in proc.stderr, proc.stderr
    query = " ".join(f"word{i}" for i in range(2000))
    proc = run("search", query, "--path", str(root))
    no_traceback(proc)
    assert proc.returncode == 0 and "the query was cut to its first" in proc.stderr, proc.stderr
