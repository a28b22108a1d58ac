"""Queries of the repository benchmark, made from the definitions of one repository.

Three kinds, each with a target (a path and 1-based line span, or a path alone):

- ``doc``: the first paragraph of a definition's doc comment, with the definition's own name masked;
  the comment is deleted from the indexed copy, so the words cannot be matched literally.
- ``ident``: identifiers as people type them: a bare name, ``Class.method`` (``::`` or ``#`` where the
  language writes it so), a single-word class name, a name typed in lower case.
- ``file``: "where is X implemented", answered by a file: from a file's own header comment (deleted
  from the indexed copy as well) or from a much-used class.

Only implementation files give targets (no tests, examples, benchmarks, stubs or docs); sampling is
seeded, so the same sources always give the same queries.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from repo_defs import Comment, Definition, FileFacts

DOC_QUERIES = 30
IDENT_QUERIES = 20
FILE_QUERIES = 12
MAX_DOC_PER_FILE = 3  # at least; more where few files have documented definitions
MIN_WORDS = 4
MAX_WORDS = 40

IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*$")
_NOT_IMPLEMENTATION = re.compile(
    r"(^|/)(tests?|__tests__|spec|specs|testing|testdata|test-data|fixtures?|examples?|samples?|benches|"
    r"benchmarks?|bench|docs?|documentation|fuzz|tools|scripts|contrib|vendor|third_party|typings|types)(/|$)"
    r"|(^|/)test_[^/]*$|_test\.\w+$|\.(test|spec)\.\w+$|Tests?\.\w+$|_spec\.rb$|\.pyi$|\.d\.[cm]?ts$",
    re.IGNORECASE)
_CONSTRUCTORS = frozenset({"constructor", "__init__", "__construct", "initialize", "new", "init", "main"})
_SEPARATORS = {"rust": "::", "cpp": "::", "php": "::", "ruby": "#"}
_TAG_LINE = re.compile(r"^\s*(@\w+|:(param|parameter|arg|argument|key|keyword|type|raises?|except|exception|"
                       r"var|ivar|cvar|vartype|returns?|rtype|meta)\b|(Args|Arguments|Returns?|Raises|Yields|Examples?|Parameters|Note|"
                       r"See also|Usage|Errors|Panics|Safety)\s*:?\s*$|#+\s|```|>>>|\.\. )", re.IGNORECASE)
_SKIP_SUMMARY = re.compile(r"^(todo|fixme|xxx|deprecated|internal|private|see\b|copied|generated|"
                           r"\{@inheritdoc\}|@)", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    id: str
    kind: str  # doc | ident | file
    subkind: str  # doc: function/method/class; ident: name/qualified/class/lower; file: header/class
    text: str
    path: str
    start: int  # target span in the indexed copy, from a kept doc comment on; 0, 0: the path alone answers
    end: int
    def_start: int  # a hit "starts at the definition" when its first line is in [def_start, def_line]
    def_line: int

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)

    @staticmethod
    def from_json(data: dict[str, object]) -> Query:
        return Query(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Draft:
    """A query before the indexed copy exists: spans are still in the original file's lines."""

    kind: str
    subkind: str
    text: str
    path: str
    definition: Definition | None
    removed: Comment | None  # the comment this query came from, deleted from the indexed copy


def is_implementation(path: str) -> bool:
    return not _NOT_IMPLEMENTATION.search(path)


# -- doc comments -------------------------------------------------------------------------------

def comment_lines(raw: str) -> list[str]:
    """The text of a comment or docstring without its markers, line by line."""
    text = raw.strip()
    if re.match(r"^[rRuUbBfF]{0,2}('''|\"\"\"|'|\")", text):
        text = re.sub(r"^[rRuUbBfF]{0,2}('''|\"\"\"|'|\")", "", text)
        text = re.sub(r"('''|\"\"\"|'|\")$", "", text)
        return [line.strip() for line in text.split("\n")]
    if text.startswith("/*"):
        text = re.sub(r"^/\*+!?", "", text)
        text = re.sub(r"\*+/$", "", text)
        return [re.sub(r"^\s*\*+ ?", "", line).strip() for line in text.split("\n")]
    return [re.sub(r"^\s*(///?!?|//|#+|--)\s?", "", line).strip() for line in text.split("\n")]


def clean_markup(text: str) -> str:
    """Doc markup to plain words: links, roles, code quotes, HTML tags."""
    text = re.sub(r"\{@\w+\s+([^}\s]+)(?:\s+([^}]*))?\}", lambda m: m.group(2) or m.group(1), text)
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).split(".")[-1], text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](url), ![](img)
    text = re.sub(r"(?<![\w\]])\[`?([^\]`]+)`?\](\[[^\]]*\])?", r"\1", text)  # rust [`Foo`], [text][ref]
    text = re.sub(r"</?\w+[^>]*>", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    text = text.replace("`", "").replace("**", "").replace("\\", "")
    text = re.sub(r"(?<!\w)[*_]{1,2}(\w[^*_]*)[*_]{1,2}(?!\w)", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def summary(raw: str) -> str:
    """The first paragraph of a doc comment, as plain text, cut to the first sentences that fit."""
    paragraph: list[str] = []
    fenced = False
    for line in comment_lines(raw):
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            if paragraph:
                break
            continue
        if fenced:
            continue
        line = line.lstrip("> ").strip() if line.startswith(">") and not line.startswith(">>>") else line
        if not line:
            if paragraph:
                break
            continue
        if _TAG_LINE.match(line) or re.match(r"^\$Id\b|^See Copyright", line):
            if paragraph:
                break
            continue
        paragraph.append(line)
    text = clean_markup(" ".join(paragraph))
    words = text.split()
    if len(words) > MAX_WORDS:
        cut = re.match(r"^(.{20,}?[.!?])\s", text)
        text = cut.group(1) if cut and len(cut.group(1).split()) <= MAX_WORDS else " ".join(words[:MAX_WORDS])
    return text


def mask_name(text: str, name: str, replacement: str) -> str:
    """Replace the name, also qualified (``A.name``, ``A::name``, ``A#name``) or called, case-insensitively."""
    if not name:
        return text
    pattern = re.compile(r"(?<![\w$])(?:[\w$]+(?:\.|::|#))*" + re.escape(name) + r"(?:\(\))?(?![\w$])", re.IGNORECASE)
    return pattern.sub(replacement, text)


def usable(text: str) -> bool:
    return len(text.split()) >= MIN_WORDS and not _SKIP_SUMMARY.match(text)


def doc_query_text(definition: Definition) -> str | None:
    if definition.doc is None:
        return None
    text = summary(definition.doc.text)
    text = re.sub(r"^" + re.escape(definition.name) + r"\s*\.\s+", "", text)  # "// Name\n// . what it does"
    if not usable(text):
        return None
    masked = mask_name(text, definition.name, f"this {definition.type_word or definition.kind}")
    return masked if usable(masked) else None


def file_query_text(header: Comment, path: str) -> str | None:
    text = summary(header.text)
    text = re.sub(r"^Package \w+\s+(is|provides|implements|contains|defines)?\s*", "", text)
    first = re.match(r"^(.+?[.!?])(\s|$)", text)
    text = first.group(1) if first else text
    stem = path.rsplit("/", 1)[-1].split(".")[0]
    folder = path.rsplit("/", 2)[-2] if "/" in path else ""
    for name in {stem, folder} - {""}:
        text = mask_name(text, name, "this module")
    text = text.rstrip(".!? ")
    if not usable(text) or len(text.split()) > 25 or text.endswith(":"):
        return None
    if text[:2] != text[:2].upper():  # "HTML ..." keeps its capitals
        text = text[0].lower() + text[1:]
    return f"where is {text} implemented"


# -- sampling -----------------------------------------------------------------------------------

def _targets(files: Sequence[FileFacts]) -> list[Definition]:
    """Definitions that can be the answer to a question: named, in implementation code, not local."""
    return [d for f in files if is_implementation(f.path) for d in f.definitions
            if not d.nested and IDENTIFIER.match(d.name)]


def doc_drafts(files: Sequence[FileFacts], rng: random.Random, limit: int = DOC_QUERIES) -> list[Draft]:
    pool: list[tuple[Definition, str]] = []
    for d in _targets(files):
        text = doc_query_text(d) if d.doc_removable else None
        if text is not None:
            pool.append((d, text))
    repeated = {t for t, n in Counter(t.lower() for _, t in pool).items() if n > 1}
    pool = [(d, t) for d, t in pool if t.lower() not in repeated]  # ambiguous descriptions
    rng.shuffle(pool)
    per_file: Counter[str] = Counter()
    cap = max(MAX_DOC_PER_FILE, math.ceil(2 * limit / max(1, len({d.path for d, _ in pool}))))
    chosen: list[Draft] = []
    for d, text in pool:
        if len(chosen) >= limit or per_file[d.path] >= cap:
            continue
        per_file[d.path] += 1
        chosen.append(Draft("doc", d.kind, text, d.path, d, d.doc))
    return chosen


def _unique(defs: Iterable[Definition], key: str) -> list[Definition]:
    groups: dict[str, list[Definition]] = defaultdict(list)
    for d in defs:
        groups[_key(d, key)].append(d)
    return sorted((g[0] for g in groups.values() if len(g) == 1), key=lambda d: (d.path, d.start))


def _key(d: Definition, key: str) -> str:
    if key == "qualified":
        return f"{d.container.rsplit('.', 1)[-1]}.{d.name}".lower()
    return d.name.lower()


def ident_drafts(files: Sequence[FileFacts], language: str, rng: random.Random,
                 limit: int = IDENT_QUERIES) -> list[Draft]:
    targets = _targets(files)
    named = [d for d in targets if d.name.lower() not in _CONSTRUCTORS and not d.name.startswith("__")
             and d.name != d.container.rsplit(".", 1)[-1]]
    by_name = _unique(named, "name")
    sep = _SEPARATORS.get(language, ".")
    pools: dict[str, list[Draft]] = {
        "name": [Draft("ident", "name", d.name, d.path, d, None) for d in by_name
                 if d.kind != "class" and len(d.name) >= 4],
        "qualified": [Draft("ident", "qualified", f"{d.container.rsplit('.', 1)[-1]}{sep}{d.name}", d.path, d, None)
                      for d in _unique([d for d in named if d.kind == "method"
                                        and IDENTIFIER.match(d.container.rsplit(".", 1)[-1])], "qualified")],
        "class": [Draft("ident", "class", d.name, d.path, d, None) for d in by_name
                  if d.kind == "class" and len(d.name) >= 3],
        "lower": [Draft("ident", "lower", d.name.lower(), d.path, d, None) for d in by_name
                  if d.name != d.name.lower() and len(d.name) >= 4],
    }
    for pool in pools.values():
        rng.shuffle(pool)
    return _round_robin(list(pools.values()), limit)


def _round_robin(pools: list[list[Draft]], limit: int) -> list[Draft]:
    chosen: list[Draft] = []
    seen: set[tuple[str, str]] = set()
    while len(chosen) < limit and any(pools):
        for pool in pools:
            while pool:
                draft = pool.pop(0)
                if (draft.text, draft.subkind) not in seen:
                    seen.add((draft.text, draft.subkind))
                    chosen.append(draft)
                    break
            if len(chosen) >= limit:
                break
    return chosen


def file_drafts(files: Sequence[FileFacts], popularity: Counter[str], rng: random.Random,
                limit: int = FILE_QUERIES) -> list[Draft]:
    headers: list[Draft] = []
    for f in files:
        if f.header is None or not f.header.own_lines or not is_implementation(f.path) or not f.definitions:
            continue  # a file that is only its header (Go's doc.go, package-info.java) is empty without it
        text = file_query_text(f.header, f.path)
        if text is not None:
            headers.append(Draft("file", "header", text, f.path, None, f.header))
    repeated = {t for t, n in Counter(d.text for d in headers).items() if n > 1}
    headers = [d for d in headers if d.text not in repeated]
    rng.shuffle(headers)
    chosen = headers[: limit // 2]
    used = {d.path for d in chosen}
    classes = [d for d in _unique(_targets(files), "name") if d.kind == "class" and popularity[d.name] >= 2]
    classes.sort(key=lambda d: (-popularity[d.name], d.name))
    top = classes[: 3 * limit]
    rng.shuffle(top)
    for d in top:
        if len(chosen) >= limit:
            break
        if d.path not in used:
            used.add(d.path)
            chosen.append(Draft("file", "class", f"where is the {d.name} {d.type_word} implemented", d.path, d, None))
    return chosen


# -- the indexed copy ---------------------------------------------------------------------------

def removals(drafts: Iterable[Draft]) -> dict[str, list[tuple[int, int]]]:
    """Per path, the line ranges (1-based, inclusive) to delete from the indexed copy."""
    ranges: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for d in drafts:
        if d.removed is not None:
            ranges[d.path].add((d.removed.start, d.removed.end))
    return {path: sorted(r) for path, r in ranges.items()}


def delete_lines(text: str, ranges: Sequence[tuple[int, int]]) -> str:
    lines = text.split("\n")
    drop = {i for start, end in ranges for i in range(start - 1, end)}
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def shift(line: int, ranges: Sequence[tuple[int, int]]) -> int:
    """Where ``line`` of the original file is once ``ranges`` are deleted."""
    return line - sum(end - start + 1 for start, end in ranges if end < line)


def finalize(drafts: Sequence[Draft], repo: str, ranges: dict[str, list[tuple[int, int]]]) -> list[Query]:
    queries: list[Query] = []
    counters: Counter[str] = Counter()
    for d in drafts:
        counters[d.kind] += 1
        qid = f"{repo}/{d.kind}/{counters[d.kind]:03d}"
        spans = ranges.get(d.path, [])
        if d.kind == "file" or d.definition is None:
            queries.append(Query(qid, d.kind, d.subkind, d.text, d.path, 0, 0, 0, 0))
            continue
        defn = d.definition
        start, end = defn.span
        kept_doc = defn.doc is not None and (defn.doc.start, defn.doc.end) not in spans and defn.doc.end < defn.start
        def_start = defn.doc.start if kept_doc and defn.doc is not None else start
        # A hit on the definition's kept doc comment is a hit on the definition (the chunker attaches it).
        queries.append(Query(qid, d.kind, d.subkind, d.text, d.path, shift(def_start, spans), shift(end, spans),
                             shift(def_start, spans), shift(defn.name_line, spans)))
    return queries


def identifier_counts(texts: Iterable[str]) -> Counter[str]:
    """How often each identifier occurs in the repository: how well known a class is."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(re.findall(r"[A-Za-z_][\w]*", text))
    return counts
