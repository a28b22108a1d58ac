"""The pure parts of the repository benchmark (bench/repos.py and its repo_* helpers): doc comments
found and removed, names masked, scoring with the overlap rule, the split, the partial-embedding copy."""

from __future__ import annotations

import ast
import random
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import repo_corpus  # noqa: E402
import repo_defs  # noqa: E402
import repo_metrics as rm  # noqa: E402
import repo_queries as rq  # noqa: E402

PY_SOURCE = '''"""Helpers that load settings from disk."""

import json


def load_settings(path):
    """Read the settings file at path and return them as a dict.

    Args:
        path: where the file is.
    """
    with open(path) as f:
        return json.load(f)


class SettingsCache:
    """Keep loaded settings in memory so SettingsCache.get reads each file once."""

    def get(self, path):
        return load_settings(path)


def only_doc():
    """A function whose body is only its docstring cannot lose it."""
'''

JS_SOURCE = '''/**
 * Parse a duration string such as "2h 30m" into milliseconds.
 * @param {string} text
 * @returns {number}
 */
export function parseDuration(text) {
  return 0;
}

// Not a JSDoc comment, so not a doc.
function helper() {}

/** Format milliseconds the way parseDuration() reads them. */
function formatDuration(ms) {
  return String(ms);
}
'''


def facts(path: str, text: str, language: str) -> repo_defs.FileFacts:
    return repo_defs.parse_file(path, text, language)


def by_name(f: repo_defs.FileFacts, name: str) -> repo_defs.Definition:
    return next(d for d in f.definitions if d.name == name)


def test_python_docstrings_are_found_removable_and_masked() -> None:
    f = facts("pkg/settings.py", PY_SOURCE, "python")
    load = by_name(f, "load_settings")
    assert load.kind == "function" and load.doc is not None and load.doc_removable
    assert rq.doc_query_text(load) == "Read the settings file at path and return them as a dict."
    cache = by_name(f, "SettingsCache")
    assert cache.kind == "class" and cache.span == (16, 18)  # the header, not its methods
    assert rq.doc_query_text(cache) == "Keep loaded settings in memory so this class.get reads each file once."
    assert by_name(f, "get").container == "SettingsCache" and by_name(f, "get").kind == "method"
    assert not by_name(f, "only_doc").doc_removable  # deleting it would leave an empty body
    assert f.header is not None and f.header.text.startswith('"""Helpers')


def test_python_indexed_copy_loses_the_doc_and_targets_follow() -> None:
    f = facts("pkg/settings.py", PY_SOURCE, "python")
    drafts = [rq.Draft("doc", d.kind, rq.doc_query_text(d) or "", d.path, d, d.doc)
              for d in f.definitions if d.name in ("load_settings", "SettingsCache")]
    cuts = rq.removals(drafts)
    copy = rq.delete_lines(PY_SOURCE, cuts["pkg/settings.py"])
    ast.parse(copy)  # still valid Python
    assert "Read the settings file" not in copy and "Keep loaded settings" not in copy
    lines = copy.split("\n")
    load_q, cache_q = rq.finalize(drafts, "demo", cuts)
    assert lines[load_q.start - 1] == "def load_settings(path):"
    assert lines[load_q.end - 1].strip() == "return json.load(f)"
    assert lines[cache_q.start - 1] == "class SettingsCache:"
    assert cache_q.id == "demo/doc/002" and (cache_q.def_start, cache_q.def_line) == (cache_q.start, cache_q.start)


def test_javascript_jsdoc_is_found_masked_and_removed() -> None:
    f = facts("src/duration.js", JS_SOURCE, "javascript")
    parse = by_name(f, "parseDuration")
    assert parse.start == 6 and parse.doc is not None and (parse.doc.start, parse.doc.end) == (1, 5)
    assert rq.doc_query_text(parse) == 'Parse a duration string such as "2h 30m" into milliseconds.'
    assert by_name(f, "helper").doc is None  # a plain // comment is no JSDoc
    fmt = by_name(f, "formatDuration")
    assert rq.doc_query_text(fmt) is not None
    assert "parseDuration" in (rq.doc_query_text(fmt) or "")  # only the definition's own name is masked
    drafts = [rq.Draft("doc", "function", "q", parse.path, parse, parse.doc)]
    cuts = rq.removals(drafts)
    copy = rq.delete_lines(JS_SOURCE, cuts[parse.path])
    [query] = rq.finalize(drafts, "demo", cuts)
    assert copy.split("\n")[query.start - 1].startswith("export function parseDuration")
    assert "Parse a duration" not in copy


def test_identifier_query_keeps_the_doc_and_reports_its_head() -> None:
    f = facts("src/duration.js", JS_SOURCE, "javascript")
    parse = by_name(f, "parseDuration")
    [query] = rq.finalize([rq.Draft("ident", "name", "parseDuration", parse.path, parse, None)], "demo", {})
    assert (query.start, query.def_start, query.def_line) == (1, 1, 6)  # a hit may start at its JSDoc


def test_rust_doc_comments_pass_over_attributes() -> None:
    source = "/// Count lines.\n#[inline]\npub fn line_count(b: &str) -> usize { 0 }\n"
    d = by_name(facts("src/lib.rs", source, "rust"), "line_count")
    assert d.start == 2 and d.doc is not None and d.doc.start == 1
    assert rq.doc_query_text(d) is None  # two words: too short to be a question
    source = source.replace("Count lines.", "Count the number of lines of a buffer.")
    assert rq.doc_query_text(by_name(facts("src/lib.rs", source, "rust"), "line_count")) == \
        "Count the number of lines of a buffer."


def test_summary_skips_code_tags_and_markup() -> None:
    raw = '/**\n * ```js\n * run()\n * ```\n * Returns the {@link Runner} for `suite`.\n *\n * More.\n * @param x\n */'
    assert rq.summary(raw) == "Returns the Runner for suite."
    assert rq.summary('"""Optional[float]: Time elapsed.\n\n    Returns:\n        x\n"""') == \
        "Optional[float]: Time elapsed."
    assert rq.summary("/// See [`Value::as_str`] and [docs](https://x.y).") == "See Value::as_str and docs."


@pytest.mark.parametrize(("text", "expected"), [
    ("Return the Console for output.", "Return the X for output."),
    ("console() is cached; rich.console.Console too", "X is cached; X too"),
    ("Consoles and ConsoleOptions stay", "Consoles and ConsoleOptions stay"),
    ("Runner#run and Runner::run", "X and X"),
])
def test_mask_name(text: str, expected: str) -> None:
    name = "run" if "Runner" in text else "Console"
    assert rq.mask_name(text, name, "X") == expected


def test_file_question_from_a_header_masks_the_module_name() -> None:
    header = repo_defs.Comment(1, 1, "// Package cobra is a commander for modern CLI apps.", True)
    assert rq.file_query_text(header, "cobra/command.go") == "where is a commander for modern CLI apps implemented"
    header = repo_defs.Comment(1, 1, '"""Tables: rows and columns, as in a table.\n\nMore."""', True)
    assert rq.file_query_text(header, "rich/table.py") == \
        "where is tables: rows and columns, as in a this module implemented"
    grammar = repo_defs.Comment(1, 3, "/* The parser implements this grammar:\n *\n * a ::= b */", True)
    assert rq.file_query_text(grammar, "src/p.c") is None  # the sentence goes on in a list


def test_relevance_needs_the_path_and_an_overlapping_span() -> None:
    target = rm.Target("a/b.py", 10, 20)
    assert rm.relevant("a/b.py", 20, 30, target)  # touching the last line counts
    assert rm.relevant("a/b.py", 1, 10, target)
    assert not rm.relevant("a/b.py", 21, 40, target)
    assert not rm.relevant("a/c.py", 10, 20, target)
    assert rm.relevant("a/b.py", 500, 600, rm.Target("a/b.py", 0, 0))  # a file question


def test_only_the_first_relevant_hit_counts() -> None:
    hits = [("x.py", 1, 5), ("a.py", 12, 14), ("a.py", 15, 18)]
    assert rm.first_relevant(hits, rm.Target("a.py", 10, 20)) == (2, 12)
    assert rm.first_relevant(hits, rm.Target("z.py", 0, 0)) == (None, None)
    outcomes = [rm.Outcome("q1", 1), rm.Outcome("q2", 3), rm.Outcome("q3", 11), rm.Outcome("q4", None)]
    summary = rm.summarize(outcomes)
    assert summary.ndcg10 == pytest.approx((1 + 0.5) / 4)  # 1/log2(4) = 0.5; rank 11 is past the cut
    assert summary.mrr == pytest.approx((1 + 1 / 3 + 1 / 11) / 4)
    assert summary.top1 == 0.25
    assert rm.reciprocal_rank(101) == 0.0 and rm.ndcg(10) == pytest.approx(1 / 3.4594316186372973)


def test_starts_at_definition() -> None:
    assert rm.starts_at_definition(rm.Outcome("q", 1, 7), 5, 8)
    assert not rm.starts_at_definition(rm.Outcome("q", 1, 30), 5, 8)
    assert not rm.starts_at_definition(rm.Outcome("q", None, None), 5, 8)


REPOS = [("a", "python"), ("b", "python"), ("c", "go"), ("d", "go"), ("e", "go"), ("f", "java"),
         ("g", "rust"), ("h", "rust"), ("i", "c")]


def test_split_is_by_repository_deterministic_and_spread() -> None:
    first = repo_corpus.assign_splits(REPOS, seed=7)
    assert first == repo_corpus.assign_splits(list(reversed(REPOS)), seed=7)
    test = [n for n, s in first.items() if s == "test"]
    assert len(test) == 3  # a third of nine
    languages = dict(REPOS)
    assert len({languages[n] for n in test}) == 3  # at most one per language
    assert first["f"] == first["i"] == "dev"  # a language's only repository never goes to test
    kept = repo_corpus.assign_splits(REPOS, seed=7, keep_dev=frozenset({"a", "b"}))
    assert kept["a"] == kept["b"] == "dev"
    assert any(repo_corpus.assign_splits(REPOS, seed=s) != first for s in range(1, 6))


def test_manifest_splits_are_the_seeded_ones() -> None:
    manifest = repo_corpus.load_manifest()
    expected = repo_corpus.assign_splits([(r.name, r.language) for r in manifest.repos], manifest.seed,
                                         keep_dev=frozenset({"rich"}))
    assert {r.name: r.split for r in manifest.repos} == expected
    assert len(manifest.repos) >= 12 and len({r.language for r in manifest.repos}) >= 8
    assert {r.registry for r in manifest.repos} <= {"pypi", "npm", "deb", "deb-src"}


def test_sampling_is_seeded() -> None:
    f = [facts("pkg/settings.py", PY_SOURCE, "python"), facts("src/duration.js", JS_SOURCE, "javascript")]
    one = rq.doc_drafts(f, random.Random("s/1"))
    assert [d.text for d in one] == [d.text for d in rq.doc_drafts(f, random.Random("s/1"))]
    assert {d.definition.name for d in one if d.definition} == {"load_settings", "SettingsCache", "parseDuration",
                                                               "formatDuration"}


def test_tests_and_stubs_give_no_targets() -> None:
    assert rq.is_implementation("rich/console.py")
    for path in ("tests/test_console.py", "rich/console.pyi", "src/a.test.ts", "types/index.d.ts",
                 "examples/demo.py", "pkg/thing_test.go", "spec/x_spec.rb", "src/test/java/FooTest.java"):
        assert not rq.is_implementation(path), path


@pytest.fixture
def bench_repos() -> ModuleType:
    import repos

    return repos


def test_partial_copy_keeps_the_newest_chunks_first(bench_repos: ModuleType, tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    db = sqlite3.connect(str(index / "index.db"))
    db.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, embed_hash TEXT, mtime_ns INTEGER)")
    db.execute("CREATE TABLE vectors (embed_hash TEXT, model_key TEXT, vector BLOB)")
    rows = [("h1", 100), ("h2", 300), ("h3", 200), ("h4", 300), ("h1", 400)]  # h1 is also in a newer file
    db.executemany("INSERT INTO chunks (embed_hash, mtime_ns) VALUES (?, ?)", rows)
    for h in ("h1", "h2", "h3", "h4"):
        db.execute("INSERT INTO vectors VALUES (?, 'm', x'00')", (h,))
        db.execute("INSERT INTO vectors VALUES (?, 'other', x'00')", (h,))
    db.commit()
    assert bench_repos.embedding_order(db, "m") == ["h1", "h2", "h4", "h3"]
    db.close()
    kept, total = bench_repos.partial_index(index, "m", 0.5, tmp_path / "half")
    assert (kept, total) == (2, 4)
    half = sqlite3.connect(str(tmp_path / "half" / "index.db"))
    assert sorted(r[0] for r in half.execute("SELECT embed_hash FROM vectors WHERE model_key='m'")) == ["h1", "h2"]
    assert half.execute("SELECT count(*) FROM vectors WHERE model_key='other'").fetchone()[0] == 4
    half.close()
    assert bench_repos.partial_index(index, "m", 0.0, tmp_path / "none") == (0, 4)
