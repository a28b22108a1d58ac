"""Raw byte streams against the language server's stdio: every framing and validation fault is
answered (or logged) and the next request is answered too.

The reader itself (:class:`FrameReader`) is also fed the same streams in pieces of every size,
down to one byte, and must see the same messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from codesearch.lsp.framing import Body, FrameReader, FramingError
from codesearch.lsp.validation import INVALID_REQUEST, PARSE_ERROR, Rejected, check_message, parse_message
from fakes import fake_encoder_env

INVALID_PARAMS = -32602
LIMIT = 1 << 20


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def symbol_request(msg_id: Any, query: Any = "x") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "workspace/symbol", "params": {"query": query}}


BODY = json.dumps(symbol_request("lost")).encode()

# name → (raw bytes, the errors it must be answered with: (code, id))
CASES: dict[str, tuple[bytes, list[tuple[int, Any]]]] = {
    "content-length too short": (b"Content-Length: %d\r\n\r\n" % (len(BODY) - 10) + BODY,
                                 [(PARSE_ERROR, None), (PARSE_ERROR, None)]),
    "content-length too long": (b"Content-Length: %d\r\n\r\n" % (len(BODY) + 10) + BODY, [(PARSE_ERROR, None)]),
    "content-length not a number": (b"Content-Length: abc\r\n\r\n" + BODY, [(PARSE_ERROR, None)]),
    "content-length missing": (b"Content-Type: application/json\r\n\r\n" + BODY, [(PARSE_ERROR, None)]),
    "no header at all": (BODY, [(PARSE_ERROR, None)]),
    "header in lower case": (b"content-length: %d\r\n\r\n" % len(BODY) + BODY, [(PARSE_ERROR, None)]),
    "content-length 10^12": (b"Content-Length: 1000000000000\r\n\r\n" + BODY, [(PARSE_ERROR, None)]),
    "message over the limit": (frame(symbol_request("big", "x" * (2 * LIMIT))), [(PARSE_ERROR, None)]),
    "invalid json": (b"Content-Length: 5\r\n\r\n{oops", [(PARSE_ERROR, None)]),
    "not utf-8": (b"Content-Length: 4\r\n\r\n\"\xff\xfe\"", [(PARSE_ERROR, None)]),
    "not an object": (frame([1, 2]), [(INVALID_REQUEST, None)]),
    "request without a method": (frame({"jsonrpc": "2.0", "id": 7}), [(INVALID_REQUEST, 7)]),
    "id is an object": (frame(symbol_request({"a": 1})), [(INVALID_REQUEST, None)]),
    "id is a boolean": (frame(symbol_request(True)), [(INVALID_REQUEST, None)]),
    "params not structured": (frame({"jsonrpc": "2.0", "id": 11, "method": "workspace/symbol", "params": 5}),
                              [(INVALID_REQUEST, 11)]),
    "wrong jsonrpc version": (frame({"jsonrpc": "1.0", "id": 12, "method": "workspace/symbol"}),
                              [(INVALID_REQUEST, 12)]),
    "symbol query is a number": (frame(symbol_request(8, 5)), [(INVALID_PARAMS, 8)]),
    "symbol query is null": (frame(symbol_request(9, None)), [(INVALID_PARAMS, 9)]),
    "symbol query is an object": (frame(symbol_request(10, {"q": "x"})), [(INVALID_PARAMS, 10)]),
}


class RawServer:
    """codesearch-ls over pipes; what it writes is parsed into messages on a thread."""

    def __init__(self, *args: str) -> None:
        env = fake_encoder_env(dict(os.environ))
        self.proc = subprocess.Popen([sys.executable, "-m", "codesearch.lsp", "--log-level", "INFO", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while (line := out.readline()) not in (b"\r\n", b""):
                if line.startswith(b"Content-Length:"):
                    length = int(line.split(b":")[1])
            if not line or length is None:
                self.messages.put(None)
                return
            self.messages.put(json.loads(out.read(length)))

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def until(self, msg_id: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Everything the server sent up to and including the response to ``msg_id``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            assert message is not None, f"the server closed its output; stderr: {b''.join(self.stderr)[-2000:]!r}"
            got.append(message)
            if message.get("id") == msg_id and "method" not in message:
                return got
        raise AssertionError(f"no answer to request {msg_id!r} within {timeout}s; got {got}")

    def log(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")


@pytest.fixture
def server() -> Iterator[RawServer]:
    srv = RawServer("--max-message-bytes", str(LIMIT))
    srv.send(frame({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"processId": None, "rootUri": None, "capabilities": {}}}))
    srv.until(0)
    srv.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
    srv.proc.wait(10)


def errors(messages: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    return [(m["error"]["code"], m["id"]) for m in messages if "error" in m and "method" not in m]


@pytest.mark.timeout(180)
def test_every_fault_is_answered_and_the_server_reads_on(server: RawServer) -> None:
    pid = server.proc.pid
    for n, (name, (raw, expected)) in enumerate(CASES.items()):
        server.send(raw)
        server.send(frame(symbol_request(1000 + n)))  # a valid request right behind the fault
        got = server.until(1000 + n)
        assert errors(got) == expected, (name, got)
        assert got[-1].get("result") == [], (name, got[-1])
    assert server.proc.poll() is None and server.proc.pid == pid
    log = server.log()
    assert "over the limit of 1048576 bytes" in log and "a message of 1000000000000 bytes" in log
    assert "not a header line" in log and "MemoryError" not in log and "Traceback" not in log
    server.send(frame({"jsonrpc": "2.0", "id": 99, "method": "shutdown"}))
    server.until(99)
    server.send(frame({"jsonrpc": "2.0", "method": "exit"}))
    assert server.proc.wait(15) == 0


@pytest.mark.timeout(60)
def test_a_message_cut_short_is_answered_when_the_next_arrives(server: RawServer) -> None:
    """Content-Length too long and nothing after it: the server can only wait; the next message ends it."""
    server.send(b"Content-Length: %d\r\n\r\n" % (len(BODY) + 500) + BODY)
    time.sleep(0.5)
    server.send(frame(symbol_request(1)))
    got = server.until(1)
    assert errors(got) == [(PARSE_ERROR, None)] and got[-1]["result"] == []


# the reader alone ----------------------------------------------------------------------------------
def _outcomes(stream: bytes, piece: int) -> list[str]:
    chunks = iter([stream[i:i + piece] for i in range(0, len(stream), piece)])

    async def run() -> list[str]:
        async def read() -> bytes:
            return next(chunks, b"")

        reader = FrameReader(read, LIMIT)
        out: list[str] = []
        while (item := await reader.next()) is not None:
            if isinstance(item, FramingError):
                out.append("framing")
                continue
            assert isinstance(item, Body)
            message = parse_message(item.data)
            if isinstance(message, Rejected):
                if message.code == PARSE_ERROR:
                    reader.resync_after(item)
                out.append(f"rejected {message.code}")
            else:
                out.append(f"message {message.get('id')}")
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1000, 1 << 20])
def test_reader_sees_the_same_messages_however_the_bytes_arrive(piece: int) -> None:
    stream = b"\r\n" + frame(symbol_request(1))
    for n, (raw, _) in enumerate(CASES.values()):
        stream += raw + frame(symbol_request(100 + n))
    expected = _outcomes(stream, len(stream))
    assert expected.count("message 1") == 1
    assert all(f"message {100 + n}" in expected for n in range(len(CASES)))
    if piece > 3:
        assert _outcomes(stream, piece) == expected
    else:  # byte by byte through a 2 MiB message is slow; a stream without it checks the same paths
        small = b"".join(raw + frame(symbol_request(100 + n)) for n, (raw, _) in enumerate(CASES.values())
                         if len(raw) < 10_000)
        assert _outcomes(small, piece) == _outcomes(small, len(small))


def test_reader_ends_cleanly() -> None:
    assert _outcomes(b"", 10) == []
    assert _outcomes(frame(symbol_request(1))[:-3], 10) == ["framing"]  # the stream ended inside a body
    assert _outcomes(b"Content-Len", 4) == ["framing"]


def test_message_checks() -> None:
    assert check_message({"jsonrpc": "2.0", "id": 1, "result": None}) == {"jsonrpc": "2.0", "id": 1, "result": None}
    assert check_message({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}})["id"] is None  # type: ignore[index]
    assert isinstance(check_message({"jsonrpc": "2.0", "method": "x", "params": None}), dict)
    assert check_message({"jsonrpc": "2.0", "id": 1.5, "method": "x"}) == Rejected(
        INVALID_REQUEST, "Invalid Request: an id is an integer or a string, not a number")
    assert check_message({"jsonrpc": "2.0", "method": 3}).code == INVALID_REQUEST  # type: ignore[union-attr]
    assert parse_message(b"[" * 100_000).code == PARSE_ERROR  # type: ignore[union-attr]
