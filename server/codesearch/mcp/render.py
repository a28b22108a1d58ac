"""What an agent reads: hits as compact text, snippets cut to fit a token budget.

Tokens are estimated as characters / 4 (:data:`CHARS_PER_TOKEN`), the usual rule of thumb for
code and English with today's LLM tokenizers; the estimate is what the budget caps, and what the
answer reports as ``tokens``. The budget applies to the text rendering; the structured result
carries the same hits and the same (cut) snippets.

The budget is spent in rank order: first a header line per hit (as many hits as fit), then the
snippets' lines, best hit first, until the next line would not fit.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

CHARS_PER_TOKEN = 4
SNIPPET_INDENT = "  "
MAX_LINE_CHARS = 160


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def snippet_lines(text: str, limit: int) -> list[str]:
    """The first ``limit`` non-blank lines of a chunk, dedented, long lines cut."""
    if limit <= 0:
        return []
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()][:limit]
    lines = textwrap.dedent("\n".join(lines)).splitlines()
    return [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS - 1] + "…" for ln in lines]


@dataclass(frozen=True)
class Item:
    header: str
    lines: list[str]  # the snippet, already capped at the lines asked for


@dataclass(frozen=True)
class Rendered:
    text: str
    shown: int  # items whose header fit
    kept_lines: list[int]  # snippet lines kept, per shown item
    tokens: int
    truncated: bool  # the budget left out items or snippet lines

    def snippet(self, index: int, item: Item) -> str:
        return "\n".join(item.lines[:self.kept_lines[index]])


def render(head: list[str], items: list[Item], max_tokens: int) -> Rendered:
    """``head`` lines (always kept), then as many items as ``max_tokens`` allows."""
    budget = max_tokens * CHARS_PER_TOKEN
    used = sum(len(line) + 1 for line in head)
    footer = ""
    shown = _fit_headers(items, budget - used)
    if shown < len(items):  # room for the footer that says so, with the longest count it could show
        shown = _fit_headers(items, budget - used - len(_footer(0, len(items))) - 1)
        footer = _footer(shown, len(items))
    used += sum(len(item.header) + 1 for item in items[:shown]) + (len(footer) + 1 if footer else 0)
    kept = [0] * shown
    full = True
    for i, item in enumerate(items[:shown]):
        for line in item.lines:
            cost = len(SNIPPET_INDENT) + len(line) + 1
            if used + cost > budget:
                full = False
                break
            used += cost
            kept[i] += 1
        if not full:
            break
    out = list(head)
    for i, item in enumerate(items[:shown]):
        out.append(item.header)
        out.extend(SNIPPET_INDENT + line for line in item.lines[:kept[i]])
    if footer:
        out.append(footer)
    text = "\n".join(out)
    truncated = shown < len(items) or any(kept[i] < len(item.lines) for i, item in enumerate(items[:shown]))
    return Rendered(text=text, shown=shown, kept_lines=kept, tokens=estimate_tokens(text), truncated=truncated)


def _fit_headers(items: list[Item], budget: int) -> int:
    used = 0
    for n, item in enumerate(items):
        used += len(item.header) + 1
        if used > budget:
            return n
    return len(items)


def _footer(shown: int, total: int) -> str:
    if shown >= total:
        return ""
    return f"({total - shown} more results left out by the token budget: raise max_tokens to see them)"
