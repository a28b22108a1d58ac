"""codesearch: local semantic code search (engine, CLI and language server)."""

__version__ = "0.1.0"
