"""What a query asks for, read from its text alone: its kind, the names it mentions, what it wants.

Three kinds of query weigh the evidence differently (:mod:`.scoring`):

- ``identifier``: one token shaped like a name: ``Console``, ``parse_retry_after``, ``getUser()``,
  ``rich.table.Table``, ``Table._render``, ``serde_json::Value``, ``Foo#bar``;
- ``mixed``: several words, at least one of them code (``how does Table._render wrap cells``);
- ``language``: plain words (``element-wise equal within a tolerance``).

A token counts as code inside a sentence when its shape says so: an underscore, a qualifier
(``.``, ``::``, ``#``, ``->``), call parentheses, back-quotes, a capital after a lower-case letter
(``HttpClient``, ``parseRetry``), or a capitalised word that does not start the sentence
(``where is the Console class``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_NAME = r"[A-Za-z_$][\w$]*"
_QUALIFIED = re.compile(rf"{_NAME}(?:(?:\.|::|#|->){_NAME})*")
_SEPARATOR = re.compile(r"\.|::|#|->")
_TRIM = "\"'`,;:!?()[]{}<>"
_CALL = re.compile(r"\((?:[^()]*)\)$")


class QueryKind(str, Enum):
    IDENTIFIER = "identifier"
    MIXED = "mixed"
    LANGUAGE = "language"


@dataclass(frozen=True)
class QualifiedName:
    """A name as typed: ``rich.table.Table`` → qualifier (rich, table), name Table."""

    qualifier: tuple[str, ...]
    name: str

    @classmethod
    def parse(cls, token: str) -> QualifiedName | None:
        text = _CALL.sub("", token.strip().strip("`")).rstrip(".")
        if not _QUALIFIED.fullmatch(text):
            return None
        *qualifier, name = _SEPARATOR.split(text)
        return cls(tuple(qualifier), name)


def as_identifier(query: str) -> QualifiedName | None:
    """The name a one-token query stands for, or None when the query is not one name."""
    text = query.strip()
    if not text or any(ch.isspace() for ch in text):
        return None
    return QualifiedName.parse(text)


def classify(query: str) -> QueryKind:
    if as_identifier(query) is not None:
        return QueryKind.IDENTIFIER
    return QueryKind.MIXED if mentioned_names(query) or mentioned_names(query, capitalised=True) else QueryKind.LANGUAGE


def mentioned_names(query: str, capitalised: bool = False) -> tuple[QualifiedName, ...]:
    """The tokens of a several-word query that are code by their shape (see the module docstring);
    with ``capitalised``, instead the capitalised words past the first that a kind word stands next
    to (``the Console class``) or that a location question asks for: a weaker sign, as sentences
    name things in capitals too (``Segments are produced by the Console render process``)."""
    words = query.split()
    if len(words) < 2:
        return ()
    found: dict[QualifiedName, None] = {}
    location = capitalised and asks_location(query)
    for position, word in enumerate(words):
        shape = _code_shape(word)
        if shape == "code" if not capitalised else (
                shape == "capitalised" and position > 0 and (location or _beside_kind_word(words, position))):
            name = QualifiedName.parse(word.strip(_TRIM.replace("(", "").replace(")", "")).rstrip(".,;:!?"))
            if name is not None:
                found.setdefault(name, None)
    return tuple(found)


_KIND_WORDS = frozenset({"class", "function", "method", "struct", "type", "interface", "trait", "module", "enum",
                         "object", "constructor", "macro", "package"})


def _beside_kind_word(words: list[str], position: int) -> bool:
    return any(0 <= i < len(words) and words[i].strip(_TRIM).lower() in _KIND_WORDS
               for i in (position - 1, position + 1))


def _code_shape(word: str) -> str:
    """``code`` (a name by its shape), ``capitalised`` (``Console``) or ``word``."""
    if word.startswith("`") and word.rstrip(".,;:!?").endswith("`"):
        return "code"
    core = word.strip(_TRIM).rstrip(".")
    if not _QUALIFIED.fullmatch(core) and not _CALL.search(word.rstrip(".,;:!?")):
        return "word"
    if "_" in core.strip("_") or _SEPARATOR.search(core) or word.rstrip(".,;:!?").endswith(")"):
        return "code"
    if re.search(r"[a-z][A-Z]", core):
        return "code"
    return "capitalised" if len(core) > 1 and core[0].isupper() and core[1:].islower() else "word"


_LOCATION = re.compile(
    r"^\s*(where\b|which (file|module|files|modules|class|package)\b|in which (file|module)\b|"
    r"(find|show|locate) (the )?(file|module)\b)|\b(implemented|defined|declared|lives?)\s*\??\s*$",
    re.IGNORECASE)


def asks_location(query: str) -> bool:
    """``where is X implemented``, ``which file defines Y``: a question answered by a file."""
    return bool(_LOCATION.search(query))


def mentions(query: str, words: tuple[str, ...]) -> bool:
    lower = query.lower()
    return any(re.search(rf"\b{w}", lower) for w in words)
