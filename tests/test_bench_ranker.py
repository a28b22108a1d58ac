"""The analysis helpers of ``bench/ranker.py`` whose output goes into docs/ranker.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_ranker() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_ranker", BENCH / "ranker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _order(scores: np.ndarray) -> list[list[int]]:
    return np.argsort(-scores, axis=1, kind="stable").tolist()


def test_blend_weight_zero_keeps_retriever_order_and_one_gives_ranker_order(bench_ranker: ModuleType) -> None:
    ranker = np.array([[0.1, 0.9, 0.5, 0.3], [2.0, -1.0, 0.0, 3.0]])
    assert _order(bench_ranker.blended_scores(ranker, 0.0)) == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert _order(bench_ranker.blended_scores(ranker, 1.0)) == _order(ranker)


def test_blend_half_averages_the_two_ranks(bench_ranker: ModuleType) -> None:
    # ranker ranks: c0 → 3, c1 → 2, c2 → 1, c3 → 0; retriever ranks 0..3: every mean is 1.5, so ties
    # keep retriever order; moving c3 to the ranker's top puts it ahead of c2 but not of c0.
    reversed_scores = np.array([[0.0, 1.0, 2.0, 3.0]])
    assert np.allclose(bench_ranker.blended_scores(reversed_scores, 0.5), -1.5)
    one_mover = np.array([[3.0, 2.0, 1.0, 4.0]])  # ranker ranks 1, 2, 3, 0
    blended = bench_ranker.blended_scores(one_mover, 0.5)
    assert blended.tolist() == [[-0.5, -1.5, -2.5, -1.5]]


def test_paired_difference_interval_contains_mean_and_is_zero_for_equal_runs(bench_ranker: ModuleType) -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    same = bench_ranker.paired_difference(a, a, seed=1)
    assert same == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "queries": 300}
    better = bench_ranker.paired_difference(a + 0.1 + 0.01 * rng.standard_normal(300), a, seed=1)
    assert better["ci_low"] < better["mean"] < better["ci_high"]
    assert better["ci_low"] > 0.09 and better["ci_high"] < 0.11
