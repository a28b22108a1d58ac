"""The structured results of the MCP tools; their JSON schemas are the tools' output schemas."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Hit(BaseModel):
    """One piece of code: ``SearchHit.to_json()`` (the shape the CLI and the language server use), with
    the snippet cut to the token budget, and the root when the server has several."""

    path: str = Field(description="path relative to its root, POSIX separators")
    start_line: int = Field(description="first line, 1-based: where the definition starts")
    end_line: int = Field(description="last line, inclusive: where the definition ends")
    symbol: str = Field(description="the definition's name; empty for module code and line windows")
    container: str = Field(description="enclosing class or module names, dot-separated")
    qualified_name: str
    kind: str = Field(description="function, method, class, module or window")
    language: str
    score: float = Field(description="search: the fused relevance score; find_related: cosine similarity")
    snippet: str = Field(description="the first lines of the code, dedented, blank lines dropped")
    sources: list[str] = Field(description="which retrievers found it: dense, lexical, symbol")
    match_start_line: int = Field(description="first line of the part that matched (a window of a long "
                                  "definition); the snippet is from it")
    match_end_line: int = Field(description="last line of the part that matched, inclusive")
    root: str | None = Field(default=None, description="the root folder, when the server has several")
    repo: str | None = Field(default=None, description="the repository, for a hit from a mounted shards folder")


class SearchOutput(BaseModel):
    query: str
    results: list[Hit]
    found: int = Field(description="results found before the token budget left any out")
    tokens: int = Field(description="estimated tokens (characters / 4) of the text rendering")
    truncated: bool = Field(description="the token budget left out results or snippet lines")
    indexing: bool = Field(description="indexing is under way: results may be incomplete")
    notes: list[str] = Field(default_factory=list)


class RelatedOutput(BaseModel):
    source: Hit = Field(description="the definition the results are like")
    results: list[Hit]
    found: int
    tokens: int
    truncated: bool
    notes: list[str] = Field(default_factory=list)


class RootStatus(BaseModel):
    root: str
    state: str = Field(description="indexing, ready or error")
    message: str
    files: int
    chunks: int
    embedded: int
    embedded_percent: float
    pending: int = Field(description="chunks still waiting for a vector")
    model: str
    provider: str
    read_only: bool = Field(description="another process keeps this index; this server only reads it")
    index_owner: str = Field(description="who keeps the index fresh: this server, another process, unknown")
    watching: bool = Field(description="this server watches the folder for changes")
    index_dir: str


class StatusOutput(BaseModel):
    version: str
    roots: list[RootStatus]
