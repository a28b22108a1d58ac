"""codesearch-mcp end to end: the real server subprocess driven by the MCP SDK's own stdio client.

The servers use the seeded fake encoder (tests/fakes.py, through the engine's encoder hook), so a
fixture repository indexes in well under a second; "by meaning" here means by words that are not
the identifier, which is what the fake encoder can match.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fakes import DELAY_ENV, fake_encoder_env
from fixture_repo import FILES, make_repo
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

RELATED_FILES = {
    **FILES,
    "src/jobs/backoff.py": '''"""Delays between attempts of failed background jobs."""

import random


def compute_backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with random jitter, capped, for a job retry attempt."""
    return random.uniform(0, min(cap, base * 2 ** attempt))
''',
}


class Server:
    """One codesearch-mcp subprocess and the SDK client session talking to it."""

    def __init__(self, session: ClientSession, log: Path) -> None:
        self.session = session
        self.log = log

    async def call(self, tool: str, **args: Any) -> CallToolResult:
        return await self.session.call_tool(tool, args)

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.call(tool, **args)
        assert not result.is_error, _text(result)
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, **args: Any) -> str:
        result = await self.call(tool, **args)
        assert result.is_error, result.structured_content
        return _text(result)

    async def status(self) -> dict[str, Any]:
        return await self.ok("index_status")

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                       what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = await self.status()
            if predicate(status):
                return status
            await anyio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {status}\n{self.log.read_text()[-3000:]}")

    async def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        return await self.wait_for(
            lambda s: all(r["state"] == "ready" and r["embedded_percent"] == 100 for r in s["roots"]), timeout,
            "every root ready")


def _text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def server_env(**extra: str) -> dict[str, str]:
    env = fake_encoder_env(dict(os.environ))
    env.update(extra)
    return env


@asynccontextmanager
async def mcp_server(*roots: Path, log: Path, env: dict[str, str] | None = None) -> AsyncIterator[Server]:
    args = ["-m", "codesearch.mcp", "--log-level", "INFO"]
    for root in roots:
        args += ["--path", str(root)]
    params = StdioServerParameters(command=sys.executable, args=args, env=env or server_env())
    with log.open("a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield Server(session, log)


def top(found: dict[str, Any]) -> dict[str, Any]:
    assert found["results"], found
    first: dict[str, Any] = found["results"][0]
    return first


async def test_tools_search_and_status(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    async with mcp_server(repo, log=tmp_path / "server.log") as server:
        tools = {t.name: t for t in (await server.session.list_tools()).tools}
        assert set(tools) == {"search", "find_related", "index_status"}
        schema = tools["search"].input_schema
        assert schema["required"] == ["query"]
        assert set(schema["properties"]) == {"query", "k", "language", "glob", "path", "snippet_lines", "max_tokens"}
        assert schema["properties"]["k"]["minimum"] == 1 and schema["properties"]["k"]["default"] == 10
        assert tools["find_related"].input_schema["required"] == ["path"]
        for tool in tools.values():
            assert tool.output_schema and tool.description
            assert tool.annotations is not None and tool.annotations.read_only_hint
        assert {"results", "tokens", "truncated"} <= set(tools["search"].output_schema["properties"])

        status = (await server.wait_ready())["roots"][0]
        assert status["root"] == str(repo.resolve()) and status["files"] >= 8
        assert status["chunks"] >= status["files"] and status["embedded"] == status["chunks"]
        assert status["model"] == "fake" and status["provider"] == "CPUExecutionProvider"
        assert status["read_only"] is False and status["index_owner"] == "this server" and status["watching"]
        assert "index kept by this server" in _text(await server.call("index_status"))

        # by identifier: the definition first, its text as the snippet, the shared hit shape
        result = await server.call("search", query="parse_retry_after")
        found = result.structured_content
        assert found is not None and found["indexing"] is False and not found["truncated"]
        hit = top(found)
        assert (hit["path"], hit["symbol"], hit["kind"], hit["language"]) == \
            ("src/http/retry.py", "parse_retry_after", "function", "python")
        assert (hit["start_line"], hit["end_line"]) == (7, 12)
        assert hit["snippet"].startswith("def parse_retry_after(header: str) -> float:\n")
        assert set(hit) == {"path", "start_line", "end_line", "symbol", "container", "qualified_name", "kind",
                            "language", "score", "snippet", "sources",
                            "match_start_line", "match_end_line"}  # SearchHit.to_json(); no root with one
        text = _text(result)
        assert text.splitlines()[0] == f'{len(found["results"])} results for "parse_retry_after"'
        assert "src/http/retry.py:7-12 parse_retry_after [function]" in text
        assert found["tokens"] == -(-len(text) // 4)

        # by meaning: words of the docstring, not the identifier
        natural = await server.ok("search", query="parse the Retry-After header", k=5)
        assert "parse_retry_after" in [r["symbol"] for r in natural["results"]]
        method = top(await server.ok("search", query="reuse an idle socket for the host"))
        assert method["qualified_name"] == "ConnectionPool.acquire" and method["kind"] == "method"

        # filters: language, glob, a folder, a file, an absolute folder
        only_ts = await server.ok("search", query="cart total discount", language="typescript", k=3)
        assert only_ts["results"] and len(only_ts["results"]) <= 3
        assert {r["language"] for r in only_ts["results"]} == {"typescript"}
        several = await server.ok("search", query="format", language="TypeScript, javascript")
        assert {r["language"] for r in several["results"]} <= {"typescript", "javascript"}
        in_web = await server.ok("search", query="format date", glob="web/**")
        assert in_web["results"] and all(r["path"].startswith("web/") for r in in_web["results"])
        below = await server.ok("search", query="format date", path="web")
        assert below["results"] and all(r["path"].startswith("web/") for r in below["results"])
        one_file = await server.ok("search", query="socket", path="src/http/pool.py")
        assert one_file["results"] and {r["path"] for r in one_file["results"]} == {"src/http/pool.py"}
        absolute = await server.ok("search", query="parse_retry_after", path=str(repo / "src"))
        assert absolute["results"] and all(r["path"].startswith("src/") for r in absolute["results"])
        ignored = await server.ok("search", query="should_not_be_indexed")
        assert all(not r["path"].startswith("build/") for r in ignored["results"])

        # the token budget: fewer results and shorter snippets, never more than asked
        wide = await server.ok("search", query="retry request", k=20, max_tokens=20000)
        assert not wide["truncated"]
        small = await server.call("search", query="retry request", k=20, max_tokens=60)
        data = small.structured_content
        assert data is not None and data["truncated"] and data["found"] == wide["found"]
        assert 0 < len(data["results"]) < data["found"] and data["tokens"] <= 60
        assert len(_text(small)) <= 60 * 4 and "left out by the token budget" in _text(small)
        headers_only = await server.ok("search", query="retry request", snippet_lines=0)
        assert all(r["snippet"] == "" for r in headers_only["results"])
        two = await server.ok("search", query="retry request", snippet_lines=2)
        assert all(len(r["snippet"].splitlines()) <= 2 for r in two["results"])
        assert two["tokens"] < wide["tokens"]

        # the watcher keeps the index fresh
        (repo / "src" / "checksum.py").write_text("def crc32_checksum(data):\n    return 0\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fresh = await server.ok("search", query="crc32_checksum", k=1)
            if fresh["results"] and fresh["results"][0]["symbol"] == "crc32_checksum":
                break
            await anyio.sleep(0.2)
        else:
            raise AssertionError("a new file was not picked up by the watcher")


async def test_find_related(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", RELATED_FILES)
    async with mcp_server(repo, log=tmp_path / "server.log") as server:
        await server.wait_ready()
        by_symbol = await server.call("find_related", path="src/http/retry.py", symbol="backoff_delay", k=3)
        related = by_symbol.structured_content
        assert related is not None and not by_symbol.is_error, _text(by_symbol)
        assert related["source"]["symbol"] == "backoff_delay" and related["source"]["path"] == "src/http/retry.py"
        first = top(related)
        assert (first["path"], first["symbol"]) == ("src/jobs/backoff.py", "compute_backoff_delay")
        assert len(related["results"]) <= 3 and first["sources"] == ["dense"]
        assert 0 < first["score"] <= 1.0
        source = related["source"]
        for r in related["results"]:  # neither the definition nor what encloses it
            assert not (r["path"] == source["path"] and r["start_line"] <= source["end_line"]
                        and source["start_line"] <= r["end_line"])
        assert _text(by_symbol).startswith(f"{len(related['results'])} pieces of code like src/http/retry.py:")
        assert "src/jobs/backoff.py:" in _text(by_symbol)

        # by line: a line inside the method, not its class
        by_line = await server.ok("find_related", path="src/http/pool.py", line=16)
        assert by_line["source"]["qualified_name"] == "ConnectionPool.acquire"
        both = await server.ok("find_related", path=str(repo / "src/http/retry.py"), line=17, symbol="backoff_delay")
        assert both["source"]["symbol"] == "backoff_delay"
        qualified = await server.ok("find_related", path="src/http/pool.py", symbol="ConnectionPool.release", k=2)
        assert qualified["source"]["qualified_name"] == "ConnectionPool.release"

        assert "give its line, its symbol name, or both" in await server.error("find_related",
                                                                               path="src/http/retry.py")
        assert "no chunk named nothing_like_this" in await server.error(
            "find_related", path="src/http/retry.py", symbol="nothing_like_this")
        assert "is a folder" in await server.error("find_related", path="src/http", line=1)
        assert "not in the index" in await server.error("find_related", path="build/generated.py", line=1)
        assert "line" in await server.error("find_related", path="src/http/retry.py", line=0)
        assert top(await server.ok("find_related", path="src/jobs/backoff.py", symbol="compute_backoff_delay"))[
            "symbol"] == "backoff_delay"


async def test_bad_arguments_get_clear_errors_and_the_server_goes_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    async with mcp_server(repo, log=tmp_path / "server.log") as server:
        await server.wait_ready()
        cases: list[tuple[dict[str, Any], str]] = [
            ({"query": ""}, "the query is empty"),
            ({"query": "   "}, "the query is empty"),
            ({}, "query"),
            ({"query": "retry", "k": 0}, "greater than or equal to 1"),
            ({"query": "retry", "k": -3}, "greater than or equal to 1"),
            ({"query": "retry", "k": "many"}, "valid integer"),
            ({"query": "retry", "k": 2.5}, "valid integer"),
            ({"query": "retry", "k": 1000}, "less than or equal to 100"),
            ({"query": "retry", "max_tokens": 1}, "max_tokens"),
            ({"query": "retry", "path": "/"}, "outside the indexed roots"),
            ({"query": "retry", "path": "../.."}, "outside the indexed roots"),
            ({"query": "retry", "path": str(tmp_path)}, "outside the indexed roots"),
            ({"query": "retry", "path": "no/such/folder"}, "does not exist"),
        ]
        for args, message in cases:
            result = await server.call("search", **args)
            assert result.is_error and message in _text(result), (args, _text(result))
            assert top(await server.ok("search", query="parse_retry_after"))["symbol"] == "parse_retry_after"
        assert top(await server.ok("search", query="parse_retry_after", path=""))  # empty: the whole workspace
        assert "k" in await server.error("find_related", path="src/http/retry.py", line=8, k=0)
        unknown = await server.call("no_such_tool")
        assert unknown.is_error and "no_such_tool" in _text(unknown)
        assert (await server.status())["roots"][0]["state"] == "ready"


async def test_searches_while_embedding_and_related_code_not_embedded_yet(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    slow = server_env(**{DELAY_ENV: "60"})  # the first batch of vectors takes a minute
    async with mcp_server(repo, log=tmp_path / "server.log", env=slow) as server:
        status = await server.wait_for(lambda s: s["roots"][0]["chunks"] > 0 and s["roots"][0]["model"] == "fake",
                                       what="chunks and the model")
        assert status["roots"][0]["state"] == "indexing" and status["roots"][0]["embedded_percent"] < 100
        found = await server.ok("search", query="parse_retry_after")
        assert top(found)["symbol"] == "parse_retry_after" and found["indexing"] is True
        assert any("not embedded yet" in note for note in found["notes"])
        message = await server.error("find_related", path="src/http/retry.py", symbol="parse_retry_after")
        assert "is not embedded yet" in message and "try again" in message


async def test_second_server_reads_the_index_the_first_keeps(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    async with mcp_server(repo, log=tmp_path / "first.log") as first:
        await first.wait_ready()
        async with mcp_server(repo, log=tmp_path / "second.log") as second:
            status = await second.wait_for(lambda s: s["roots"][0]["read_only"] and s["roots"][0]["state"] == "ready",
                                           what="read-only and ready")
            root = status["roots"][0]
            assert root["index_owner"] == "another process" and root["embedded_percent"] == 100
            assert "read-only" in _text(await second.call("index_status"))
            assert (await first.status())["roots"][0]["index_owner"] == "this server"
            assert top(await second.ok("search", query="parse_retry_after"))["symbol"] == "parse_retry_after"
            assert top(await second.ok("find_related", path="src/http/retry.py", symbol="backoff_delay"))

            # the first server indexes a change; the second reads it from the shared index
            (repo / "src" / "checksum.py").write_text("def adler32_checksum(data):\n    return 1\n")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                found = await second.ok("search", query="adler32_checksum", k=1)
                if found["results"] and found["results"][0]["symbol"] == "adler32_checksum":
                    break
                await anyio.sleep(0.2)
            else:
                raise AssertionError("the reading server never saw the change the writing one indexed")

            # two readers and a writer at once: nothing fails
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for server in (first, second, second):
                        tg.start_soon(functools.partial(server.ok, "search", query="retry the request"))

        # the second server went away without touching the index; the first still keeps it
        assert (await first.status())["roots"][0]["index_owner"] == "this server"
        index_dir = Path((await first.status())["roots"][0]["index_dir"])

    # a later server opens the index both left behind and keeps it
    async with mcp_server(repo, log=tmp_path / "third.log") as third:
        status = await third.wait_ready()
        assert status["roots"][0]["index_owner"] == "this server"
        assert top(await third.ok("search", query="adler32_checksum"))["symbol"] == "adler32_checksum"
    db = sqlite3.connect(index_dir / "index.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


async def test_a_reader_takes_over_when_the_writer_exits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    writer_ready, writer_stop = anyio.Event(), anyio.Event()

    async def writer() -> None:  # in a task of its own, so that it can end before the reader
        async with mcp_server(repo, log=tmp_path / "writer.log") as server:
            await server.wait_ready()
            writer_ready.set()
            await writer_stop.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await writer_ready.wait()
        async with mcp_server(repo, log=tmp_path / "reader.log") as reader:
            await reader.wait_for(lambda s: s["roots"][0]["read_only"], what="read-only")
            writer_stop.set()
            status = await reader.wait_for(lambda s: s["roots"][0]["index_owner"] == "this server",
                                           what="take over")
            assert status["roots"][0]["read_only"] is False
            await reader.wait_ready()
            assert top(await reader.ok("search", query="parse_retry_after"))["symbol"] == "parse_retry_after"


async def test_several_roots(tmp_path: Path) -> None:
    one = make_repo(tmp_path / "one")
    two = make_repo(tmp_path / "two", {"lib/strings.py": "def slugify_title(title):\n    return title.lower()\n"})
    async with mcp_server(one, two, log=tmp_path / "server.log") as server:
        status = await server.wait_ready()
        assert [r["root"] for r in status["roots"]] == [str(one.resolve()), str(two.resolve())]
        result = await server.call("search", query="slugify_title")
        hit = top(result.structured_content or {})
        assert (hit["root"], hit["path"], hit["symbol"]) == (str(two.resolve()), "lib/strings.py", "slugify_title")
        assert f"{two.resolve()}/lib/strings.py:1-2 slugify_title" in _text(result)
        merged = await server.ok("search", query="parse_retry_after", k=20)
        assert top(merged)["root"] == str(one.resolve()) and top(merged)["symbol"] == "parse_retry_after"
        scores = [r["score"] for r in (await server.ok("search", query="title", k=20))["results"]]
        assert scores == sorted(scores, reverse=True)
        assert {r["root"] for r in (await server.ok("search", query="title", path="lib"))["results"]} == \
            {str(two.resolve())}  # a relative path is looked up in every root
        assert top(await server.ok("find_related", path=str(two / "lib/strings.py"), line=1))


async def test_an_editors_language_server_keeps_the_index_and_the_agent_reads_it(tmp_path: Path) -> None:
    from test_lsp import start_client, stop_client

    repo = make_repo(tmp_path / "repo")
    editor = await start_client([repo])
    try:
        await editor.wait_ready()
        async with mcp_server(repo, log=tmp_path / "server.log") as agent:
            status = await agent.wait_for(lambda s: s["roots"][0]["read_only"] and s["roots"][0]["state"] == "ready",
                                          what="read-only and ready")
            assert status["roots"][0]["index_owner"] == "another process"
            assert (await editor.command("codesearch-ls.status"))["folders"][0]["writer"] is True
            assert top(await agent.ok("search", query="parse_retry_after"))["symbol"] == "parse_retry_after"
            # the editor goes away: the agent's server keeps the index from now on
            await stop_client(editor)
            await agent.wait_for(lambda s: s["roots"][0]["index_owner"] == "this server", what="take over")
            await agent.wait_ready()
    finally:
        await stop_client(editor)
