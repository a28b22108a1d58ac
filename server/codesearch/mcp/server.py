"""The MCP tools: ``search``, ``find_related`` and ``index_status`` over one :class:`Workspace`.

Each tool answers twice: a structured result (its output schema is in :mod:`.models`) and a compact
text rendering (:mod:`.render`) for the clients that hand the model text. Tools are plain functions:
the SDK runs them in worker threads, so a search never holds up the protocol. An argument the
server cannot use is a tool error with a message that says why; the server answers the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .. import __version__
from ..engine import EngineError
from ..service.folder import FolderSnapshot
from .models import Hit, RelatedOutput, RootStatus, SearchOutput, StatusOutput
from .render import Item, Rendered, render, snippet_lines
from .workspace import RootHit, Workspace

SERVER_NAME = "codesearch"
MAX_K = 100
DEFAULT_SNIPPET_LINES = 8
DEFAULT_MAX_TOKENS = 2000
MIN_MAX_TOKENS = 50
MAX_MAX_TOKENS = 50_000

INSTRUCTIONS = """\
codesearch finds code in this workspace by meaning and by name, from a local index kept up to date
as files change. Prefer `search` to grep and to reading whole files when you do not yet know where
something lives: describe the behaviour in plain words ("where are HTTP retries backed off") or give
an identifier ("parse_retry_after"). Each result is path:start-end with the symbol and the first
lines of the code; read just those lines next. `find_related` takes a definition (file plus line or
symbol) and returns similar code elsewhere: other implementations of the same idea, duplicated logic,
the tests or callers' counterparts. `index_status` says whether the index is complete."""

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

K = Annotated[int, Field(ge=1, le=MAX_K, description="how many results, at most")]
SnippetLines = Annotated[int, Field(ge=0, le=200, description="lines of code to show per result (0: none)")]
MaxTokens = Annotated[int, Field(ge=MIN_MAX_TOKENS, le=MAX_MAX_TOKENS, description=(
    "budget for the whole answer in estimated tokens (characters / 4): snippets, then results, are "
    "left out past it"))]

T = TypeVar("T")


def _run(fn: Callable[..., T], *args: Any) -> T:
    """Problems the caller can act on become tool errors; anything else is the SDK's internal error."""
    try:
        return fn(*args)
    except EngineError as exc:
        raise ToolError(str(exc)) from exc


def hit_model(item: RootHit, snippet: str, multi_root: bool) -> Hit:
    data: dict[str, Any] = {**item.hit.to_json(), "snippet": snippet}
    if multi_root or item.repo:
        data["root"] = str(item.root)
    if item.repo:
        data["repo"] = item.repo
    return Hit.model_validate(data)


def hit_header(item: RootHit, multi_root: bool) -> str:
    hit = item.hit
    path = hit.path
    if item.repo:
        path = f"{item.repo}:{hit.path}"
    elif multi_root:
        path = str(item.root / hit.path)
    name = hit.qualified_name or "-"
    return f"{path}:{hit.start_line}-{hit.end_line} {name} [{hit.kind}] {hit.score:.2f}"


def _items(hits: list[RootHit], lines: int, multi_root: bool) -> list[Item]:
    return [Item(hit_header(h, multi_root), snippet_lines(h.text or h.hit.snippet, lines)) for h in hits]


def _hits(hits: list[RootHit], items: list[Item], shown: Rendered, multi_root: bool) -> list[Hit]:
    return [hit_model(h, shown.snippet(i, items[i]), multi_root) for i, h in enumerate(hits[:shown.shown])]


def _result(text: str, data: SearchOutput | RelatedOutput | StatusOutput) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=data.model_dump(mode="json", exclude_none=True))


def search_result(workspace: Workspace, query: str, k: int, language: str | None, glob: str | None,
                  path: str | None, lines: int, max_tokens: int) -> CallToolResult:
    found = workspace.search(query, k, language, glob, path)
    multi = len(workspace.folders) > 1
    head = [f'{len(found.hits)} results for "{query.strip()}"' if found.hits else f'no results for "{query.strip()}"']
    head += [f"note: {note}" for note in found.notes]
    if found.indexing and not found.notes:
        head.append("note: indexing is under way; results may be incomplete")
    items = _items(found.hits, lines, multi)
    shown = render(head, items, max_tokens)
    data = SearchOutput(query=query.strip(), results=_hits(found.hits, items, shown, multi), found=len(found.hits),
                        tokens=shown.tokens, truncated=shown.truncated, indexing=found.indexing, notes=found.notes)
    return _result(shown.text, data)


def related_result(workspace: Workspace, path: str, line: int | None, symbol: str | None, k: int, lines: int,
                   max_tokens: int) -> CallToolResult:
    related = workspace.related(path, line, symbol, k)
    multi = len(workspace.folders) > 1
    source = related.source
    head = [f"{len(related.hits)} pieces of code like {hit_header(source, multi).rsplit(' ', 1)[0]}"]
    head += [f"note: {note}" for note in related.notes]
    items = _items(related.hits, lines, multi)
    shown = render(head, items, max_tokens)
    data = RelatedOutput(source=hit_model(source, source.hit.snippet, multi),
                         results=_hits(related.hits, items, shown, multi), found=len(related.hits),
                         tokens=shown.tokens, truncated=shown.truncated, notes=related.notes)
    return _result(shown.text, data)


def root_status(snap: FolderSnapshot, owner: str, watching: bool) -> RootStatus:
    percent = round(100.0 * snap.embedded / snap.chunks, 1) if snap.chunks else 0.0
    return RootStatus(root=snap.root, state=snap.state.value, message=snap.message, files=snap.files,
                      chunks=snap.chunks, embedded=snap.embedded, embedded_percent=percent, pending=snap.pending,
                      model=snap.model, provider=snap.provider, read_only=owner == "another process",
                      index_owner=owner, watching=watching, index_dir=snap.index_dir)


def status_text(root: RootStatus) -> str:
    model = f"; model {root.model} on {root.provider}" if root.model else ""
    if root.read_only:
        owner = ("read-only: another codesearch process (an editor's language server, another agent's "
                 "codesearch-mcp or `codesearch index`) keeps this index; this server reads it")
    else:
        owner = f"index kept by {root.index_owner}" + ("" if root.watching else " (not watching for changes)")
    state = root.state if root.message in ("", root.state) else f"{root.state} ({root.message})"
    return (f"{root.root}: {state}; {root.files} files, {root.chunks} chunks, "
            f"{root.embedded_percent:g}% embedded{model}; {owner}")


def status_result(workspace: Workspace) -> CallToolResult:
    watched = {w.root for w in workspace.watchers}
    roots = [root_status(snap, owner, Path(snap.root) in watched) for snap, owner in workspace.snapshots()]
    data = StatusOutput(version=__version__, roots=roots)
    return _result("\n".join(status_text(r) for r in roots) or "no roots", data)


def create_server(workspace: Workspace) -> MCPServer[Any]:
    app: MCPServer[Any] = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__,
                                    log_level="WARNING")

    @app.tool(annotations=READ_ONLY)
    def search(
        query: Annotated[str, Field(description="what the code does, in plain words, or an identifier")],
        k: K = 10,
        language: Annotated[str | None, Field(description=(
            "only this language: python, typescript, tsx, javascript, go, rust, java, c, cpp, csharp, ruby, "
            "php, kotlin, swift, markdown, ...; several separated by commas"))] = None,
        glob: Annotated[str | None, Field(description=(
            "only paths matching this glob: 'src/**/*.py', '*.ts' (any folder), 'tests/' (a folder)"))] = None,
        path: Annotated[str | None, Field(description=(
            "only below this folder, or only this file: relative to the workspace root, or absolute"))] = None,
        snippet_lines: SnippetLines = DEFAULT_SNIPPET_LINES,
        max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
    ) -> Annotated[CallToolResult, SearchOutput]:
        """Search the workspace's code by meaning and by identifier (semantic + keyword search).

        Returns the best matching functions, methods and classes as path:start-end, symbol, kind and
        score, each with its first lines of code. Use it before grep or reading files to find where
        something is implemented."""
        return _run(search_result, workspace, query, k, language, glob, path, snippet_lines, max_tokens)

    @app.tool(annotations=READ_ONLY)
    def find_related(
        path: Annotated[str, Field(description="the file holding the definition: relative to the root, or absolute")],
        line: Annotated[int | None, Field(ge=1, description="a line inside the definition (1-based)")] = None,
        symbol: Annotated[str | None, Field(description="the definition's name, e.g. 'parse' or 'Client.send'")] = None,
        k: K = 10,
        snippet_lines: SnippetLines = DEFAULT_SNIPPET_LINES,
        max_tokens: MaxTokens = DEFAULT_MAX_TOKENS,
    ) -> Annotated[CallToolResult, RelatedOutput]:
        """Find code elsewhere that is semantically close to one definition: other implementations of the
        same idea, duplicated logic, counterparts in other modules or languages.

        Name the definition by file plus line and/or symbol. The definition itself is left out."""
        return _run(related_result, workspace, path, line, symbol, k, snippet_lines, max_tokens)

    @app.tool(annotations=READ_ONLY)
    def index_status() -> Annotated[CallToolResult, StatusOutput]:
        """How complete the index is (files, chunks, % embedded), the model and where it runs, and whether
        another process (an editor's language server, another agent) keeps the index."""
        return _run(status_result, workspace)

    return app
