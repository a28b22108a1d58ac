"""The fused score rule by rule, on hand-made chunks and evidence (no index, no model).

Each test shows the rule at work and that the same comparison goes the other way (or ties) with
the rule's weight set to zero, so it fails without the rule.
"""

from __future__ import annotations

import dataclasses

import pytest
from codesearch.query.intent import QualifiedName, QueryKind, asks_location, classify, mentioned_names
from codesearch.query.scoring import (
    Evidence,
    QueryContext,
    RankingWeights,
    Scored,
    diversify,
    extends_elsewhere,
    file_boosts,
    fts5_idf,
    lexical_share,
    qualifier_found,
    score_chunk,
    stand_in_cosines,
)
from codesearch.types import Chunk, SearchMode

W = RankingWeights()


def chunk(path: str = "src/app/retry.py", symbol: str = "parse_retry_after", kind: str = "function",
          container: str = "", part: int = 0, start: int = 1) -> Chunk:
    return Chunk(path=path, language="python", kind=kind, symbol=symbol, container=container,
                 start_line=start, end_line=start + 5, text=f"def {symbol}(): pass", part=part)


def score(c: Chunk, ev: Evidence, query: str = "retry header", weights: RankingWeights = W,
          mode: SearchMode = SearchMode.FUSED) -> float:
    return score_chunk(c, ev, QueryContext.of(query), weights, mode)


def without(**changed: object) -> RankingWeights:
    return dataclasses.replace(W, **changed)  # type: ignore[arg-type]


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


# -- names ----------------------------------------------------------------------------------------

def test_an_exact_name_outranks_a_closer_vector() -> None:
    named = score(chunk(symbol="backoff"), Evidence(dense=0.3), "backoff")
    similar = score(chunk(symbol="sleep_between_tries"), Evidence(dense=0.7), "backoff")
    assert named > similar
    assert score(chunk(symbol="backoff"), Evidence(dense=0.3), "backoff", without(exact_name=0)) < similar


def test_a_capitalised_single_word_finds_its_class() -> None:
    # `Console` used to be no identifier at all (a capitalised single word), so no name rule fired.
    cls = chunk("rich/console.py", "Console", "class")
    attribute = chunk("rich/progress.py", "console", "method", container="Progress")
    assert classify("Console") == QueryKind.IDENTIFIER
    assert score(cls, Evidence(dense=0.35), "Console") > score(attribute, Evidence(dense=0.6), "Console")
    assert score(cls, Evidence(dense=0.35), "Console", without(exact_name=0, caseless_name=0)) < \
        score(attribute, Evidence(dense=0.6), "Console", without(exact_name=0, caseless_name=0))


def test_case_as_typed_counts_unless_typed_all_lower() -> None:
    cls, method = chunk(symbol="Console", kind="class"), chunk(symbol="console", kind="method", container="Status")
    ev = Evidence(dense=0.5)
    gap = _terms_gap(cls, method, "Console")
    assert score(cls, ev, "Console") - score(method, ev, "Console") == approx(W.exact_name - W.caseless_name + gap)
    same = without(caseless_name=W.exact_name)
    assert score(cls, ev, "Console", same) == approx(score(method, ev, "Console", same) + gap)
    # typed in lower case, case says nothing: both are the name
    assert score(cls, ev, "console") == approx(score(method, ev, "console"))


def test_a_qualified_name_needs_its_qualifier_in_the_path_or_container() -> None:
    table = chunk("rich/table.py", "Table", "class")
    other = chunk("rich/_table_compat.py", "Table", "class")
    ev = Evidence(dense=0.5)
    assert score(table, ev, "rich.table.Table") - score(other, ev, "rich.table.Table") == \
        approx(W.exact_name - W.unqualified_name)
    render = chunk("rich/table.py", "_render", "method", container="Table")
    stray = chunk("rich/tree.py", "_render", "method", container="Tree")
    gap = _terms_gap(render, stray, "Table._render")
    assert score(render, ev, "Table._render") - score(stray, ev, "Table._render") == \
        approx(W.exact_name - W.unqualified_name + gap)
    assert score(render, ev, "Table._render", without(unqualified_name=W.exact_name)) == \
        approx(score(stray, ev, "Table._render", without(unqualified_name=W.exact_name)) + gap)


def test_a_type_outranks_the_blocks_that_add_to_it() -> None:
    head = "impl<'de, R: Read<'de>> Deserializer<R> {\n    pub fn end(&mut self) -> Result<()> {"
    assert extends_elsewhere("rust", head) and extends_elsewhere("rust", "#[cfg(test)]\nimpl Foo {")
    assert not extends_elsewhere("rust", "/// Deserializes JSON.\npub struct Deserializer<R> {")
    assert not extends_elsewhere("python", "impl = load()")
    struct = chunk("src/de.rs", "Deserializer", "class")
    block = chunk("src/de.rs", "Deserializer", "class", start=40)
    query = "Deserializer"
    assert score(struct, Evidence(dense=0.40), query) > score(block, Evidence(dense=0.55, extends=True), query)
    assert score(struct, Evidence(dense=0.40), query, without(extension_cut=0)) < \
        score(block, Evidence(dense=0.55, extends=True), query, without(extension_cut=0))


def test_qualifier_matching() -> None:
    assert qualifier_found(chunk("rich/table.py", "Table"), ["rich", "table"])
    assert qualifier_found(chunk("src/value/mod.rs", "Value"), ["value"])  # mod.rs: the folder is the module
    assert qualifier_found(chunk("a.py", "bar", container="Outer.Foo"), ["Outer", "Foo"])
    assert not qualifier_found(chunk("a.py", "bar", container="Foo"), ["Foo", "a"])  # order matters
    assert not qualifier_found(chunk("rich/table.py", "Table"), ["console"])


def test_names_inside_a_sentence_count_less() -> None:
    render = chunk("rich/table.py", "_render", "method", container="Table")
    other = chunk("rich/tree.py", "wrap_cells", "method", container="Tree")
    ev = Evidence(dense=0.5)
    query = "how does Table._render wrap cells"
    assert classify(query) == QueryKind.MIXED
    gain = score(render, ev, query) - score(other, ev, query, )
    assert gain == approx(W.mentioned_name + _terms_gap(render, other, query))
    assert score(render, ev, query, without(mentioned_name=0)) - score(other, ev, query) == \
        approx(_terms_gap(render, other, query))


def _terms_gap(a: Chunk, b: Chunk, query: str) -> float:
    """The name/path-term boosts of a minus those of b (the names rule left out)."""
    off = without(exact_name=0, caseless_name=0, unqualified_name=0, mentioned_name=0, mentioned_capitalised=0)
    return score(a, Evidence(dense=0.5), query, off) - score(b, Evidence(dense=0.5), query, off)


def test_a_capitalised_word_counts_beside_a_kind_word_or_in_a_location_question() -> None:
    console = chunk("rich/console.py", "Console", "class")
    other = chunk("rich/status.py", "Status", "class")
    ev = Evidence(dense=0.5)
    query = "where is the Console class implemented"
    assert asks_location(query)
    assert score(console, ev, query) - score(other, ev, query) == \
        approx(W.mentioned_capitalised + _terms_gap(console, other, query))
    assert score(console, ev, query, without(mentioned_capitalised=0)) - score(other, ev, query) == \
        approx(_terms_gap(console, other, query))
    # a sentence's capitals are not names
    assert mentioned_names("Segments are produced by the Console render process", capitalised=True) == ()


def test_query_kinds() -> None:
    assert classify("rich.table.Table") == QueryKind.IDENTIFIER
    assert classify("serde_json::Value") == QueryKind.IDENTIFIER
    assert classify("getUser()") == QueryKind.IDENTIFIER
    assert classify("call getUser() twice") == QueryKind.MIXED
    assert classify("element-wise equal within a tolerance") == QueryKind.LANGUAGE
    assert mentioned_names("use `load` here") == (QualifiedName((), "load"),)


def test_the_lexical_weight_follows_the_query_kind() -> None:
    ev_strong, ev_weak = Evidence(dense=0.5, lexical=1.0), Evidence(dense=0.5, lexical=0.0)
    weights = without(lexical_language=0.1, lexical_mixed=0.2, lexical_identifier=0.4)
    for query, expected in (("parse the header", 0.1), ("parse the retry_after header", 0.2), ("parse_it", 0.4)):
        gap = score(chunk(symbol="a"), ev_strong, query, weights) - score(chunk(symbol="a"), ev_weak, query, weights)
        assert gap == approx(expected)


# -- lexical evidence -----------------------------------------------------------------------------

def test_the_lexical_share_is_absolute() -> None:
    idfs = [fts5_idf(1000, 10), fts5_idf(1000, 300)]
    ceiling = 2.2 * sum(idfs)
    assert lexical_share(ceiling, idfs) == approx(1.0)
    assert lexical_share(ceiling / 4, idfs) == approx(0.25)
    assert lexical_share(0.0, idfs) == 0.0
    # the same BM25 counts for less when the query had more to match: one weak word of many
    assert lexical_share(3.0, idfs + [fts5_idf(1000, 2)] * 4) < lexical_share(3.0, idfs)
    assert fts5_idf(1000, 900) == pytest.approx(1e-6)  # FTS5 floors the idf of very common terms


def test_a_power_above_one_counts_partial_keyword_matches_less() -> None:
    weights = without(lexical_power=2.0)
    full = score(chunk(symbol="a"), Evidence(dense=0.5, lexical=1.0), "retry header", weights)
    half = score(chunk(symbol="b"), Evidence(dense=0.5, lexical=0.5), "retry header", weights)
    assert full - half == approx(W.lexical_language * 0.75)
    assert score(chunk(symbol="a"), Evidence(dense=0.5, lexical=1.0), "retry header") - \
        score(chunk(symbol="b"), Evidence(dense=0.5, lexical=0.5), "retry header") == approx(W.lexical_language * 0.5)


def test_lexical_evidence_adds_to_the_cosine() -> None:
    strong = score(chunk(symbol="a"), Evidence(dense=0.5, lexical=1.0), "retry header")
    weak = score(chunk(symbol="b"), Evidence(dense=0.5, lexical=0.1), "retry header")
    assert strong - weak == approx(W.lexical_language * 0.9)


# -- chunks without a vector ----------------------------------------------------------------------

def test_partial_embedding_ranks_keyword_matches_like_vectors() -> None:
    """At 10 % embedded, the best keyword match without a vector must not fall below embedded
    chunks that only look similar: the `rank` stand-in gives it the best cosine of the query."""
    dense = [None, 0.62, 0.60, 0.58, None]
    lexical = [0.9, 0.1, 0.0, 0.0, 0.2]
    rank_rule = dataclasses.replace(W, stand_in="rank")
    guesses = stand_in_cosines(dense, lexical, rank_rule)
    assert guesses[0] == 0.62 and guesses[4] == 0.60
    pending = score(chunk(symbol="allclose"), Evidence(None, 0.9, guesses[0]), "equal within a tolerance", rank_rule)
    embedded = score(chunk(symbol="isclose_impl"), Evidence(0.62, 0.1), "equal within a tolerance", rank_rule)
    assert pending > embedded
    scaled = dataclasses.replace(W, stand_in="scaled")
    old = stand_in_cosines(dense, lexical, scaled)
    assert score(chunk(symbol="allclose"), Evidence(None, 0.9, old[0]), "equal within a tolerance", scaled) < \
        score(chunk(symbol="isclose_impl"), Evidence(0.62, 0.1), "equal within a tolerance", scaled)


def test_with_nothing_embedded_the_keywords_decide() -> None:
    guesses = stand_in_cosines([None, None], [0.8, 0.4], dataclasses.replace(W, stand_in="rank"))
    assert guesses == [approx(W.stand_in_scale * 0.8), approx(W.stand_in_scale * 0.4)]
    assert stand_in_cosines([None, 0.5], [0.0, 0.3], dataclasses.replace(W, stand_in="floor")) == [0.5, 0.0]


def test_a_chunk_without_a_vector_uses_its_stand_in() -> None:
    assert score(chunk(symbol="a"), Evidence(dense=None, lexical=0.0, stand_in=0.55), "q") == \
        approx(score(chunk(symbol="a"), Evidence(dense=0.55, lexical=0.0), "q"))


# -- where a chunk lives --------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "field", "asking"), [
    ("tests/test_retry.py", "test_penalty", "mock for backoff"),
    ("src/retry_test.go", "test_penalty", "backoff spec"),
    ("examples/retry.py", "example_penalty", "backoff example"),
    ("vendor/retry.py", "vendored_penalty", "vendored backoff"),
    ("node_modules/x/retry.js", "vendored_penalty", "vendored backoff"),
    ("src/retry_pb2.py", "generated_penalty", "generated backoff"),
    ("dist/retry.min.js", "generated_penalty", "generated backoff"),
    ("src/retry.pyi", "stub_penalty", "backoff overload stub"),
    ("types/retry.d.ts", "stub_penalty", "backoff type declaration"),
])
def test_tests_examples_stubs_vendored_and_generated_code_rank_lower_unless_asked_for(
        path: str, field: str, asking: str) -> None:
    weights = without(**{field: 0.2})
    ev = Evidence(dense=0.6)
    impl, other = chunk(path="src/retry.py"), chunk(path=path)
    assert score(impl, ev, "backoff", weights) - score(other, ev, "backoff", weights) == approx(0.2)
    off = without(**{field: 0.0})
    assert score(impl, ev, "backoff", off) == approx(score(other, ev, "backoff", off))
    assert score(other, ev, asking, weights) == approx(score(impl, ev, asking, weights))  # asked for: no penalty


def test_documentation_ranks_below_code_unless_asked_for() -> None:
    weights = without(prose_penalty=0.2)
    code = chunk("src/retry.py")
    readme = dataclasses.replace(chunk("README.md", "", "window"), language="markdown")
    ev = Evidence(dense=0.6)
    kind_gap = W.non_definition_penalty
    assert score(code, ev, "backoff", weights) - score(readme, ev, "backoff", weights) == approx(0.2 + kind_gap)
    off = without(prose_penalty=0)
    assert score(code, ev, "backoff", off) - score(readme, ev, "backoff", off) == approx(kind_gap)
    assert score(code, ev, "backoff usage guide", weights) - score(readme, ev, "backoff usage guide", weights) == \
        approx(kind_gap)


def test_module_code_and_windows_rank_below_definitions() -> None:
    ev = Evidence(dense=0.6)
    assert score(chunk(kind="function"), ev, "x") - score(chunk(kind="module", symbol=""), ev, "x") == \
        approx(W.non_definition_penalty)


def test_query_words_in_the_name_and_the_path_count() -> None:
    base = Evidence(dense=0.5)
    in_name = score(chunk(symbol="parse_retry_header", path="src/a.py"), base, "retry header")
    neither = score(chunk(symbol="parse_value", path="src/a.py"), base, "retry header")
    in_path = score(chunk(symbol="parse_value", path="src/retry/header.py"), base, "retry header")
    assert in_name - neither == approx(W.name_terms)
    assert in_path - neither == approx(W.path_terms)
    assert score(chunk(symbol="parse_retry_header", path="src/a.py"), base, "retry header",
                 without(name_terms=0)) == approx(neither)


# -- the retrievers alone -------------------------------------------------------------------------

def test_the_retrievers_alone() -> None:
    ev = Evidence(dense=0.42, lexical=0.8)
    assert score(chunk(symbol="q"), ev, "q", mode=SearchMode.DENSE) == 0.42
    assert score(chunk(), Evidence(lexical=0.8), mode=SearchMode.DENSE) == -1.0
    assert score(chunk(symbol="q"), ev, "q", mode=SearchMode.LEXICAL) == approx(0.8 + W.exact_name)


# -- ordering -------------------------------------------------------------------------------------

def test_location_questions_favour_files_with_several_strong_chunks() -> None:
    weights = without(file_evidence=0.5)
    ranked = [Scored(chunk("a.py", "lone"), 0.70, 1), Scored(chunk("b.py", "f1"), 0.68, 2),
              Scored(chunk("b.py", "f2"), 0.66, 3), Scored(chunk("b.py", "f3"), 0.65, 4)]
    ranked += [Scored(chunk(f"other{i}.py", "x"), 0.40 - i / 100, 5 + i) for i in range(10)]
    where = QueryContext.of("where is the retry loop implemented")
    assert file_boosts(ranked, where, weights)[0].key == 2
    assert file_boosts(ranked, where, without(file_evidence=0.0))[0].key == 1
    assert [s.key for s in file_boosts(ranked, QueryContext.of("retry loop"), weights)] == [s.key for s in ranked]


def test_no_file_floods_the_top_and_windows_of_a_definition_collapse() -> None:
    ranked = [Scored(chunk("a.py", "f1"), 1.0, 1), Scored(chunk("a.py", "f2"), 0.99, 2),
              Scored(chunk("b.py", "g"), 0.98, 3), Scored(chunk("c.py", "h", part=1), 0.5, 4),
              Scored(chunk("c.py", "h", part=2, start=40), 0.49, 5)]
    out = diversify(ranked, W.same_file_penalty)
    assert [s.key for s in out] == [1, 3, 2, 4]
    assert out[2].score == approx(0.99 - W.same_file_penalty)
    assert [s.key for s in diversify(ranked, 0.0)] == [1, 2, 3, 4]
