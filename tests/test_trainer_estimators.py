"""Weight estimators: BM25 over split identifiers; frozen neural estimators; no gradient leaks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from codesearch_trainer.estimators import (
    PAPER_DEFAULTS,
    BM25Estimator,
    SimCSEEstimator,
    TrainedEstimator,
    build_estimator,
    split_identifiers,
)
from codesearch_trainer.losses import SoftInfoNCELoss
from codesearch_trainer.model import load_encoder
from codesearch_trainer.testing import tiny_bert

QUERIES = ["read a json file", "parse the config file", "retry an http request", "sort the list of users",
           "write text to a file", "merge two dicts"]
CODES = ["def read_json(path): return json.load(open(path))", "def parse_config(p): ...",
         "async function retryRequest(url) {}", "def sort_users(users): return sorted(users)",
         "def write_text(path, text): open(path, 'w').write(text)", "def merge(a, b): return {**a, **b}"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def test_split_identifiers() -> None:
    assert split_identifiers("parseHTTPResponse read_json_file x2") == [
        "parse", "http", "response", "read", "json", "file", "x", "2"]


def test_paper_defaults() -> None:
    got = {k: (d.alpha, d.beta, d.t) for k, d in PAPER_DEFAULTS.items()}
    assert got == {"bm25": (1.5, 0.5, 1.0), "simcse": (1.3, 0.7, 0.1), "trained": (1.3, 0.7, 5.0)}


def test_bm25_scores_lexical_overlap_between_queries() -> None:
    est = BM25Estimator().fit(QUERIES)
    sim = est.similarity(QUERIES, CODES)
    assert sim.shape == (6, 6)
    # "read a json file" shares "file" with "parse the config file" and "write text to a file"
    assert sim[0, 1] > 0 and sim[0, 4] > 0 and sim[0, 2] == 0
    rows = est.similarity(QUERIES, CODES, rows=slice(2, 4))
    torch.testing.assert_close(rows, sim[2:4])


def test_bm25_without_fit_uses_batch_statistics() -> None:
    sim = BM25Estimator().similarity(QUERIES, CODES)
    assert sim.shape == (6, 6) and torch.isfinite(sim).all()


@pytest.mark.parametrize("kind", ["simcse", "trained"])
def test_neural_estimators_are_frozen_and_separate(tiny: Path, kind: str) -> None:
    encoder = load_encoder(tiny)
    est = build_estimator(kind, model=str(tiny), base_model=str(tiny), query_max_length=16, code_max_length=32)
    assert isinstance(est, SimCSEEstimator | TrainedEstimator)
    assert not est.encoder.training
    assert all(not p.requires_grad for p in est.encoder.parameters())
    # separate weights: no parameter tensor is shared with the model being trained
    trained_ptrs = {p.data_ptr() for p in encoder.parameters()}
    assert not trained_ptrs & {p.data_ptr() for p in est.encoder.parameters()}

    before = {n: p.clone() for n, p in est.encoder.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=1e-2)
    encoder.train()
    q = encoder(**encoder.tokenize(QUERIES, 16))
    c = encoder(**encoder.tokenize(CODES, 32))
    sim = est.similarity(QUERIES, CODES)
    assert sim.shape == (6, 6) and not sim.requires_grad
    d = PAPER_DEFAULTS[kind]
    loss = SoftInfoNCELoss(d.alpha, d.beta, d.t)(q, c, sim)
    loss.backward()
    grads = [p.grad for p in encoder.transformer.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)
    assert all(p.grad is None for p in est.encoder.parameters())
    optimizer.step()
    for n, p in est.encoder.named_parameters():
        assert torch.equal(p, before[n]), n


def test_trained_estimator_needs_a_model() -> None:
    with pytest.raises(ValueError, match="estimator-model"):
        build_estimator("trained")
