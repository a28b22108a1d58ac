"""What makes a JSON-RPC message acceptable, checked before pygls sees it.

pygls drops (or mis-reads) messages that are not well-formed JSON-RPC: invalid JSON, a request
without a method, an id that is an object. The LSP base protocol answers them: Parse error
(-32700) for bytes that are not JSON, Invalid Request (-32600) for JSON that is not a request,
notification or response, with the request's id when it has a usable one and null otherwise.

Params are structured by lsprotocol's converter, made strict about strings here: by default it
turns ``5``, ``null`` or an object into the string ``"5"``, ``"None"``, ``"{...}"``, so a
``workspace/symbol`` with a non-string ``query`` would be answered instead of refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import cattrs

PARSE_ERROR = -32700
INVALID_REQUEST = -32600

MsgId = int | str | None


@dataclass(frozen=True)
class Rejected:
    """Why a message is not accepted, as the error to answer it with."""

    code: int
    message: str
    id: MsgId = None


def parse_message(body: bytes) -> dict[str, Any] | Rejected:
    """The message as a JSON object, or the error that answers it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return Rejected(PARSE_ERROR, f"Parse error: the message is not JSON ({_short(exc)})")
    return check_message(data)


def check_message(data: Any) -> dict[str, Any] | Rejected:
    if not isinstance(data, dict):
        return Rejected(INVALID_REQUEST, f"Invalid Request: a message is a JSON object, not {_kind(data)}")
    msg_id = data.get("id")
    usable_id = msg_id if _is_id(msg_id) else None
    if data.get("jsonrpc") != "2.0":
        return Rejected(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', usable_id)
    if "id" in data and not _is_id(msg_id) and not (msg_id is None and _is_response(data)):
        return Rejected(INVALID_REQUEST, f"Invalid Request: an id is an integer or a string, not {_kind(msg_id)}")
    if "method" not in data:
        if "id" in data and _is_response(data):
            return data
        return Rejected(INVALID_REQUEST, "Invalid Request: a request or notification needs a method", usable_id)
    if not isinstance(data["method"], str):
        return Rejected(INVALID_REQUEST, f"Invalid Request: method is a string, not {_kind(data['method'])}",
                        usable_id)
    params = data.get("params")
    if params is not None and not isinstance(params, (dict, list)):
        return Rejected(INVALID_REQUEST, f"Invalid Request: params is an object or an array, not {_kind(params)}",
                        usable_id)
    return data


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _is_response(data: dict[str, Any]) -> bool:
    return "result" in data or "error" in data


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", float: "a number",
            int: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:119] + "…"


def strict_str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {_kind(value)}")
    return value


def refuse_non_strings(converter: cattrs.Converter) -> None:
    """Make ``converter`` refuse non-strings where the protocol says string."""
    converter.register_structure_hook(str, strict_str)
