"""``codesearch-mcp`` / ``python -m codesearch.mcp``: serve the MCP tools over stdio."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from ..engine import EngineConfig
    from ..shards.search import ShardSet


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="codesearch-mcp",
        description="MCP server for codesearch (stdio): semantic code search for coding agents. Keeps each "
                    "root indexed, or reads the index an editor's codesearch-ls already keeps.")
    parser.add_argument("--path", dest="paths", action="append", type=Path, metavar="ROOT",
                        help="a folder to index and search (repeatable; default: the current directory)")
    parser.add_argument("--model", default=os.environ.get("CODESEARCH_MODEL") or None,
                        help="embedding model: an exported folder, a Hugging Face folder or id (default: the "
                             "bundled model; must match the editor's to share its index)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="paths to leave out, gitignore-style (repeatable)")
    parser.add_argument("--no-watch", action="store_true", help="do not watch the roots for file changes")
    parser.add_argument("--shards", type=Path, default=None, metavar="DIR",
                        help="a folder built by `codesearch shards build`: its repositories are searched with the "
                             "roots, read-only (hits name their repo)")
    parser.add_argument("--log-level", default=os.environ.get("CODESEARCH_MCP_LOG_LEVEL", "WARNING"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                        help="log level of the server's log on stderr (default WARNING)")
    parser.add_argument("--log-file", default=None, help="write the log to this file instead of stderr")
    parser.add_argument("--version", action="version", version=f"codesearch-mcp {__version__}")
    args = parser.parse_args(argv)
    args.paths = args.paths or [Path.cwd()]
    for root in args.paths:
        if not root.expanduser().is_dir():
            parser.error(f"--path {root}: not a folder")
    return args


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # the SDK logs every tool error at INFO; a client's bad argument is not news
    logging.getLogger("mcp").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def open_shards(folder: Path, config: EngineConfig) -> ShardSet:
    from ..engine import EngineError
    from ..shards.search import ShardSet

    log = logging.getLogger("codesearch.mcp")
    try:
        shards = ShardSet.open(folder, config, on_message=log.info)
    except EngineError as exc:
        raise SystemExit(f"codesearch-mcp: --shards {folder}: {exc}") from exc
    for problem in shards.problems:
        log.warning("shards: %s", problem)
    return shards


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds the server so that indexes are saved and locks released


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_file)
    from ..engine import EngineConfig
    from .server import create_server
    from .workspace import Workspace

    config = EngineConfig(model=args.model, device=args.device, exclude=tuple(args.exclude))
    shards = open_shards(args.shards, config) if args.shards else None
    workspace = Workspace(args.paths, config, watch=not args.no_watch, shards=shards)
    signal.signal(signal.SIGTERM, _terminate)
    workspace.start()
    try:
        create_server(workspace).run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second request to end ends at once
        workspace.stop()
        if shards is not None:
            shards.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
