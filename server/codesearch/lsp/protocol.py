"""What crosses the wire: typed params of our own requests, conversions of hits to LSP shapes, and
a protocol class that answers malformed requests instead of dropping them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import attrs
import cattrs
from lsprotocol import converters, types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.uris import from_fs_path, to_fs_path

from ..languages import UnknownLanguage, check_languages
from ..types import SearchHit
from .validation import refuse_non_strings

log = logging.getLogger(__name__)

SEARCH_METHOD = "codesearch/search"
DEFAULT_LIMIT = 20
MAX_LIMIT = 200

SYMBOL_KINDS: dict[str, types.SymbolKind] = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "class": types.SymbolKind.Class,
    "module": types.SymbolKind.Module,
    "window": types.SymbolKind.File,
}


# params ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchParams:
    """``codesearch/search`` params: ``{query, limit?, languages?, pathGlob?, folder?}``."""

    query: str
    limit: int = DEFAULT_LIMIT
    languages: tuple[str, ...] = ()
    path_glob: str | None = None
    folder: str | None = None  # a workspace folder (URI, path or name) or a folder inside one

    @classmethod
    def from_json(cls, raw: Any) -> SearchParams:
        """Checked strictly (a number is not a query); raises ``JsonRpcInvalidParams`` saying why."""
        if not isinstance(raw, dict):
            raise _invalid("codesearch/search takes an object: {query, limit?, languages?, pathGlob?, folder?}")
        query = raw.get("query")
        if not isinstance(query, str) or not query.strip():
            raise _invalid("query must be a non-empty string")
        return cls(query=query.strip(), limit=_limit(raw.get("limit")), languages=_languages(raw.get("languages")),
                   path_glob=_optional_str(raw, "pathGlob", "pathGlob must be a string"),
                   folder=_optional_str(raw, "folder", "folder must be a folder URI, path or name"))


def _invalid(message: str) -> JsonRpcInvalidParams:
    return JsonRpcInvalidParams(message)


def _limit(limit: Any) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or int(limit) != limit or limit < 1:
        raise _invalid(f"limit must be a positive integer, not {limit!r}")
    return min(int(limit), MAX_LIMIT)


def _languages(languages: Any) -> tuple[str, ...]:
    if not languages:
        return ()
    if isinstance(languages, str):
        languages = [languages]
    if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
        raise _invalid("languages must be a list of language names")
    try:
        return check_languages(languages)
    except UnknownLanguage as exc:
        raise _invalid(str(exc)) from exc


def _optional_str(raw: dict[str, Any], key: str, message: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise _invalid(message)
    return value or None


@attrs.define
class SearchRequest:
    """A ``codesearch/search`` request as pygls structures it: the params arrive typed."""

    id: int | str
    params: SearchParams
    method: str = SEARCH_METHOD
    jsonrpc: str = "2.0"


def make_converter() -> cattrs.Converter:
    """lsprotocol's converter, plus our own request types (checked by their ``from_json``)."""
    converter = converters.get_converter()
    converter.register_structure_hook(SearchParams, lambda raw, _: SearchParams.from_json(raw))
    refuse_non_strings(converter)
    return converter


# protocol ------------------------------------------------------------------------------------------
@attrs.define
class _RejectedRequest:
    """A request whose params did not fit the method's type: answered with an error, never run."""

    id: int | str
    method: str
    error: JsonRpcException


class CodesearchProtocol(LanguageServerProtocol):
    """pygls drops requests whose params fail to deserialise; answer them with InvalidParams instead."""

    @lru_cache  # noqa: B019 - as in the base class; one protocol object per process
    def get_message_type(self, method: str) -> type[Any] | None:
        return SearchRequest if method == SEARCH_METHOD else super().get_message_type(method)

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str):
                detail = _describe(exc.__cause__) if exc.__cause__ is not None else ""
                error = JsonRpcInvalidParams(f"invalid params for {data['method']}" + (f": {detail}" if detail else ""))
                return _RejectedRequest(id=data["id"], method=data["method"], error=error)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _RejectedRequest):
            log.warning("rejected %s: %s", message.method, message.error.message)
            self._send_response(message.id, None, message.error.to_response_error())
            return
        super().handle_message(message)


def _describe(exc: BaseException) -> str:
    """One line from a (possibly nested) validation error."""
    parts: list[str] = []

    def walk(e: BaseException) -> None:
        subs = getattr(e, "exceptions", None)
        if subs:
            for sub in subs:
                walk(sub)
        elif isinstance(e, KeyError) and e.args:
            parts.append(f"missing {e.args[0]}")
        elif isinstance(e, JsonRpcException):
            parts.append(e.message)
        else:
            parts.append(str(e))

    walk(exc)
    return "; ".join(p for p in parts if p)[:300]


# conversions -----------------------------------------------------------------------------------------
def path_to_uri(path: Path) -> str:
    return from_fs_path(str(path)) or path.as_uri()


def uri_to_path(uri: str) -> Path | None:
    try:
        path = to_fs_path(uri)
    except Exception:
        return None
    return Path(path) if path else None


def hit_range(hit: SearchHit) -> types.Range:
    """0-based lines: from the start of the chunk's first line to the start of the line after it."""
    return types.Range(start=types.Position(line=max(hit.start_line - 1, 0), character=0),
                       end=types.Position(line=max(hit.end_line, hit.start_line), character=0))


def hit_json(root: Path, hit: SearchHit) -> dict[str, Any]:
    """The engine's hit (``SearchHit.to_json``) with the file's URI and an LSP range added."""
    r = hit_range(hit)
    return {
        **hit.to_json(),
        "uri": path_to_uri(root / hit.path),
        "range": {"start": {"line": r.start.line, "character": 0}, "end": {"line": r.end.line, "character": 0}},
    }


def hit_symbol(root: Path, hit: SearchHit) -> types.SymbolInformation:
    name = hit.qualified_name or f"{hit.path.rpartition('/')[2]}:{hit.start_line}"
    return types.SymbolInformation(
        name=name,
        kind=SYMBOL_KINDS.get(hit.kind, types.SymbolKind.File),
        location=types.Location(uri=path_to_uri(root / hit.path), range=hit_range(hit)),
        container_name=hit.path,
    )
