"""Evaluation: metric arithmetic, BEIR loading and capping, and `trainer eval` output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from codesearch_trainer.cli import main
from codesearch_trainer.evaluate import load_beir, retrieval_metrics
from codesearch_trainer.testing import tiny_bert


def test_metrics_by_hand() -> None:
    scores = np.array([
        [0.9, 0.8, 0.1, 0.0],  # relevant doc 1 at rank 2
        [0.1, 0.2, 0.3, 0.9],  # relevant doc 3 at rank 1
        [0.5, 0.4, 0.3, 0.2],  # relevant docs 2 (rank 3) and 3 (rank 4)
    ], dtype=np.float32)
    rel = [{1: 1.0}, {3: 1.0}, {2: 1.0, 3: 1.0}]
    m = retrieval_metrics(scores, rel)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert m["recall@1"] == pytest.approx((0 + 1 + 0) / 3)
    assert m["recall@5"] == pytest.approx(1.0)
    ndcg3 = (1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + ndcg3) / 3)


def _beir(folder: Path, n: int = 20) -> Path:
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"c{i}", "title": "", "text": f"def f{i}(x):\n    return x + {i}\n"}) + "\n"
        for i in range(n)))
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": f"add {i} to x"}) + "\n" for i in range(n)))
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tc{i}\t1\n" for i in range(n)))
    return folder


def test_load_beir_caps_keep_relevant_documents(tmp_path: Path) -> None:
    data = load_beir(_beir(tmp_path / "set"), max_queries=5, max_corpus=8, seed=3)
    assert len(data.queries) == 5 and len(data.corpus) == 8
    for rel in data.qrels.values():
        assert all(d in data.corpus for d in rel)
    assert data.name.endswith("/set")


def test_eval_cli_table_and_json(tmp_path: Path) -> None:
    tiny = tiny_bert(tmp_path / "bert")
    a, b = _beir(tmp_path / "a"), _beir(tmp_path / "b", 10)
    runner = CliRunner()
    res = runner.invoke(main, ["eval", str(tiny), "--data", str(a), str(b)])
    assert res.exit_code == 0, res.output
    table = res.stdout
    assert "MRR" in table and "ndcg@10" in table and "recall@100" in table
    assert table.count(str(tiny)) == 2
    res = runner.invoke(main, ["eval", str(tiny), "--data", str(a), "--data", str(b), "--json"])
    assert res.exit_code == 0, res.output
    results = json.loads(res.stdout)
    assert [r["dataset"].split("/")[-1] for r in results] == ["a", "b"]
    assert all(0 < r["metrics"]["mrr"] <= 1 for r in results)
    assert results[1]["metrics"]["recall@100"] == 1.0
    res = runner.invoke(main, ["eval", str(tiny)])
    assert res.exit_code != 0
