"""Ranking as a user meets it, through the real `codesearch` CLI (fake encoder, in a subprocess):
single-word class names, a stub beside its implementation, a long definition, a partly embedded
index, and an unknown --lang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakes import fake_encoder_env

CLI = [sys.executable, "-m", "codesearch.cli"]

LONG_BODY = "\n".join(f"    step_{i} = operand_{i} * {i}  # contraction step {i}" for i in range(150))

FILES = {
    "pkg/console.py": '''class Console:
    """Writes rich output to a terminal."""

    def __init__(self, width: int = 80):
        self.width = width

    def print(self, *objects):
        for obj in objects:
            self.write(str(obj))
''',
    "pkg/progress.py": '''class Progress:
    """Tracks tasks and renders progress bars on a console."""

    def __init__(self, console=None):
        self._console = console

    @property
    def console(self):
        """The console this progress display writes to."""
        return self._console

    def console_width(self):
        return self._console.width
''',
    "pkg/text.py": '''class Text:
    """Styled text."""

    def __init__(self, plain: str = ""):
        self.plain = plain


def text(value) -> Text:
    """Make text from a value: text text text."""
    return Text(str(value))
''',
    "pkg/einsum.py": f'''def einsum(subscripts, *operands):
    """Evaluate the Einstein summation convention on the operands."""
{LONG_BODY}
    unique_marker_at_the_end = finish_contraction(operands)
    return unique_marker_at_the_end
''',
    "pkg/einsum.pyi": '''from typing import overload

@overload
def einsum(subscripts: str, a: int) -> int: ...
@overload
def einsum(subscripts: str, a: float) -> float: ...
''',
    "pkg/compare.py": '''def elements_equal(left, right):
    """Check that each element of left is equal to the element of right, element by element."""
    return all(element == other for element, other in zip(left, right))


def equal_within(value, other, limit):
    """Whether value is equal to other within a limit."""
    return abs(value - other) <= limit
''',
    "tests/test_console.py": '''from pkg.console import Console


def test_console_prints():
    console = Console()
    console.print("console")
''',
}

LATE_FILE = ("pkg/approx.py", '''def allclose(a, b, rtol=1e-05, atol=1e-08):
    """Returns True if two arrays are element-wise equal within a tolerance."""
    return all(abs(x - y) <= atol + rtol * abs(y) for x, y in zip(a, b))
''')


def run(root: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300, cwd=root)
    if check and proc.returncode != 0:
        raise AssertionError(f"codesearch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def search(root: Path, env: dict[str, str], query: str, *extra: str) -> list[dict[str, Any]]:
    return json.loads(run(root, env, "search", query, "--path", str(root), "--json", "-k", "10", *extra).stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("ranking") / "repo"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    env = fake_encoder_env({**os.environ, "CODESEARCH_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))})
    run(root, env, "index", str(root), "--quiet")
    return root, env


def test_single_word_class_names_find_their_class(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    for query, path in (("Console", "pkg/console.py"), ("Text", "pkg/text.py"), ("Progress", "pkg/progress.py")):
        top = search(root, env, query)[0]
        assert (top["path"], top["symbol"], top["kind"]) == (path, query, "class"), query
    assert search(root, env, "pkg.console.Console")[0]["path"] == "pkg/console.py"
    top = search(root, env, "Console.print")[0]
    assert (top["container"], top["symbol"]) == ("Console", "print")


def test_the_implementation_ranks_above_its_stub(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    hits = search(root, env, "einsum")
    assert hits[0]["path"] == "pkg/einsum.py", [(h["path"], h["score"], h["sources"]) for h in hits]
    assert any(h["path"] == "pkg/einsum.pyi" for h in hits)  # still found, lower
    assert search(root, env, "einsum overload stub")[0]["path"] == "pkg/einsum.pyi"


def test_a_hit_in_a_long_definition_reports_where_it_starts(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    hit = next(h for h in search(root, env, "unique_marker_at_the_end finish_contraction")
               if h["path"] == "pkg/einsum.py")
    assert hit["start_line"] == 1 and hit["end_line"] >= 153
    assert hit["match_start_line"] > 1  # the window that matched is further down
    assert hit["match_start_line"] <= hit["match_end_line"] <= hit["end_line"]
    lines = [line.strip() for line in (root / "pkg/einsum.py").read_text().splitlines()]
    assert hit["snippet"] in lines[hit["start_line"] - 1:hit["end_line"]]  # the snippet is within the location


def test_a_partly_embedded_index_still_finds_keyword_matches(repo: tuple[Path, dict[str, str]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from codesearch.engine import Engine
    from fakes import FakeEncoder

    root, env = repo
    rel, text = LATE_FILE
    (root / rel).write_text(text)
    # Another process keeps the index: it has synced the new file but not embedded it yet. (A search
    # that syncs the file itself embeds so few changed chunks on the spot.)
    monkeypatch.setenv("CODESEARCH_CACHE_DIR", env["CODESEARCH_CACHE_DIR"])
    owner = Engine(root, encoder=FakeEncoder())
    try:
        assert owner.acquire_writer(wait=False)
        owner.sync()
        proc = run(root, env, "search", "element-wise equal within a tolerance", "--path", str(root), "--json")
        hits = json.loads(proc.stdout)
        assert hits[0]["symbol"] == "allclose", hits
        assert "dense" not in hits[0]["sources"]
        assert "not embedded yet" in proc.stderr
    finally:
        owner.close()
        (root / rel).unlink()


def test_an_unknown_language_is_a_usage_error(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    proc = run(root, env, "search", "console", "--path", str(root), "--lang", "pyhton", check=False)
    assert proc.returncode == 2
    assert "pyhton" in proc.stderr and "python" in proc.stderr
    assert search(root, env, "console", "--lang", "Python")  # known names, in any case, still work
