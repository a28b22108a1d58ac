"""The MCP server's parts without a subprocess: token budget, related code, roots and paths, imports."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from codesearch.engine import Engine, EngineConfig, EngineError
from codesearch.index.store import ChunkRow
from codesearch.mcp.render import CHARS_PER_TOKEN, Item, estimate_tokens, render, snippet_lines
from codesearch.mcp.workspace import ArgumentError, Workspace, parse_languages
from codesearch.query.merge import merge_hits
from codesearch.query.related import locate_chunk
from codesearch.types import Chunk, SearchHit
from conftest import FakeEncoder
from fixture_repo import FILES, make_repo


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


def test_snippet_lines_dedent_skip_blanks_and_cut() -> None:
    text = "    def f():\n\n        return 1\n" + "        x = '" + "y" * 300 + "'\n"
    assert snippet_lines(text, 2) == ["def f():", "    return 1"]
    assert snippet_lines(text, 0) == []
    long = snippet_lines(text, 5)[-1]
    assert len(long) == 160 and long.endswith("…")


def test_render_keeps_everything_that_fits() -> None:
    items = [Item("a.py:1-2 f [function] 0.90", ["def f():", "    return 1"]),
             Item("b.py:3-4 g [function] 0.50", ["def g():"])]
    out = render(["2 results"], items, 1000)
    assert out.text == "2 results\na.py:1-2 f [function] 0.90\n  def f():\n      return 1\n" \
                       "b.py:3-4 g [function] 0.50\n  def g():"
    assert out.shown == 2 and out.kept_lines == [2, 1] and not out.truncated
    assert out.tokens == estimate_tokens(out.text)
    assert out.snippet(0, items[0]) == "def f():\n    return 1"


def test_render_budget_cuts_snippets_then_results() -> None:
    items = [Item(f"file{i}.py:1-9 name{i} [function] 0.5", [f"line {j} of {i}" for j in range(8)])
             for i in range(10)]
    headers_only = render(["10 results"], items, 120)
    assert headers_only.shown == 10 and headers_only.truncated and headers_only.tokens <= 120
    few = render(["10 results"], items, 40)
    assert 0 < few.shown < 10 and few.truncated and few.tokens <= 40
    assert few.text.endswith(f"({10 - few.shown} more results left out by the token budget: raise max_tokens "
                             "to see them)")
    # snippets are spent best hit first
    some = render(["10 results"], items, 200)
    assert some.kept_lines[0] == 8 and some.kept_lines[-1] < 8


def test_render_never_exceeds_the_budget() -> None:
    rng = random.Random(7)
    for _ in range(300):
        items = [Item("h" * rng.randint(10, 80), ["x" * rng.randint(1, 120) for _ in range(rng.randint(0, 12))])
                 for _ in range(rng.randint(0, 15))]
        budget = rng.randint(30, 800)
        out = render(["head line"], items, budget)
        assert len(out.text) <= budget * CHARS_PER_TOKEN or out.shown == 0, (budget, out.text)
        assert out.tokens == estimate_tokens(out.text)


def _row(cid: int, kind: str, symbol: str, start: int, end: int, container: str = "", part: int = 0) -> ChunkRow:
    chunk = Chunk(path="a.py", language="python", kind=kind, symbol=symbol, container=container,
                  start_line=start, end_line=end, text="", part=part)
    return ChunkRow(cid, chunk, f"h{cid}", 0)


def test_locate_chunk() -> None:
    rows = [_row(1, "module", "", 1, 3), _row(2, "class", "Pool", 5, 30), _row(3, "method", "acquire", 8, 14, "Pool"),
            _row(4, "method", "release", 16, 30, "Pool"), _row(5, "function", "build", 32, 90, part=1),
            _row(6, "function", "build", 85, 140, part=2)]
    assert locate_chunk(rows, line=10).chunk.symbol == "acquire"  # type: ignore[union-attr]
    assert locate_chunk(rows, line=6).chunk.symbol == "Pool"  # type: ignore[union-attr]
    assert locate_chunk(rows, line=2).chunk.kind == "module"  # type: ignore[union-attr]
    assert locate_chunk(rows, symbol="Pool.release").chunk.symbol == "release"  # type: ignore[union-attr]
    assert locate_chunk(rows, symbol="ACQUIRE").chunk.symbol == "acquire"  # type: ignore[union-attr]
    assert locate_chunk(rows, symbol="build").chunk.part == 1  # type: ignore[union-attr]
    assert locate_chunk(rows, line=120, symbol="build").chunk.part == 2  # type: ignore[union-attr]
    assert locate_chunk(rows, line=40, symbol="acquire") is None
    assert locate_chunk(rows, line=500) is None
    assert locate_chunk([], symbol="x") is None


def test_engine_chunk_at_and_similar(tmp_path: Path) -> None:
    files = {**FILES, "src/jobs/backoff.py": (
        "def compute_backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:\n"
        "    \"\"\"Exponential backoff with random jitter for a job retry attempt.\"\"\"\n"
        "    return random.uniform(0, min(cap, base * 2 ** attempt))\n")}
    root = make_repo(tmp_path / "repo", files)
    engine = Engine(root, encoder=FakeEncoder())
    try:
        engine.sync()
        row = engine.chunk_at("src/http/retry.py", symbol="backoff_delay")
        assert row is not None and row.chunk.symbol == "backoff_delay"
        assert engine.chunk_vector(row) is None  # synced, not embedded yet
        engine.embed()
        vector = engine.chunk_vector(row)
        assert vector is not None and vector.shape == (64,)
        hits = engine.similar(vector, k=3, exclude=row)
        assert hits[0].symbol == "compute_backoff_delay" and len(hits) == 3
        assert all(not (h.path == row.chunk.path and h.start_line <= row.chunk.end_line
                        and row.chunk.start_line <= h.end_line) for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert engine.similar(vector, k=1)[0].symbol == "backoff_delay"  # without exclusion: itself
        texts = engine.file_chunk_texts("src/http/retry.py")
        assert texts[(row.chunk.start_line, row.chunk.end_line)] == row.chunk.text
        with pytest.raises(EngineError):
            engine.similar(vector, k=0)
    finally:
        engine.close()


def test_merge_on_score_and_languages() -> None:
    def hit(path: str, score: float) -> SearchHit:
        return SearchHit(path, 1, 2, "f", "", "function", "python", score, "")

    a, b = Path("/a"), Path("/b")
    merged = merge_hits([(a, [hit("x", 0.9), hit("y", 0.2)]), (b, [hit("z", 0.5)])], 2)
    assert [(root, h.path) for root, h in merged] == [(a, "x"), (b, "z")]
    assert parse_languages(" Python, tsx ,") == ["python", "tsx"] and parse_languages(None) == []
    with pytest.raises(ArgumentError, match="unknown language 'pyhton'"):
        parse_languages("pyhton")


def test_workspace_locates_paths(tmp_path: Path) -> None:
    one = make_repo(tmp_path / "one")
    two = make_repo(tmp_path / "two", {"lib/strings.py": "x = 1\n"})
    nested = one / "src"
    ws = Workspace([one, two, nested, one], EngineConfig())
    try:
        assert ws.roots == [one.resolve(), two.resolve(), nested.resolve()]
        assert ws.locate("lib/strings.py")[0].root == two.resolve()
        folder, rel = ws.locate(str(one / "src" / "http" / "retry.py"))
        assert (folder.root, rel) == (nested.resolve(), "http/retry.py")  # the innermost root
        assert ws.locate(str(two))[1] == ""
        for bad, message in [("/", "outside the indexed roots"), ("../../..", "outside the indexed roots"),
                             ("nope.py", "does not exist"), ("  ", "path is empty")]:
            with pytest.raises(ArgumentError, match=message):
                ws.locate(bad)
        with pytest.raises(ArgumentError, match="query is empty"):
            ws.search("  ")
        with pytest.raises(ArgumentError, match="give its line, its symbol name, or both"):
            ws.related("lib/strings.py")
    finally:
        ws.stop()


def test_server_imports_no_torch() -> None:
    code = ("import sys, codesearch.mcp.server, codesearch.mcp.__main__; "
            "from codesearch.mcp.workspace import Workspace; from codesearch.engine import EngineConfig; "
            "codesearch.mcp.server.create_server(Workspace(['.'], EngineConfig())); "
            "bad = [m for m in ('torch', 'transformers', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "codesearch.mcp", "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("codesearch-mcp ")
    bad = subprocess.run([sys.executable, "-m", "codesearch.mcp", "--path", "/no/such/folder"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a folder" in bad.stderr


def test_workspace_searches_mounted_shards_with_its_roots(tmp_path: Path) -> None:
    from codesearch.shards.manifest import ShardsManifest
    from codesearch.shards.search import ShardSet
    from fakes import FakeEncoder
    from test_shards import OTHER_REPO, local_shard

    out = tmp_path / "shards"
    other = make_repo(tmp_path / "other", OTHER_REPO)
    ShardsManifest((local_shard(out, other, FakeEncoder()).record,)).write(out)
    root = make_repo(tmp_path / "root")
    shards = ShardSet.open(out, encoder=FakeEncoder())
    ws = Workspace([root], EngineConfig(), watch=False, encoder=FakeEncoder(), shards=shards)
    ws.start()
    try:
        assert ws.folders[0].wait_idle(60)
        found = ws.search("slugify_title", k=5)
        top = found.hits[0]
        assert (top.repo, top.hit.path, top.hit.symbol) == ("other", "lib/strings.py", "slugify_title")
        assert "def slugify_title" in top.text  # the snippet comes from the shard's own index
        mine = ws.search("parse_retry_after", k=5).hits[0]
        assert (mine.repo, mine.root, mine.hit.symbol) == ("", root.resolve(), "parse_retry_after")
        assert all(h.repo == "" for h in ws.search("parse_retry_after", k=5, path="src").hits)  # a root's path
    finally:
        ws.stop()
        shards.close()
