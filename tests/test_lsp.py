"""codesearch-ls end to end: the real server subprocess driven by pytest-lsp's client.

These use the seeded fake encoder (tests/fakes.py, through the engine's encoder hook) so that indexing takes well
under a second; test_lsp_model.py runs the real default model.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from codesearch.embed.loading import ENCODER_FACTORY_ENV
from fakes import fake_encoder_env
from fixture_repo import make_repo
from lsprotocol import converters, types
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCRequestMessage
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import register_lsp_features

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

SERVER = [sys.executable, "-m", "codesearch.lsp"]
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class Client:
    """A pytest-lsp client plus what the server told it: status notifications, registrations."""

    def __init__(self, lsp: LanguageClient) -> None:
        self.lsp = lsp
        self.statuses: list[dict[str, Any]] = []
        self.registrations: list[types.Registration] = []
        self.answer_registrations = True

    @property
    def last_status(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else {}

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; "
                             f"last status {self.last_status}")

    async def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        await self.wait_for(lambda: self.last_status.get("state") == "ready", timeout, "state ready")
        return self.last_status

    async def search(self, query: str, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.lsp.protocol.send_request_async(
            "codesearch/search", {"query": query, **extra})
        return result

    async def symbols(self, query: str) -> list[types.SymbolInformation]:
        result = await self.lsp.workspace_symbol_async(types.WorkspaceSymbolParams(query=query))
        return list(result or [])  # type: ignore[arg-type]

    async def command(self, name: str, *args: Any) -> Any:
        return await self.lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args) if args else None))

    async def raw_request(self, method: str, params: Any) -> Any:
        """Send params as they are, even where lsprotocol's types would refuse them."""
        proto = self.lsp.protocol
        msg_id = str(uuid.uuid4())
        future: Future[Any] = Future()
        proto._request_futures[msg_id] = future
        proto._send_data(JsonRPCRequestMessage(id=msg_id, method=method, jsonrpc="2.0", params=params))
        return await asyncio.wait_for(asyncio.wrap_future(future), 10)

    def runs_ended(self) -> int:
        return sum(1 for v in self.progress_values() if v and isinstance(v[-1], types.WorkDoneProgressEnd))

    def progress_values(self) -> list[list[Any]]:
        return [values for token, values in self.lsp.progress_reports.items() if str(token).startswith("codesearch")]


def server_env(**extra: str) -> dict[str, str]:
    env = fake_encoder_env(dict(os.environ))
    env.update(extra)
    return env


async def start_client(roots: list[Path], *, capabilities: str | types.ClientCapabilities = "visual-studio-code",
                       init_options: Any = None, env: dict[str, str] | None = None) -> Client:
    holder: dict[str, Client] = {}

    def factory() -> LanguageClient:
        lsp = LanguageClient(converter_factory=converters.get_converter)  # plain JSON for custom methods
        register_lsp_features(lsp)

        @lsp.feature("codesearch/status")
        def on_status(params: Any) -> None:
            holder["client"].statuses.append(params)

        @lsp.feature(types.CLIENT_REGISTER_CAPABILITY)
        async def on_register(params: types.RegistrationParams) -> None:
            holder["client"].registrations.extend(params.registrations)
            if not holder["client"].answer_registrations:
                await asyncio.sleep(3600)

        return lsp

    config = ClientServerConfig(server_command=SERVER, server_env=env or server_env(), client_factory=factory)
    lsp = await config.start()
    assert isinstance(lsp, LanguageClient)
    client = holder["client"] = Client(lsp)
    caps = client_capabilities(capabilities) if isinstance(capabilities, str) else capabilities
    await lsp.initialize_session(types.InitializeParams(
        capabilities=caps,
        workspace_folders=[types.WorkspaceFolder(uri=r.as_uri(), name=r.name) for r in roots],
        initialization_options=init_options,
    ))
    return client


async def stop_client(client: Client) -> None:
    if client.lsp.stopped:
        return
    try:
        await asyncio.wait_for(client.lsp.shutdown_session(), 30)
    finally:
        await client.lsp.stop()


@pytest_asyncio.fixture
async def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest_asyncio.fixture
async def client(repo: Path) -> AsyncIterator[Client]:
    c = await start_client([repo])
    yield c
    await stop_client(c)


def top(result: dict[str, Any]) -> dict[str, Any]:
    assert result["results"], result
    first: dict[str, Any] = result["results"][0]
    return first


async def test_index_progress_search_and_symbols(client: Client, repo: Path) -> None:
    status = await client.wait_ready()
    assert status["files"] >= 8 and status["chunks"] >= status["files"]
    assert status["embedded"] == status["chunks"] and status["percentage"] == 100
    assert status["model"] and status["provider"] == "CPUExecutionProvider"
    assert client.statuses[0]["state"] == "indexing"

    # $/progress: one created token per indexing run: begin, reports, end
    await client.wait_for(lambda: client.runs_ended() == 1, what="progress end")
    values = client.progress_values()[0]
    assert isinstance(values[0], types.WorkDoneProgressBegin) and values[0].cancellable
    assert isinstance(values[-1], types.WorkDoneProgressEnd)
    reports = [v for v in values if isinstance(v, types.WorkDoneProgressReport)]
    assert reports and all(r.percentage is not None for r in reports)
    percentages = [r.percentage or 0 for r in reports]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert any("files" in (r.message or "") for r in reports)
    assert "files" in (values[-1].message or "")

    # codesearch/search
    natural = await client.search("parse the Retry-After header", limit=5)
    assert "parse_retry_after" in [r["symbol"] for r in natural["results"]]
    result = await client.search("parse_retry_after")
    hit = top(result)
    assert result["indexing"] is False
    assert hit["uri"] == (repo / "src/http/retry.py").as_uri()
    assert hit["symbol"] == "parse_retry_after" and hit["kind"] == "function" and hit["language"] == "python"
    assert hit["range"]["start"] == {"line": 6, "character": 0}  # `def parse_retry_after` is line 7
    assert hit["range"]["end"]["line"] > 6 and "def parse_retry_after" in hit["snippet"]
    assert set(hit) == {"uri", "range", "path", "start_line", "end_line", "symbol", "container", "qualified_name",
                        "kind", "language", "score", "snippet", "sources",
                        "match_start_line", "match_end_line"}  # the CLI's shape, plus uri and range

    method = top(await client.search("ConnectionPool acquire idle socket"))
    assert method["qualified_name"] == "ConnectionPool.acquire" and method["kind"] == "method"

    only_ts = await client.search("cart total discount", languages=["typescript"], limit=3)
    assert only_ts["results"] and len(only_ts["results"]) <= 3
    assert {r["language"] for r in only_ts["results"]} == {"typescript"}
    in_web = await client.search("format date", pathGlob="web/**")
    assert in_web["results"] and all("/web/" in r["uri"] for r in in_web["results"])
    folder = await client.search("parse_retry_after", folder=repo.as_uri())
    assert top(folder)["symbol"] == "parse_retry_after"
    inside = await client.search("parse_retry_after", folder=(repo / "src").as_uri())  # a folder inside one
    assert inside["results"] and all("/repo/src/" in r["uri"] for r in inside["results"])
    ignored = await client.search("should_not_be_indexed")
    assert all("build/" not in r["uri"] for r in ignored["results"])

    # workspace/symbol answers with the same search
    symbols = await client.symbols("parse_retry_after")
    assert symbols and symbols[0].name == "parse_retry_after"
    assert symbols[0].kind == types.SymbolKind.Function
    assert symbols[0].location.uri == (repo / "src/http/retry.py").as_uri()
    assert symbols[0].location.range.start.line == 6
    assert symbols[0].container_name == "src/http/retry.py"
    classes = await client.symbols("ConnectionPool")
    assert (classes[0].name, classes[0].kind) == ("ConnectionPool", types.SymbolKind.Class)
    assert await client.symbols("") == []


async def test_a_search_right_after_initialized_says_indexing(repo: Path) -> None:
    client = await start_client([repo], env=server_env(CODESEARCH_TEST_ENCODER_DELAY="0.5"))
    try:
        first = await client.search("parse_retry_after")  # sent right behind `initialized`
        assert first["indexing"] is True or first["results"], first
        if first["results"]:
            assert top(first)["symbol"] == "parse_retry_after"
    finally:
        await stop_client(client)


async def test_commands_and_bad_requests(client: Client, repo: Path) -> None:
    await client.wait_ready()
    status = await client.command("codesearch-ls.status")
    assert status["state"] == "ready" and status["watching"] == "client"
    assert status["folders"][0]["root"] == str(repo.resolve()) and status["folders"][0]["writer"] is True
    assert status["settings"]["device"] == "auto"

    await client.wait_for(lambda: client.runs_ended() == 1, what="the first progress run")
    answer = await client.command("codesearch-ls.reindex")
    assert answer["reindexing"] == [str(repo.resolve())]
    await client.wait_for(lambda: client.runs_ended() == 2, what="a second progress run")
    await client.wait_ready()

    # malformed requests get InvalidParams; the server lives on
    for params in ({}, {"query": ""}, {"query": 5}, {"query": "x", "limit": 0}, {"query": "x", "limit": "ten"},
                   {"query": "x", "languages": 3}, {"query": "x", "folder": "/not/a/folder"}, ["query"], None):
        with pytest.raises(JsonRpcException) as info:
            await client.lsp.protocol.send_request_async("codesearch/search", params)
        assert info.value.code == INVALID_PARAMS, (params, info.value)
    for params in ({}, {"querry": "typo"}, None):
        with pytest.raises(JsonRpcException) as info:
            await client.raw_request("workspace/symbol", params)
        assert info.value.code == INVALID_PARAMS, params
    with pytest.raises(JsonRpcException) as info:
        await client.command("codesearch-ls.nope")
    assert info.value.code == INVALID_PARAMS
    with pytest.raises(JsonRpcException) as info:
        await client.command("codesearch-ls.reindex", "/not/a/folder")
    assert info.value.code == INVALID_PARAMS
    assert top(await client.search("parse_retry_after"))["symbol"] == "parse_retry_after"

    # an internal failure: an error response and a window/logMessage; the server lives on
    with pytest.raises(JsonRpcException) as info:
        await client.search("__codesearch_test_crash__ retry")
    assert info.value.code == INTERNAL_ERROR and "fake encoder" in info.value.message
    await client.wait_for(lambda: any(m.type == types.MessageType.Error and "fake encoder" in m.message
                                      for m in client.lsp.log_messages), what="the error in the log")
    assert top(await client.search("parse_retry_after"))["symbol"] == "parse_retry_after"


async def test_client_file_events_edit_and_delete(client: Client, repo: Path) -> None:
    await client.wait_ready()
    # the client said it can watch files: the server asked it to
    await client.wait_for(lambda: client.registrations, what="client/registerCapability")
    assert client.registrations[0].method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES

    new = repo / "src" / "http" / "cookies.py"
    new.write_text("def parse_cookie_header(value):\n    return dict(p.split('=') for p in value.split(';'))\n")
    started = time.monotonic()
    client.lsp.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=new.as_uri(), type=types.FileChangeType.Created)]))

    async def found() -> bool:
        hits = (await client.search("parse_cookie_header", limit=5))["results"]
        return any(h["symbol"] == "parse_cookie_header" for h in hits)

    while not await found():
        assert time.monotonic() - started < 5, "the new function was not found within 5 s"
        await asyncio.sleep(0.1)

    new.unlink()
    started = time.monotonic()
    client.lsp.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=new.as_uri(), type=types.FileChangeType.Deleted)]))
    while await found():
        assert time.monotonic() - started < 5, "the deleted function was still found after 5 s"
        await asyncio.sleep(0.1)


async def found_symbol(client: Client, name: str) -> bool:
    hits = (await client.search(name, limit=5))["results"]
    return any(name in (h["symbol"], h["qualified_name"]) for h in hits)


async def eventually(client: Client, name: str, present: bool, within: float = 5.0) -> float:
    started = time.monotonic()
    while await found_symbol(client, name) != present:
        elapsed = time.monotonic() - started
        assert elapsed < within, f"{name} {'not found' if present else 'still found'} after {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_watchdog_and_unsaved_buffers(repo: Path) -> None:
    # Neovim 0.7 cannot watch files for a server: the server watches the folder itself.
    client = await start_client([repo], capabilities="neovim@v0.7.0")
    try:
        await client.wait_ready()
        assert (await client.command("codesearch-ls.status"))["watching"] == "watchdog"
        assert not client.registrations

        new = repo / "src" / "http" / "cookies.py"
        new.write_text("def parse_cookie_header(value):\n    return dict(p.split('=') for p in value.split(';'))\n")
        await eventually(client, "parse_cookie_header", True)
        new.unlink()
        await eventually(client, "parse_cookie_header", False)
        (repo / "build" / "ignored.py").write_text("def ignored_by_gitignore():\n    pass\n")
        (repo / "node_modules" / "pkg").mkdir(parents=True)
        (repo / "node_modules" / "pkg" / "index.js").write_text("function ignoredDependency() {}\n")

        # what the editor shows, unsaved, is what is searched
        pool = repo / "src" / "http" / "pool.py"
        disk = pool.read_text()
        uri = pool.as_uri()
        client.lsp.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=uri, language_id="python", version=1, text=disk + "\n\ndef drain_idle_sockets(pool):\n    pass\n")))
        await eventually(client, "drain_idle_sockets", True)
        client.lsp.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(
                text=disk + "\n\ndef evict_stale_sockets(pool):\n    pass\n")]))
        await eventually(client, "evict_stale_sockets", True)
        assert not await found_symbol(client, "drain_idle_sockets")
        client.lsp.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))
        await eventually(client, "evict_stale_sockets", False)
        assert await found_symbol(client, "ConnectionPool.acquire")
        assert not await found_symbol(client, "ignored_by_gitignore")
        assert not await found_symbol(client, "ignoredDependency")
    finally:
        await stop_client(client)


def add_many_files(repo: Path, count: int = 40, functions: int = 5) -> None:
    for i in range(count):
        body = "\n\n".join(f"def helper_{i}_{j}(value):\n    return value * {j} + {i}\n" for j in range(functions))
        (repo / "extra" / f"mod_{i}.py").parent.mkdir(exist_ok=True)
        (repo / "extra" / f"mod_{i}.py").write_text(body)


async def test_search_during_indexing_and_cancel(repo: Path) -> None:
    add_many_files(repo)  # ~235 chunks: 4 embedding batches of one second each
    client = await start_client([repo], env=server_env(CODESEARCH_TEST_ENCODER_DELAY="1.0"))
    try:
        await client.wait_for(lambda: client.last_status.get("message") == "embedding", what="embedding")
        started = time.monotonic()
        during = await client.search("parse_retry_after")
        latency = time.monotonic() - started
        assert during["indexing"] is True
        assert top(during)["symbol"] == "parse_retry_after"  # lexical results while vectors are computed
        assert latency < 0.5, f"a search during indexing took {latency:.3f}s"

        await client.wait_for(lambda: client.progress_values() and client.progress_values()[0], what="begin")
        token = next(t for t in client.lsp.progress_reports if str(t).startswith("codesearch"))
        started = time.monotonic()
        client.lsp.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
        await client.wait_for(lambda: client.runs_ended() == 1, timeout=10, what="progress end after cancel")
        assert time.monotonic() - started < 3.0
        status = await client.wait_ready()
        assert status["embedded"] < status["chunks"]
        assert "cancelled" in status["message"]
        report = await client.command("codesearch-ls.status")
        assert report["folders"][0]["paused"] is True
        assert (await client.search("parse_retry_after"))["indexing"] is False

        await client.command("codesearch-ls.reindex")
        await client.wait_for(lambda: client.runs_ended() == 2, timeout=30, what="the resumed run")
        status = await client.wait_ready()
        assert status["embedded"] == status["chunks"] and status["message"] == "ready"
    finally:
        await stop_client(client)


async def test_two_servers_share_a_workspace(repo: Path) -> None:
    first = await start_client([repo])
    second: Client | None = None
    try:
        await first.wait_ready()
        second = await start_client([repo])
        await second.wait_for(lambda: "read-only" in second.last_status.get("message", ""), what="read-only")
        report = await second.command("codesearch-ls.status")
        assert report["folders"][0]["writer"] is False
        assert any("another codesearch process" in m.message for m in second.lsp.log_messages)
        assert top(await second.search("parse_retry_after"))["symbol"] == "parse_retry_after"
        # the first server goes away: the second takes over the index
        await stop_client(first)
        await second.wait_for(lambda: "read-only" not in second.last_status.get("message", "read-only")
                              and second.last_status.get("state") == "ready", timeout=15, what="take over")
        assert (await second.command("codesearch-ls.status"))["folders"][0]["writer"] is True
    finally:
        await stop_client(first)
        if second is not None:
            await stop_client(second)


async def test_settings_and_multi_root(tmp_path: Path) -> None:
    one = make_repo(tmp_path / "one")
    two = make_repo(tmp_path / "two", {"lib/strings.py": "def slugify_title(title):\n    return title.lower()\n"})
    client = await start_client([one, two], init_options={"exclude": ["web/**"], "maxFileSize": 100000,
                                                          "device": "cpu", "model": None})
    try:
        status = await client.wait_ready()
        assert status["files"] >= 9
        report = await client.command("codesearch-ls.status")
        assert report["settings"] == {"model": None, "device": "cpu", "exclude": ["web/**"], "maxFileSize": 100000,
                                      "ranker": None, "rerankK": 5, "shards": None}
        assert [f["name"] for f in report["folders"]] == ["one", "two"]
        assert top(await client.search("slugify_title"))["uri"] == (two / "lib/strings.py").as_uri()
        assert not (await client.search("slugify_title", folder=str(one)))["results"] or \
            top(await client.search("slugify_title", folder=str(one)))["symbol"] != "slugify_title"
        assert not await found_symbol(client, "cartTotal")  # excluded

        client.lsp.workspace_did_change_configuration(types.DidChangeConfigurationParams(
            settings={"codesearch": {"exclude": [], "device": "gpu"}}))
        await eventually(client, "cartTotal", True, within=15)
        await client.wait_ready()
        assert any("device must be one of" in m.message for m in client.lsp.log_messages)
        assert (await client.command("codesearch-ls.status"))["settings"]["exclude"] == []

        client.lsp.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[], removed=[types.WorkspaceFolder(uri=two.as_uri(), name="two")])))
        await eventually(client, "slugify_title", False)
        assert [f["name"] for f in (await client.command("codesearch-ls.status"))["folders"]] == ["one"]
    finally:
        await stop_client(client)


async def test_model_failure_is_reported_once_and_keywords_still_work(repo: Path, tmp_path: Path) -> None:
    env = server_env()
    env.pop(ENCODER_FACTORY_ENV)
    other = make_repo(tmp_path / "other")
    client = await start_client([repo, other], init_options={"model": "/nonexistent/model-folder"}, env=env)
    try:
        await client.wait_for(lambda: client.last_status.get("state") == "error"
                              and "other" in client.last_status.get("message", "")
                              and "repo" in client.last_status.get("message", ""), what="state error")
        # the reason, once for both folders, in the status and in one log line
        message = client.last_status["message"]
        assert message.count("/nonexistent/model-folder") == 1, message
        def said() -> list[str]:
            return [m.message for m in client.lsp.log_messages if "/nonexistent/model-folder" in m.message]

        await client.wait_for(lambda: bool(said()), what="the log line")  # may come just after the status
        await asyncio.sleep(0.5)  # a second line, if one were sent, would have arrived by now
        assert len(said()) == 1 and "could not be loaded" in said()[0], said()
        assert top(await client.search("parse_retry_after"))["symbol"] == "parse_retry_after"
    finally:
        await stop_client(client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_tcp_transport(repo: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(*SERVER, "--tcp", "--port", str(port), env=server_env())
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the TCP server did not listen")

        async def call(msg_id: int | None, method: str, params: Any) -> Any:
            message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
            if msg_id is not None:
                message["id"] = msg_id
            body = json.dumps(message).encode()
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            while msg_id is not None:
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reply = json.loads(await reader.readexactly(length))
                if reply.get("id") == msg_id:
                    return reply
            return None

        init = await call(1, "initialize", {"processId": None, "rootUri": repo.as_uri(), "capabilities": {}})
        assert init["result"]["capabilities"]["workspaceSymbolProvider"]
        assert init["result"]["serverInfo"]["name"] == "codesearch-ls"
        await call(None, "initialized", {})
        reply = await call(2, "codesearch/search", {"query": "parse_retry_after"})
        assert "results" in reply["result"]
        await call(3, "shutdown", None)
        await call(None, "exit", None)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
