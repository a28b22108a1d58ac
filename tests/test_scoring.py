"""The fused score rule by rule, on hand-made chunks and evidence (no index, no model)."""

from __future__ import annotations

import dataclasses

import pytest
from codesearch.query.scoring import (
    Evidence,
    QueryContext,
    RankingWeights,
    Scored,
    diversify,
    score_chunk,
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


def without(**zeroed: float) -> RankingWeights:
    return dataclasses.replace(W, **zeroed)


def test_an_exact_symbol_match_outranks_a_closer_vector() -> None:
    named = score(chunk(symbol="backoff"), Evidence(dense=0.3, exact=True), "backoff")
    similar = score(chunk(symbol="sleep_between_tries"), Evidence(dense=0.7), "backoff")
    assert named > similar
    assert score(chunk(symbol="backoff"), Evidence(dense=0.3, exact=True), "backoff", without(exact_symbol=0)) < similar


def test_lexical_evidence_adds_to_the_cosine() -> None:
    strong = score(chunk(symbol="a"), Evidence(dense=0.5, lexical=1.0), "q")
    weak = score(chunk(symbol="b"), Evidence(dense=0.5, lexical=0.1), "q")
    assert strong - weak == pytest_approx(W.lexical * 0.9)


def pytest_approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def test_a_chunk_without_a_vector_is_scored_from_its_keywords() -> None:
    pending = score(chunk(symbol="a"), Evidence(dense=None, lexical=1.0), "q")
    assert pending == pytest_approx(W.lexical_only_dense_substitute + W.lexical - W.non_definition_penalty * 0)
    assert score(chunk(symbol="a"), Evidence(dense=None, lexical=1.0), "q",
                 without(lexical_only_dense_substitute=0)) < pending


def test_query_words_in_the_name_and_the_path_count() -> None:
    base = Evidence(dense=0.5)
    in_name = score(chunk(symbol="parse_retry_header", path="src/a.py"), base, "retry header")
    neither = score(chunk(symbol="parse_value", path="src/a.py"), base, "retry header")
    in_path = score(chunk(symbol="parse_value", path="src/retry/header.py"), base, "retry header")
    assert in_name - neither == pytest_approx(W.name_terms)
    assert in_path - neither == pytest_approx(W.path_terms)
    assert score(chunk(symbol="parse_retry_header", path="src/a.py"), base, "retry header",
                 without(name_terms=0)) == pytest_approx(neither)


def test_tests_examples_and_generated_code_rank_lower_unless_asked_for() -> None:
    ev = Evidence(dense=0.6)
    impl = score(chunk(path="src/retry.py"), ev, "backoff")
    assert impl - score(chunk(path="tests/test_retry.py"), ev, "backoff") == pytest_approx(W.test_penalty)
    assert impl - score(chunk(path="examples/retry.py"), ev, "backoff") == pytest_approx(W.example_penalty)
    assert impl - score(chunk(path="vendor/retry.py"), ev, "backoff") == pytest_approx(W.generated_penalty)
    assert score(chunk(path="tests/test_retry.py"), ev, "mock for backoff") == \
        pytest_approx(score(chunk(path="src/retry.py"), ev, "mock for backoff"))


def test_module_code_and_windows_rank_below_definitions() -> None:
    ev = Evidence(dense=0.6)
    assert score(chunk(kind="function"), ev, "x") - score(chunk(kind="module", symbol=""), ev, "x") == \
        pytest_approx(W.non_definition_penalty)


def test_the_retrievers_alone() -> None:
    ev = Evidence(dense=0.42, lexical=0.8, exact=True)
    assert score(chunk(), ev, mode=SearchMode.DENSE) == 0.42
    assert score(chunk(), Evidence(lexical=0.8), mode=SearchMode.DENSE) == -1.0
    assert score(chunk(), ev, mode=SearchMode.LEXICAL) == pytest_approx(0.8 + W.exact_symbol)


def test_no_file_floods_the_top_and_windows_of_a_definition_collapse() -> None:
    ranked = [Scored(chunk("a.py", "f1"), 1.0, 1), Scored(chunk("a.py", "f2"), 0.99, 2),
              Scored(chunk("b.py", "g"), 0.98, 3), Scored(chunk("c.py", "h", part=1), 0.5, 4),
              Scored(chunk("c.py", "h", part=2, start=40), 0.49, 5)]
    out = diversify(ranked, W.same_file_penalty)
    assert [s.key for s in out] == [1, 3, 2, 4]
    assert out[2].score == pytest_approx(0.99 - W.same_file_penalty)
    assert [s.key for s in diversify(ranked, 0.0)] == [1, 2, 3, 4]
