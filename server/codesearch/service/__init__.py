"""Keeping workspaces indexed inside a long-running process (the language server, the MCP server):
one worker thread per workspace folder, file watching, debouncing."""
