"""``codesearch-ls`` / ``python -m codesearch.lsp``: start the language server over stdio or TCP."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import BinaryIO

from .. import __version__
from .framing import DEFAULT_MAX_MESSAGE_BYTES

DEFAULT_PORT = 2087


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="codesearch-ls",
        description="Language server for codesearch: keeps the workspace folders indexed and answers "
                    "codesearch/search and workspace/symbol with semantic code search.")
    parser.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true", help="listen on 127.0.0.1 instead of using stdio")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--log-level", default=os.environ.get("CODESEARCH_LS_LOG_LEVEL", "WARNING"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                        help="log level of the server's own log on stderr (default WARNING)")
    parser.add_argument("--log-file", default=None, help="write the log to this file instead of stderr")
    parser.add_argument("--max-message-bytes", type=_positive_int,
                        default=os.environ.get("CODESEARCH_LS_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_MESSAGE_BYTES)),
                        help="larger messages from the client are skipped, with a logged reason "
                             f"(default {DEFAULT_MAX_MESSAGE_BYTES >> 20} MiB; CODESEARCH_LS_MAX_MESSAGE_BYTES)")
    parser.add_argument("--version", action="version", version=f"codesearch-ls {__version__}")
    args, unknown = parser.parse_known_args(argv)
    # Clients add their own flags (vscode-languageclient: --clientProcessId=N); ignore them.
    args.ignored = unknown
    return args


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of bytes, not {text}")
    return value


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pygls logs every message body at INFO; keep that out unless debugging the protocol itself.
    logging.getLogger("pygls").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_drop_invalid_params)


def _drop_invalid_params(record: logging.LogRecord) -> bool:
    """pygls logs a traceback for every request answered with InvalidParams: a client's mistake."""
    from pygls.exceptions import JsonRpcInvalidParams

    if record.exc_info and isinstance(record.exc_info[1], JsonRpcInvalidParams):
        return False
    # a request with malformed params: the server answers InvalidParams and logs one line itself
    return not str(record.msg).startswith("Unable to deserialize message")


def protect_stdout() -> tuple[BinaryIO, BinaryIO]:
    """The protocol gets its own copy of stdout; fd 1 and ``print`` go to stderr from now on,
    so nothing a library prints can corrupt the JSON-RPC stream."""
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return sys.stdin.buffer, protocol_out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_file)
    log = logging.getLogger("codesearch.lsp")
    if args.ignored:
        log.info("ignoring unknown arguments: %s", " ".join(args.ignored))
    from .server import create_server
    from .transport import serve_stdio, serve_tcp

    server = create_server()
    try:
        if args.tcp:
            log.warning("codesearch-ls listening on 127.0.0.1:%d", args.port)
            serve_tcp(server, "127.0.0.1", args.port, args.max_message_bytes)
        else:
            stdin, stdout = protect_stdout()
            serve_stdio(server, stdin, stdout, args.max_message_bytes)
    finally:
        server.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
