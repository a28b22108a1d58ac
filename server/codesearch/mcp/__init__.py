"""``codesearch-mcp``: semantic code search for coding agents over the Model Context Protocol.

Protocol code only: every search goes through :class:`codesearch.engine.Engine`, each root kept
indexed by the same folder keeper as the language server (:mod:`codesearch.service.folder`), and an
index that an editor's ``codesearch-ls`` (or another agent's server) already keeps is read, not written.
"""
