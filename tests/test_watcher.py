"""Folder watching: debounce and coalescing, ignore-rule filtering, folder moves, bursts."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from codesearch.service.watcher import Batch, Coalescer, FolderWatcher, PathFilter
from codesearch.walk.walker import WalkOptions
from fixture_repo import make_repo

pytestmark = pytest.mark.timeout(60)


class Batches:
    def __init__(self) -> None:
        self.items: list[Batch] = []
        self.lock = threading.Lock()

    def __call__(self, batch: Batch) -> None:
        with self.lock:
            self.items.append(batch)

    @property
    def paths(self) -> set[str]:
        with self.lock:
            return set().union(*(b.paths for b in self.items)) if self.items else set()

    def wait(self, predicate: object, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if callable(predicate) and predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; batches so far: {self.items}")


def test_coalescer_folds_a_burst_into_one_batch() -> None:
    got = Batches()
    coalescer = Coalescer(got, quiet_s=0.2, max_delay_s=5.0)
    try:
        for i in range(5000):
            coalescer.add([f"src/file_{i % 1000}.py"])
        got.wait(lambda: got.items)
        time.sleep(0.4)
        assert len(got.items) == 1
        assert len(got.items[0].paths) == 1000 and got.items[0].events == 5000
    finally:
        coalescer.close()


def test_coalescer_flushes_within_max_delay_under_constant_changes() -> None:
    got = Batches()
    coalescer = Coalescer(got, quiet_s=0.3, max_delay_s=0.6)
    try:
        started = time.monotonic()
        while not got.items and time.monotonic() - started < 5:
            coalescer.add(["busy.py"])
            time.sleep(0.05)  # never quiet for 0.3 s
        assert got.items and time.monotonic() - started < 1.5
    finally:
        coalescer.close()


def test_coalescer_turns_huge_bursts_into_a_full_resync() -> None:
    got = Batches()
    coalescer = Coalescer(got, quiet_s=0.1, full_threshold=100)
    try:
        coalescer.add(f"f{i}.py" for i in range(500))
        got.wait(lambda: got.items)
        assert got.items[0].full and not got.items[0].paths
    finally:
        coalescer.close()


def test_path_filter_uses_the_engine_ignore_rules(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    rules = PathFilter(root, WalkOptions(exclude=("docs/**",)))
    assert rules.wanted("src/http/retry.py")
    assert not rules.wanted("build/generated.py")  # .gitignore'd
    assert not rules.wanted("debug.log")
    assert not rules.wanted(".git/index")
    assert not rules.wanted("node_modules/x/index.js")
    assert not rules.wanted("docs/guide.py")  # the caller's exclude globs
    assert rules.wanted(".gitignore") and rules.wanted("sub/.gitignore") and rules.wanted(".git/info/exclude")
    (root / ".gitignore").write_text("build/\n*.log\nsrc/http/\n")
    assert rules.wanted(".gitignore")  # an ignore file changed: rules are read again
    assert not rules.wanted("src/http/retry.py")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Batches, FolderWatcher]]:
    root = make_repo(tmp_path / "repo")
    got = Batches()
    watcher = FolderWatcher(root, got, quiet_s=0.2, max_delay_s=2.0)
    watcher.start()
    yield root, got, watcher
    watcher.stop()


def test_watcher_reports_changes_and_drops_ignored_paths(watched: tuple[Path, Batches, FolderWatcher]) -> None:
    root, got, _ = watched
    (root / "src" / "http" / "cookies.py").write_text("def parse_cookie():\n    pass\n")
    (root / "build" / "out.py").write_text("x = 1\n")
    (root / "debug.log").write_text("more noise\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "web" / "src" / "format.js").unlink()
    (root / "src" / "http" / "pool.py").rename(root / "src" / "http" / "pooling.py")
    want = {"src/http/cookies.py", "web/src/format.js", "src/http/pool.py", "src/http/pooling.py"}
    got.wait(lambda: want <= got.paths)
    time.sleep(0.3)
    assert got.paths == want
    assert not any(b.full for b in got.items)


def test_watcher_coalesces_a_checkout_sized_burst(watched: tuple[Path, Batches, FolderWatcher]) -> None:
    root, got, _ = watched
    folder = root / "generated_by_checkout"
    folder.mkdir()
    for i in range(1500):
        (folder / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    got.wait(lambda: len(got.paths) >= 1500 or any(b.full for b in got.items))
    time.sleep(0.5)
    assert len(got.items) <= 3, [len(b.paths) for b in got.items]  # not one batch per file
    assert sum(b.events for b in got.items) >= 1500


def test_watcher_gitignore_change_and_folder_removal(watched: tuple[Path, Batches, FolderWatcher]) -> None:
    root, got, _ = watched
    (root / ".gitignore").write_text("build/\n*.log\nweb/\n")
    got.wait(lambda: ".gitignore" in got.paths)
    shutil.move(str(root / "crates"), str(root.parent / "moved-away"))  # no per-file events for this
    got.wait(lambda: any(b.full for b in got.items))
    count = len(got.items)
    (root / "web" / "src" / "new.ts").write_text("export const x = 1;\n")  # ignored from now on
    time.sleep(0.6)
    assert len(got.items) == count
