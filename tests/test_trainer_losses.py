"""Soft-InfoNCE and InfoNCE: the formulas of the paper, exactly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from codesearch_trainer.losses import InfoNCELoss, SoftInfoNCELoss, soft_weights


def _embeddings(n: int, m: int, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    c = F.normalize(torch.randn(m, d, generator=g), dim=-1)
    return q, c


def _naive_soft_infonce(q, c, sim, alpha, beta, t, scale, min_weight, positives):
    """The paper's formula written out term by term, in float64."""
    q, c, sim = q.double(), c.double(), sim.double()
    n, m = sim.shape
    total = 0.0
    for i in range(n):
        pos = int(positives[i])
        negs = [j for j in range(m) if j != pos]
        z = sum(math.exp(sim[i, j] / t) for j in negs)
        denom = 0.0
        for j in negs:
            p = math.exp(sim[i, j] / t) / z
            w = max((beta - alpha * p) / (beta - alpha / (m - 1)), min_weight)
            denom += w * math.exp(scale * float(q[i] @ c[j]))
        s_pos = scale * float(q[i] @ c[pos])
        total += -math.log(math.exp(s_pos) / (math.exp(s_pos) + denom))
    return total / n


@pytest.mark.parametrize(("n", "m", "offset"), [(8, 8, 0), (4, 12, 4)])
def test_alpha_zero_is_infonce_exactly(n: int, m: int, offset: int) -> None:
    q, c = _embeddings(n, m)
    sim = torch.randn(n, m) * 5
    positives = torch.arange(n) + offset
    soft = SoftInfoNCELoss(alpha=0.0, beta=0.7, t=0.1, scale=20.0)(q, c, sim, positives)
    plain = InfoNCELoss(scale=20.0)(q, c, positives)
    assert torch.equal(soft, plain)


@pytest.mark.parametrize(("alpha", "beta", "t"), [(1.5, 0.5, 1.0), (1.3, 0.7, 0.1), (1.3, 0.7, 5.0)])
def test_loss_matches_the_paper_formula(alpha: float, beta: float, t: float) -> None:
    q, c = _embeddings(6, 10, seed=3)
    sim = torch.randn(6, 10, generator=torch.Generator().manual_seed(4)) * 3
    positives = torch.tensor([0, 1, 2, 3, 4, 5]) + 2
    loss = SoftInfoNCELoss(alpha, beta, t, scale=20.0, min_weight=0.1)(q, c, sim, positives)
    expected = _naive_soft_infonce(q, c, sim, alpha, beta, t, 20.0, 0.1, positives)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def _random_cases(count: int) -> list[tuple[int, float, float, float, float, int]]:
    rng = torch.Generator().manual_seed(1234)
    cases = []
    while len(cases) < count:
        u = torch.rand(5, generator=rng).tolist()
        n = 5 + int(u[0] * 36)
        alpha, beta, t, spread = 2.0 * u[1], 0.3 + 1.7 * u[2], 0.05 + 10 * u[3], 30 * u[4]
        if beta - alpha / (n - 1) >= 0.05:  # inside the formula's domain
            cases.append((n, alpha, beta, t, spread, len(cases)))
    return [*cases, (32, 1.5, 0.5, 1.0, 25.0, 99), (32, 1.3, 0.7, 0.1, 1.0, 98), (8, 0.0, 0.7, 5.0, 3.0, 97)]


@pytest.mark.parametrize(("n", "alpha", "beta", "t", "spread", "seed"), _random_cases(40))
def test_weights_average_to_one_before_clamping_and_clamp_holds(
    n: int, alpha: float, beta: float, t: float, spread: float, seed: int
) -> None:
    sim = torch.randn(n, n, generator=torch.Generator().manual_seed(seed)) * spread
    eye = torch.eye(n, dtype=torch.bool)
    raw = soft_weights(sim, alpha, beta, t)
    negatives = raw[~eye].view(n, n - 1)
    torch.testing.assert_close(negatives.double().mean(dim=1), torch.ones(n, dtype=torch.float64),
                               rtol=0, atol=2e-4)
    assert torch.all(raw[eye] == 1)
    clamped = soft_weights(sim, alpha, beta, t, min_weight=0.1)
    assert torch.all(clamped >= 0.1)
    assert torch.equal(clamped, raw.clamp(min=0.1))


def test_likely_false_negatives_get_small_weights() -> None:
    sim = torch.zeros(5, 5)
    sim[0, 3] = 10.0  # query 0 is near-identical to pair 3's query
    w = soft_weights(sim, 1.5, 0.5, 1.0, min_weight=0.1)
    assert w[0, 3] == pytest.approx(0.1)
    assert torch.all(w[0, [1, 2, 4]] > 1.0)


def test_batch_too_small_for_alpha_beta_is_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        soft_weights(torch.zeros(3, 3), 1.5, 0.5, 1.0)


def test_weights_carry_no_gradient_and_loss_does() -> None:
    q, c = _embeddings(6, 6)
    q.requires_grad_(True)
    c.requires_grad_(True)
    sim = torch.randn(6, 6, requires_grad=True)
    loss = SoftInfoNCELoss(1.3, 0.7, 0.1)(q, c, sim)
    loss.backward()
    assert q.grad is not None and c.grad is not None
    assert sim.grad is None
