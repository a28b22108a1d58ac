"""Tokens for the lexical index: identifiers split the way developers read them."""

from __future__ import annotations

import re
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "if",
    "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "so", "that", "the", "then",
    "this", "to", "was", "what", "when", "where", "which", "who", "why", "will", "with", "without",
    "you", "your", "can", "should", "would", "we", "our", "us", "function", "method", "code",
})


def split_identifier(identifier: str) -> list[str]:
    """``parseRetryAfter`` → parse, retry, after; ``HTTP_client2`` → http, client, 2."""
    parts: list[str] = []
    for piece in re.split(r"[_$\-.]+", identifier):
        parts.extend(m.group(0).lower() for m in _CAMEL.finditer(piece))
    return parts


@lru_cache(maxsize=1 << 18)
def _terms_of(identifier: str) -> tuple[str, ...]:
    parts = split_identifier(identifier)
    whole = identifier.lower().strip("_$").replace("$", "")
    return (*parts, whole) if len(parts) > 1 and whole else tuple(parts)


def identifier_terms(text: str) -> list[str]:
    """Every identifier in ``text`` as its parts, plus the whole identifier when it has several."""
    terms: list[str] = []
    for ident in _IDENT.findall(text):
        terms.extend(_terms_of(ident))
    return terms


def index_text(text: str) -> str:
    return " ".join(identifier_terms(text))


def query_terms(query: str) -> list[str]:
    """Distinct meaningful terms of a query, in order, for an OR match."""
    seen: dict[str, None] = {}
    for term in identifier_terms(query):
        if term not in STOPWORDS and (len(term) > 1 or term.isdigit()):
            seen.setdefault(term, None)
    return list(seen)


def fts_query(terms: list[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def looks_like_identifier(query: str) -> bool:
    """``parse_retry_after``, ``HttpClient.send``, ``getUser()``: a symbol, not a sentence."""
    q = query.strip().rstrip("()")
    if not q or " " in q:
        return False
    return bool(re.fullmatch(r"[A-Za-z_$][\w$]*((\.|::|#)[A-Za-z_$][\w$]*)*", q)) and (
        "_" in q or "." in q or "::" in q or "#" in q or any(c.isupper() for c in q[1:])
        or q.islower()
    )
