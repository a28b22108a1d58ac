"""Shared helpers for the benchmark scripts: chunker check, machine facts, RSS sampling, tables."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORK_DIR = Path(os.environ.get("CODESEARCH_BENCH_DIR", "/tmp/codesearch-bench"))

CHUNKER_NOTE = ""  # set by ensure_chunker(): "" for the real chunker, else what stood in for it

_DEF = re.compile(r"^[ \t]*(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:def|class|function)\s*\*?\s*([A-Za-z_$][\w$]*)",
                  re.MULTILINE)


def ensure_chunker() -> str:
    """Import ``codesearch.chunk.chunker``; if it is not there yet, install a crude stand-in and say so.

    The stand-in makes one chunk per file (or 60-line windows for longer files), named after the
    first ``def``/``class``/``function`` it sees. It exists only so the bench scripts run before
    the real chunker lands; numbers made with it are labelled in every output.
    """
    global CHUNKER_NOTE
    try:
        import codesearch.chunk.chunker  # noqa: F401
        CHUNKER_NOTE = ""
        return CHUNKER_NOTE
    except ModuleNotFoundError as exc:
        if exc.name != "codesearch.chunk.chunker":
            raise
    from codesearch.types import Chunk, ChunkedFile

    def chunk_file(path: str, text: str, language: str) -> ChunkedFile:
        lines = text.splitlines() or [""]
        chunks: list[Chunk] = []
        window, step = 60, 50
        starts = [0] if len(lines) <= window else list(range(0, len(lines) - 10, step))
        for start in starts:
            body = "\n".join(lines[start:start + window])
            if not body.strip():
                continue
            match = _DEF.search(body)
            symbol = match.group(1) if match else ""
            kind = "function" if match and len(starts) == 1 else "window"
            chunks.append(Chunk(path=path, language=language, kind=kind, symbol=symbol, container="",
                                start_line=start + 1, end_line=min(start + window, len(lines)), text=body))
        return ChunkedFile(tuple(chunks), parse_failed=False)

    module = types.ModuleType("codesearch.chunk.chunker")
    module.chunk_file = chunk_file  # type: ignore[attr-defined]
    sys.modules["codesearch.chunk.chunker"] = module
    CHUNKER_NOTE = ("codesearch.chunk.chunker is missing: a bench-only stand-in chunker was used (one chunk per "
                    "file, 60-line windows beyond that); numbers are provisional")
    print(f"WARNING: {CHUNKER_NOTE}", file=sys.stderr)
    return CHUNKER_NOTE


def machine_info(encoder: Any | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_gb": _mem_gb(),
        "chunker": CHUNKER_NOTE or "codesearch.chunk.chunker",
        "threads_env": os.environ.get("CODESEARCH_THREADS"),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if encoder is not None:
        inner = getattr(encoder, "inner", encoder)
        manifest = getattr(inner, "manifest", None)
        info["model"] = manifest.id if manifest is not None else type(inner).__name__
        info["model_key"] = getattr(inner, "model_key", "")
        info["provider"] = getattr(inner, "provider", "")
        info["provider_reason"] = getattr(inner, "provider_reason", "")
        if manifest is not None:
            info["max_length"] = manifest.max_length
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


@dataclass
class RssSampler:
    """Peak resident memory of this process (and optionally its children), sampled in a thread."""

    interval: float = 0.05
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


class CachingEncoder:
    """Wraps an Encoder and memoises query vectors, so weight sweeps don't re-encode queries."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._queries: dict[str, Any] = {}

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def model_key(self) -> str:
        return self.inner.model_key

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def provider_reason(self) -> str:
        return getattr(self.inner, "provider_reason", "")

    @property
    def manifest(self) -> Any:
        return getattr(self.inner, "manifest", None)

    def encode_documents(self, texts: Sequence[str]) -> Any:
        return self.inner.encode_documents(texts)

    def encode_queries(self, texts: Sequence[str]) -> Any:
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._queries]
        if missing:
            for text, vec in zip(missing, self.inner.encode_queries(missing), strict=True):
                self._queries[text] = vec
        return np.stack([self._queries[t] for t in texts]) if texts else self.inner.encode_queries([])


class MemoStore:
    """An engine's store with its retrieval calls memoised: a sweep scores one query's candidates
    under every variant without repeating the searches (the ranking is unchanged). One per query."""

    METHODS = frozenset({"lexical_search", "term_rows", "symbol_matches", "chunk_rows", "chunks_for_vectors",
                         "vectors_for_hashes", "definition_spans", "chunk_texts"})

    def __init__(self, store: Any) -> None:
        self._store = store
        self._memo: dict[tuple[Any, ...], Any] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name not in self.METHODS:
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(list(a) if _iterable(a) and not isinstance(a, (list, tuple, set, frozenset, dict)) else a
                         for a in args)  # generators are read once
            key = (name, *(_frozen(a) for a in args), *sorted(kwargs.items()))
            if key not in self._memo:
                self._memo[key] = method(*args, **kwargs)
            return self._memo[key]
        return call


def _iterable(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes))


def _frozen(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(value))
    return tuple(value) if _iterable(value) else value


class MemoIndex:
    """A vector index whose searches are memoised (one per query, like :class:`MemoStore`)."""

    def __init__(self, index: Any) -> None:
        self._index = index
        self._memo: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._index)

    def search(self, vector: Any, k: int) -> Any:
        if k not in self._memo:
            self._memo[k] = self._index.search(vector, k)
        return self._memo[k]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "{:.3f}") -> str:
    """A GitHub-flavoured Markdown table (pastes straight into docs)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return fmt.format(v)
        return "–" if v is None else str(v)

    return "\n".join([table_head(headers), *(table_row([cell(v) for v in row]) for row in rows)])


def table_head(headers: Sequence[str]) -> str:
    """The header of :func:`table`, for scripts that print rows as they come."""
    return "| " + " | ".join(headers) + " |\n|" + "|".join("---" for _ in headers) + "|"


def table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def emit_report(report: dict[str, Any], save: Path | None, as_json: bool,
                printer: Callable[[dict[str, Any]], None]) -> None:
    """Write the report's JSON to ``save`` (if given), then print it as JSON or through ``printer``."""
    text = json.dumps(report, indent=2, default=str) + "\n"
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text)
    if as_json:
        print(text, end="")
    else:
        printer(report)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
