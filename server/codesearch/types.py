"""Plain data shared by every stage of the pipeline (walk → chunk → embed → index → query)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A searchable piece of one source file.

    ``kind`` is one of: ``function``, ``method``, ``class`` (also struct/interface/trait/module
    definitions), ``module`` (top-level code between definitions) or ``window`` (fallback line
    windows for files without a grammar or that failed to parse).  A definition too long for the
    encoder is split into several chunks with the same symbol and ``part`` 1, 2, ...; each window
    repeats the definition's signature line(s) at its top.
    """

    path: str  # workspace-relative, POSIX separators
    language: str
    kind: str
    symbol: str  # the definition's own name; "" for module code and windows
    container: str  # enclosing class/module names joined with "."; "" at top level
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    text: str
    part: int = 0  # 0 = the whole definition; 1.. = window number of a split definition

    @property
    def qualified_name(self) -> str:
        if self.container and self.symbol:
            return f"{self.container}.{self.symbol}"
        return self.symbol or self.container


@dataclass(frozen=True, slots=True)
class ChunkedFile:
    """What the chunker made of one file; ``parse_failed`` means the fallback was used."""

    chunks: tuple[Chunk, ...]
    parse_failed: bool = False
    error: str = ""


class SearchMode(str, Enum):
    """``fused`` is the product; ``dense`` and ``lexical`` alone exist for benchmarks and fallbacks."""

    FUSED = "fused"
    DENSE = "dense"
    LEXICAL = "lexical"


@dataclass(frozen=True, slots=True)
class SearchHit:
    path: str  # workspace-relative, POSIX
    start_line: int  # 1-based inclusive; where the definition starts, for a window of a long one too
    end_line: int  # where that definition ends
    symbol: str
    container: str
    kind: str
    language: str
    score: float
    snippet: str
    sources: tuple[str, ...] = field(default=())  # which retrievers found it: "dense", "lexical", "symbol"
    match_start_line: int = 0  # the lines of the chunk that matched (a window of a long definition);
    match_end_line: int = 0  # 0: the same as start_line/end_line

    @property
    def qualified_name(self) -> str:
        if self.container and self.symbol:
            return f"{self.container}.{self.symbol}"
        return self.symbol or self.container

    def to_json(self) -> dict[str, Any]:
        """The one JSON shape of a hit, for the CLI, the language server and the MCP server."""
        return {
            "path": self.path, "start_line": self.start_line, "end_line": self.end_line,
            "symbol": self.symbol, "container": self.container, "qualified_name": self.qualified_name,
            "kind": self.kind, "language": self.language, "score": round(float(self.score), 4),
            "snippet": self.snippet, "sources": list(self.sources),
            "match_start_line": self.match_start_line or self.start_line,
            "match_end_line": self.match_end_line or self.end_line,
        }


@runtime_checkable
class Encoder(Protocol):
    """Turns text into L2-normalised vectors. Tests use a seeded fake; production uses ONNX."""

    @property
    def dimension(self) -> int: ...

    @property
    def model_key(self) -> str:
        """Identifies the model and its exact weights; vectors of different keys never mix."""
        ...

    @property
    def model_id(self) -> str:
        """The model's name for people: a hub id, a folder, ``fake`` in tests."""
        ...

    @property
    def provider(self) -> str:
        """The execution provider actually in use, e.g. ``CPUExecutionProvider``."""
        ...

    @property
    def provider_reason(self) -> str:
        """Why that provider, e.g. why CUDA was not used."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> Vectors: ...

    def encode_documents(self, texts: Sequence[str]) -> Vectors: ...
