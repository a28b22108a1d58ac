"""Training data: every loader, cleaning, doc-comment extraction and --from-workspace mining."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from codesearch_trainer.data import (
    Pair,
    clean_pairs,
    first_paragraph,
    load_pairs,
    mine_workspace,
    python_docstring,
    split_doc,
)

CSN_CODE = 'def add(a, b):\n    """Add two numbers.\n\n    Args:\n        a: first\n    """\n    return a + b\n'


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_project_jsonl(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "pairs.jsonl", [
        {"query": "read a file", "code": "def read(p): ...", "language": "python"},
        {"query": "no code here"},
    ])
    assert load_pairs(path) == [Pair("read a file", "def read(p): ...", "python")]


def test_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"query": "q one two", "code": "x = 1"}) + "\n")
    assert load_pairs(path) == [Pair("q one two", "x = 1", "")]


def test_codesearchnet_lines_strip_the_docstring(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "csn.jsonl", [
        {"repo": "r", "func_name": "add", "language": "python", "code": CSN_CODE,
         "docstring": "Add two numbers.\n\nArgs:\n    a: first", "code_tokens": [], "docstring_tokens": []},
        {"language": "java", "code": "int f() { return 1; }", "docstring": "Returns one."},
    ])
    pairs = load_pairs(path)
    assert pairs[0].query == "Add two numbers."
    assert "Add two numbers" not in pairs[0].code
    assert pairs[0].code == "def add(a, b):\n    return a + b\n"
    assert pairs[1] == Pair("Returns one.", "int f() { return 1; }", "java")


def test_cosqa_json_keeps_positive_pairs(tmp_path: Path) -> None:
    path = tmp_path / "cosqa-train.json"
    path.write_text(json.dumps([
        {"idx": "cosqa-train-0", "doc": "python sort dict by value", "code": "def f(d): ...", "label": 1},
        {"idx": "cosqa-train-1", "doc": "python read csv", "code": "def g(): ...", "label": 0},
    ]), encoding="utf-8")
    assert load_pairs(path) == [Pair("python sort dict by value", "def f(d): ...", "")]


def test_beir_folder(tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    beir.mkdir()
    _write_jsonl(beir / "corpus.jsonl", [{"_id": "c1", "title": "", "text": "def a(): ..."},
                                         {"_id": "c2", "title": "", "text": "def b(): ..."}])
    _write_jsonl(beir / "queries.jsonl", [{"_id": "q1", "text": "do a"}, {"_id": "q2", "text": "do b"}])
    (beir / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tc1\t1\nq2\tc2\t0\n", encoding="utf-8")
    assert load_pairs(beir) == [Pair("do a", "def a(): ...", "")]


def test_unrecognised_file_is_an_error(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(ValueError, match="no \\(query, code\\) pairs"):
        load_pairs(path)


def test_clean_pairs_dedupes_and_limits() -> None:
    pairs = [
        Pair("read a file", "def read(): ..."),
        Pair("Read  a FILE", "def other(): ..."),  # same query, normalised
        Pair("write a file", "def read():  ..."),  # same code, normalised
        Pair("x", "def x(): ..."),
        Pair("  ", "def y(): ..."),
        Pair("long query " * 10, "z" * 50),
    ]
    out = clean_pairs(pairs, min_query_words=2, max_code_chars=40)
    assert [p.query for p in out] == ["read a file"]
    assert len(clean_pairs(pairs, dedupe=False)) == 5


def test_first_paragraph_drops_tags_and_sections() -> None:
    assert first_paragraph("Fetch a URL\n  with retries.\n\nMore text.") == "Fetch a URL with retries."
    assert first_paragraph("Sort users.\n@param users the users\n@returns sorted") == "Sort users."
    assert first_paragraph("Parse it.\nArgs:\n    x: thing") == "Parse it."


def test_python_docstring_removed_from_method() -> None:
    code = '    @cache\n    def size(self):\n        """The size in bytes."""\n        return len(self.data)\n'
    doc, rest = python_docstring(code)  # type: ignore[misc]
    assert doc == "The size in bytes."
    assert "size in bytes" not in rest and "return len(self.data)" in rest and "@cache" in rest


@pytest.mark.parametrize(("language", "code", "above", "query"), [
    ("javascript",
     "/**\n * Debounce a function call.\n * @param {Function} fn\n */\nfunction debounce(fn) {\n  return fn;\n}",
     None, "Debounce a function call."),
    ("go", "func Sum(xs []int) int {\n\treturn 0\n}", ["package m", "", "// Sum adds up the numbers", "// in a slice."],
     "Sum adds up the numbers in a slice."),
    ("rust", "pub fn area(&self) -> f64 {\n    self.w * self.h\n}",
     ["/// Compute the area", "/// of the box.", "#[inline]"],
     "Compute the area of the box."),
    ("java", "public int size() {\n  return n;\n}", ["/**", " * Number of items held.", " */", "@Override"],
     "Number of items held."),
])
def test_doc_comments(language: str, code: str, above: list[str] | None, query: str) -> None:
    found = split_doc(code, language, above)
    assert found is not None
    assert found[0] == query
    assert "/**" not in found[1] and "//" not in found[1]


def test_no_doc_no_pair() -> None:
    assert split_doc("def f():\n    return 1\n", "python", ["x = 1", ""]) is None
    assert split_doc("function f() {}", "javascript", ["const x = 1;"]) is None


def make_fixture_repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "util.py").write_text(
        '"""Utilities."""\n\nimport json\n\n\n'
        'def load_config(path):\n    """Load the JSON configuration file at path.\n\n'
        '    Args:\n        path: where\n    """\n'
        '    with open(path) as fh:\n        return json.load(fh)\n\n\n'
        'def undocumented(x):\n    return x * 2\n\n\n'
        'class Cache:\n    """A tiny cache."""\n\n'
        '    def get(self, key, default=None):\n        """Return the cached value for key, or the default."""\n'
        '        value = self.data.get(key)\n        return default if value is None else value\n\n'
        '    def short(self):\n        """Too short."""\n        return 1\n',
        encoding="utf-8",
    )
    body = "".join(f"    total += {i} * x\n" for i in range(120))
    (root / "pkg" / "long.py").write_text(
        'def long_sum(x):\n    """Add up many multiples of x in one long function."""\n'
        f"    total = 0\n{body}    return total\n",
        encoding="utf-8",
    )
    (root / "web").mkdir()
    (root / "web" / "retry.js").write_text(
        "/**\n * Retry an async operation with exponential backoff.\n * @param {Function} op\n */\n"
        "async function retry(op, attempts = 3) {\n  for (let i = 0; i < attempts; i++) {\n"
        "    try { return await op(); } catch (e) { await sleep(2 ** i * 100); }\n  }\n}\n",
        encoding="utf-8",
    )
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "x.py").write_text(
        'def hidden():\n    """Should never be mined from dependencies."""\n    return 1\n    pass\n', encoding="utf-8"
    )
    return root


def test_from_workspace_mining(tmp_path: Path) -> None:
    root = make_fixture_repo(tmp_path / "repo")
    pairs = mine_workspace(root)
    by_query = {p.query: p for p in pairs}
    load = by_query["Load the JSON configuration file at path."]
    assert load.language == "python"
    assert "Load the JSON" not in load.code and "json.load(fh)" in load.code
    assert load.code.startswith("def load_config(path):")
    get = by_query["Return the cached value for key, or the default."]
    assert "cached value" not in get.code and get.code.startswith("def get(")
    assert "Too short." not in by_query  # fewer than three words
    assert all("hidden" not in p.code for p in pairs)
    assert all("undocumented" not in p.code for p in pairs)
    long = by_query["Add up many multiples of x in one long function."]  # split by the chunker, rejoined
    assert long.code.startswith("def long_sum(x):") and long.code.count("total +=") == 120
    assert long.code.rstrip().endswith("return total")
    try:
        import codesearch.chunk.chunker  # noqa: F401
    except ImportError:
        return  # without the engine's chunker only Python is mined
    retry = by_query["Retry an async operation with exponential backoff."]
    assert retry.language == "javascript" and "backoff" not in retry.code and "async function retry" in retry.code
