"""The server's message loop over stdio or TCP, in place of pygls' own reader.

Every message goes through :class:`.framing.FrameReader` (strict headers, a size limit,
resynchronisation) and :mod:`.validation` (Parse error, Invalid Request) before pygls handles it;
every problem is logged with its reason, answered where the protocol says so, and the server reads
on. pygls still structures and dispatches the messages and writes the responses.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, BinaryIO

from pygls.exceptions import JsonRpcException
from pygls.io_ import StdoutWriter
from pygls.server import JsonRPCServer

from .framing import DEFAULT_MAX_MESSAGE_BYTES, READ_SIZE, Body, FrameReader, FramingError, Read
from .validation import PARSE_ERROR, Rejected, parse_message

log = logging.getLogger(__name__)


async def pump(reader: FrameReader, server: JsonRPCServer, stop: threading.Event) -> None:
    """Read, check and dispatch messages until the stream ends or the server stops."""
    while not stop.is_set():
        item = await reader.next()
        if item is None:
            return
        if isinstance(item, FramingError):
            log.warning("JSON-RPC framing error: %s", item.reason)
            answer_error(server, Rejected(PARSE_ERROR, f"Parse error: {item.reason}"))
            continue
        dispatch(reader, server, item)


def dispatch(reader: FrameReader, server: JsonRPCServer, body: Body) -> None:
    message = parse_message(body.data)
    if isinstance(message, Rejected):
        if message.code == PARSE_ERROR and reader.resync_after(body):
            log.warning("a message was cut short by the next one (its Content-Length was too long)")
        log.warning("rejected a message: %s", message.message)
        answer_error(server, message)
        return
    protocol = server.protocol
    try:
        protocol.handle_message(protocol.structure_message(message))
    except Exception as exc:  # as pygls' own loop: log, report, read on
        log.exception("Unable to handle message")
        server._report_server_error(exc, JsonRpcException)


def answer_error(server: JsonRPCServer, rejected: Rejected) -> None:
    try:
        # Written as plain JSON: the id must be there, null when the message's own could not be read
        # (pygls' response types leave a null id out).
        server.protocol._send_data({"jsonrpc": "2.0", "id": rejected.id,
                                    "error": {"code": rejected.code, "message": rejected.message}})
    except Exception:
        log.exception("could not answer a rejected message")


def serve_stdio(server: JsonRPCServer, stdin: BinaryIO, stdout: BinaryIO,
                max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """pygls' ``start_io``, with this module's reader."""
    stop = server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout))
    read1 = getattr(stdin, "read1", stdin.read)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def read() -> asyncio.Future[bytes]:
            return loop.run_in_executor(server.thread_pool, read1, READ_SIZE)

        await pump(FrameReader(read, max_message_bytes), server, stop)

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("Connection to the client is lost! Shutting down the server.")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def serve_tcp(server: JsonRPCServer, host: str, port: int,
              max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """pygls' ``start_tcp``, with this module's reader."""
    stop = server._stop_event = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(writer)
        read: Read = lambda: reader.read(READ_SIZE)  # noqa: E731
        await pump(FrameReader(read, max_message_bytes), server, stop)
        server.shutdown()

    async def main() -> None:
        tcp: Any = await asyncio.start_server(connection, host, port)
        server._server = tcp
        async with tcp:
            await tcp.serve_forever()

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        log.debug("Server was cancelled")
