"""``codesearch-ls``: a language server that keeps workspaces indexed and answers searches.

Protocol code only: every search and every index update goes through :class:`codesearch.engine.Engine`.
"""

from __future__ import annotations

from .server import CodesearchLanguageServer, create_server

__all__ = ["CodesearchLanguageServer", "create_server"]
