"""The rg baselines of ``bench/mcp_tokens.py``, whose figures go into docs/mcp.md."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.skipif(shutil.which("rg") is None, reason="needs ripgrep")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_mcp_tokens", BENCH / "mcp_tokens.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_keywords(bench: ModuleType) -> None:
    ident = bench.Query("r/ident/1", "ident", "FishComplete.get_completion_args", "a.py", 1, 2)
    assert bench.keywords(ident) == ["get_completion_args"]
    doc = bench.Query("r/doc/1", "doc", "Return the retry delay of the given attempt, with jitter.", "a.py", 1, 2)
    assert bench.keywords(doc) == ["retry", "delay", "attempt", "jitter"]


def test_rg_baselines_read_up_to_the_budget(bench: ModuleType, tmp_path: Path) -> None:
    tree = tmp_path / "repo" / "tree"
    tree.mkdir(parents=True)
    (tree / "big.py").write_text("".join(f"# jitter {i}\n" for i in range(400)))  # ~1,000 tokens, ranked first
    (tree / "target.py").write_text("\n" * 30 + "def backoff(attempt):\n    return jitter(attempt)\n")
    q = bench.Query("r/doc/1", "doc", "jitter", "target.py", 31, 32)
    lines, read = bench.Row("rg -n"), bench.Row("rg + read")
    bench.rg_lines(tree, q, ["jitter"], 2000, lines)
    bench.rg_read(tree, q, ["jitter"], 2000, read)
    assert lines.found["doc"] == [False]  # 400 lines of big.py come first and fill the budget
    assert read.found["doc"] == [True]  # big.py (about 1,000 tokens) then target.py fit in 2,000
    assert read.tokens[0] == bench.estimate_tokens("big.py\ntarget.py\n" + (tree / "big.py").read_text()
                                                   + (tree / "target.py").read_text())
    small = bench.Row("rg + read")
    bench.rg_read(tree, q, ["jitter"], 500, small)
    assert small.found["doc"] == [False]
    big_lines = bench.Row("rg -n")
    bench.rg_lines(tree, q, ["jitter"], 20000, big_lines)
    assert big_lines.found["doc"] == [True]
