"""Training pairs: loaders for every supported format, workspace mining, de-duplication, limits.

Formats (``load_pairs`` detects them):

- JSON lines ``{"query", "code", "language"?}`` (the project's own format);
- CodeSearchNet-style JSON lines ``{"docstring", "code", "language"?}``: the query is the
  docstring's first paragraph, and a Python docstring is removed from the code side;
- CoSQA JSON (an array of ``{"doc", "code", "label"}``; label-0 pairs are skipped); any JSON array
  of objects with the fields above works too;
- BEIR folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels.tsv`` or ``qrels/{train,dev,test}.tsv``):
  each relevant (query, document) pair;
- ``.gz`` versions of the line formats.

``mine_workspace(root)`` turns a code base into pairs without labels: each function or method with
a docstring or a doc comment becomes (first paragraph of the comment, the code without it), using
the engine's walker and chunker (``codesearch.walk.walker`` / ``codesearch.chunk.chunker``).
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import logging
import os
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

QUERY_FIELDS = ("query", "docstring", "doc", "nl", "intent", "question")
CODE_FIELDS = ("code", "snippet", "function", "original_string")


@dataclass(frozen=True, slots=True)
class Pair:
    query: str
    code: str
    language: str = ""


# ---------------------------------------------------------------------------------------------
# Loaders


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _first_field(record: dict[str, Any], names: Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return name, value
    return None


def pair_from_record(record: dict[str, Any], default_language: str = "") -> Pair | None:
    """A pair from one JSON object of any supported line/array format, or None if it has none."""
    if "label" in record and str(record["label"]) in ("0", "False", "false"):
        return None
    q = _first_field(record, QUERY_FIELDS)
    c = _first_field(record, CODE_FIELDS)
    if q is None or c is None:
        return None
    q_field, query = q
    code = c[1]
    language = str(record.get("language") or default_language or "")
    if q_field == "docstring":  # CodeSearchNet: summary paragraph, docstring out of the code
        code = strip_python_docstring(code) if language in ("python", "") else code
        query = first_paragraph(query)
    return Pair(query=query.strip(), code=code, language=language)


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with _open_text(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc}") from exc
            if isinstance(record, dict):
                yield record


def load_beir_pairs(folder: Path) -> list[Pair]:
    """Each relevant (query, document) pair of a BEIR folder."""
    from .evaluate import load_beir  # one BEIR reader for both uses

    data = load_beir(folder)
    pairs = []
    for qid, rel in data.qrels.items():
        for did, score in rel.items():
            if score > 0 and did in data.corpus and qid in data.queries:
                pairs.append(Pair(query=data.queries[qid], code=data.corpus[did]))
    return pairs


def load_pairs(path: str | os.PathLike[str], *, language: str = "") -> list[Pair]:
    """Load pairs from a file or BEIR folder of any supported format (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():
            return load_beir_pairs(path)
        raise ValueError(f"{path} is a folder but not a BEIR folder (corpus.jsonl + queries.jsonl)")
    if not path.is_file():
        raise FileNotFoundError(path)
    name = path.name.removesuffix(".gz")
    records: Iterable[dict[str, Any]]
    if name.endswith(".json"):
        with _open_text(path) as fh:
            text = fh.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            records = iter_jsonl(path)  # JSON lines named .json
        else:
            if isinstance(data, dict):
                data = data.get("data") or data.get("examples") or [data]
            records = [r for r in data if isinstance(r, dict)]
    else:
        records = iter_jsonl(path)
    pairs = [p for r in records if (p := pair_from_record(r, language)) is not None]
    if not pairs:
        raise ValueError(f"{path}: no (query, code) pairs found (fields {QUERY_FIELDS} / {CODE_FIELDS})")
    return pairs


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def clean_pairs(
    pairs: Iterable[Pair],
    *,
    min_query_words: int = 1,
    max_query_chars: int = 2000,
    max_code_chars: int = 20000,
    dedupe: bool = True,
) -> list[Pair]:
    """Drop empty, too short or too long pairs; with ``dedupe``, keep the first pair of each
    normalised query and of each normalised code (duplicates are false in-batch negatives)."""
    out: list[Pair] = []
    seen_q: set[str] = set()
    seen_c: set[str] = set()
    for p in pairs:
        query, code = p.query.strip(), p.code.strip("\n")
        if not query or not code.strip():
            continue
        if len(query.split()) < min_query_words or len(query) > max_query_chars:
            continue
        if len(code) > max_code_chars:
            continue
        if dedupe:
            kq, kc = _norm(query), _norm(code)
            if kq in seen_q or kc in seen_c:
                continue
            seen_q.add(kq)
            seen_c.add(kc)
        out.append(Pair(query=query, code=code, language=p.language))
    return out


# ---------------------------------------------------------------------------------------------
# Docstrings and doc comments


_TAG = re.compile(r"^\s*[@:](param|arg|return|returns|throws|raises|type|rtype|example|see|since|"
                  r"deprecated|template|typedef|property|yields|link|default|private|public|override)\b")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?|"
                      r"Attributes|See Also)\s*:?\s*$")


def first_paragraph(doc: str) -> str:
    """The summary of a docstring/doc comment: its first paragraph, tags and sections dropped."""
    lines: list[str] = []
    for line in textwrap.dedent(doc).strip().splitlines():
        if not line.strip():
            if lines:
                break
            continue
        if _TAG.match(line) or _SECTION.match(line) or re.match(r"^\s*-{3,}\s*$", line):
            break
        lines.append(line.strip())
    return " ".join(" ".join(lines).split())


def _cut(text: str, start: tuple[int, int], end: tuple[int, int]) -> str:
    """Remove the (1-based line, 0-based col) span [start, end) and any line it leaves blank."""
    lines = text.splitlines(keepends=True)
    (l0, c0), (l1, c1) = start, end
    before = lines[l0 - 1][:c0]
    after = lines[l1 - 1][c1:]
    if not before.strip() and not after.strip():
        middle: list[str] = []
    else:
        middle = [before + after.lstrip(" ;") if before.strip() else before + after]
    return "".join(lines[: l0 - 1] + middle + lines[l1:])


def python_docstring(code: str) -> tuple[str, str] | None:
    """(docstring, code without it) for the first def/class of a Python snippet, or None."""
    src = textwrap.dedent(code)
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        # a chunk whose first line lost its indentation but the body kept it
        head, _, rest = code.partition("\n")
        src = head.strip() + "\n" + textwrap.indent(textwrap.dedent(rest), "    ")
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError):
            return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if not node.body:
                return None
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
                and first.end_lineno is not None
                and first.end_col_offset is not None
            ):
                doc = first.value.value
                rest = _cut(src, (first.lineno, first.col_offset), (first.end_lineno, first.end_col_offset))
                return doc, rest
            return None
    return None


def strip_python_docstring(code: str) -> str:
    found = python_docstring(code)
    return found[1] if found else code


_HASH_LANGS = {"python", "ruby", "bash", "shell", "sh", "r", "elixir", "perl", "yaml", "toml"}
_DASH_LANGS = {"lua", "haskell", "sql"}


def _comment_body(line: str, language: str) -> str | None:
    """The text of a comment line, or None if the line is not (part of) a comment."""
    s = line.strip()
    for marker in ("///", "//!", "//"):
        if s.startswith(marker):
            return s[len(marker) :]
    if s.startswith("/**") or s.startswith("/*"):
        s = s[3:] if s.startswith("/**") else s[2:]
        return s.removesuffix("*/")
    if s.endswith("*/"):
        return s.removesuffix("*/").lstrip("*")
    if s.startswith("*"):
        return s[1:]
    if language in _HASH_LANGS and s.startswith("#") and not s.startswith("#!"):
        return s.lstrip("#")
    if language in _DASH_LANGS and s.startswith("--"):
        return s.lstrip("-").lstrip("|")
    return None


def leading_comment(lines: list[str], language: str) -> tuple[str, int]:
    """The comment block that ends at the last line of ``lines`` (directly above a definition):
    (its text, how many lines it spans). Annotations/attributes between it and the definition
    are skipped. ``("", 0)`` if there is none."""
    end = len(lines)
    while end and re.match(r"^\s*(@\w|#\[)", lines[end - 1]) and _comment_body(lines[end - 1], language) is None:
        end -= 1
    start = end
    in_block = False
    while start:
        line = lines[start - 1]
        stripped = line.strip()
        if in_block:
            start -= 1
            if stripped.startswith("/*"):
                in_block = False
            continue
        if stripped.endswith("*/") and not stripped.startswith("/*"):
            in_block = True
            start -= 1
            continue
        if stripped and _comment_body(line, language) is not None:
            start -= 1
            continue
        break
    if start == end or in_block:
        return "", 0
    body = [b for line in lines[start:end] if (b := _comment_body(line, language)) is not None]
    return "\n".join(body), len(lines) - start


def split_doc(code: str, language: str, above: list[str] | None = None) -> tuple[str, str] | None:
    """(summary query, code without its doc) for one definition, or None if it has no doc.

    Python: the docstring (else a ``#`` comment block above). Other languages: a doc comment at
    the top of ``code``, else one in ``above`` (the file's lines directly above the definition).
    """
    if language == "python":
        found = python_docstring(code)
        if found:
            return first_paragraph(found[0]), found[1]
    lines = code.splitlines()
    # a comment block at the top of the chunk, before the signature
    head = 0
    while head < len(lines) and (not lines[head].strip() or _comment_body(lines[head], language) is not None):
        head += 1
    if head:
        text, n = leading_comment(lines[:head], language)
        if n:
            rest = "\n".join(lines[head:])
            return first_paragraph(text), rest
    if above:
        text, n = leading_comment(above, language)
        if n:
            return first_paragraph(text), code
    return None


# ---------------------------------------------------------------------------------------------
# Workspace mining


DEF_KINDS = ("function", "method")


def _engine() -> Any:
    """The engine's walker and chunker, or None where they are missing."""
    try:
        import codesearch.chunk.chunker
        import codesearch.walk.walker
    except ImportError:
        return None
    return codesearch.walk.walker, codesearch.chunk.chunker


def mine_workspace(
    root: str | os.PathLike[str],
    *,
    min_query_words: int = 3,
    min_code_lines: int = 2,
    languages: Iterable[str] | None = None,
) -> list[Pair]:
    """Docstring/doc-comment → function pairs from every supported source file under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(root)
    wanted = set(languages) if languages else None
    engine = _engine()
    pairs: list[Pair] = []
    for language, text, defs in (_engine_defs(root, engine) if engine else _python_defs(root)):
        if wanted and language not in wanted:
            continue
        file_lines = text.splitlines()
        for start_line, code in defs:
            above = file_lines[max(0, start_line - 1 - 40) : start_line - 1]
            found = split_doc(code, language, above)
            if not found:
                continue
            query, body = found
            if len(query.split()) < min_query_words:
                continue
            if sum(1 for line in body.splitlines() if line.strip()) < min_code_lines:
                continue
            pairs.append(Pair(query=query, code=textwrap.dedent(body).strip("\n") + "\n", language=language))
    return pairs


def _engine_defs(root: Path, engine: Any) -> Iterator[tuple[str, str, list[tuple[int, str]]]]:
    files, chunking = engine
    for source in files.walk(root).files:
        try:
            text = files.read_text(source.abs_path)
        except (OSError, UnicodeDecodeError):
            continue
        chunked = chunking.chunk_file(source.path, text, source.language)
        yield source.language, text, _whole_definitions(chunked.chunks, text)


def _whole_definitions(chunks: Iterable[Any], text: str) -> list[tuple[int, str]]:
    """(first line, text) of each function/method; a long one the chunker split into windows
    (``part`` 1, 2, …) is put back together from the file's lines."""
    lines = text.splitlines(keepends=True)
    defs: list[tuple[int, str]] = []
    split: dict[tuple[str, str, str], list[int]] = {}
    for c in chunks:
        if c.kind not in DEF_KINDS:
            continue
        if c.part == 0:
            defs.append((c.start_line, c.text))
        else:
            span = split.setdefault((c.kind, c.container, c.symbol), [c.start_line, c.end_line])
            span[0], span[1] = min(span[0], c.start_line), max(span[1], c.end_line)
    for start, end in split.values():
        defs.append((start, "".join(lines[start - 1 : end])))
    return sorted(defs)


_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", "build", "dist"}


def _python_defs(root: Path) -> Iterator[tuple[str, str, list[tuple[int, str]]]]:
    """Fallback without the engine: Python functions and methods, found with ``ast``."""
    log.warning("codesearch.chunk.chunker is not available: mining Python files only")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                text = (Path(dirpath) / name).read_text(encoding="utf-8")
                tree = ast.parse(text)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            lines = text.splitlines(keepends=True)
            defs = []
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    defs.append((first, "".join(lines[first - 1 : node.end_lineno])))
            yield "python", text, defs
