"""Contrastive losses over in-batch negatives: InfoNCE and Soft-InfoNCE.

Soft-InfoNCE (Li et al., EMNLP 2023, "Rethinking Negative Pairs in Code Search") re-weights each
in-batch negative by how likely it is to be a *false* or *easy* negative, as judged by a frozen
estimator::

    loss_i = -log( e^{s_ii} / (e^{s_ii} + Σ_{j≠i} w_ij e^{s_ij}) )
    w_ij   = (β − α·p_ij) / (β − α/(N−1)),   clamped at ≥ min_weight (0.1)
    p_ij   = softmax_{j≠i}( sim_ij / t )     (estimator similarity, negatives only)

α = 0 gives w_ij = 1, i.e. InfoNCE exactly. The weights of a row average to 1 before clamping,
since p_i· sums to 1 over the N−1 negatives.

Every loss takes plain tensors: query embeddings ``q`` [n, d], code embeddings ``c`` [N, d]
(N ≥ n: under data parallelism the codes of the whole global batch), and optionally the column of
each query's positive (default: ``arange(n)``, i.e. the diagonal). The scores are
``scale · q·c`` (``scale`` = 1/temperature; 20 matches sentence-transformers' default and the
training of all-MiniLM-L6-v2). The loss is computed in log space: ``cross_entropy(s + log w)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_SCALE = 20.0
DEFAULT_MIN_WEIGHT = 0.1


def _positives(n: int, n_cols: int, positives: Tensor | None, device: torch.device) -> Tensor:
    if positives is None:
        if n > n_cols:
            raise ValueError(f"{n} queries but only {n_cols} candidates: pass positives explicitly")
        return torch.arange(n, device=device)
    if positives.shape != (n,):
        raise ValueError(f"positives must have shape ({n},), not {tuple(positives.shape)}")
    return positives.to(device=device, dtype=torch.long)


def soft_weights(
    sim: Tensor,
    alpha: float,
    beta: float,
    t: float,
    *,
    positives: Tensor | None = None,
    min_weight: float | None = None,
) -> Tensor:
    """Soft-InfoNCE negative weights from an estimator similarity matrix ``sim`` [n, N].

    Returns [n, N] weights; the positive's own entry is 1 (it is not weighted in the loss).
    Without ``min_weight`` the negative weights of each row average to exactly 1; with it they
    are clamped from below. The result carries no gradient: the estimator is frozen.
    """
    if sim.dim() != 2:
        raise ValueError(f"sim must be a matrix, not shape {tuple(sim.shape)}")
    n, n_cols = sim.shape
    if n_cols < 2:
        raise ValueError("Soft-InfoNCE needs at least one negative per query (N ≥ 2)")
    if t <= 0:
        raise ValueError(f"t must be positive, not {t}")
    pos = _positives(n, n_cols, positives, sim.device)
    sim = sim.detach().float()
    is_pos = F.one_hot(pos, n_cols).bool()
    if alpha == 0:
        weights = torch.ones_like(sim)  # β/β: exactly InfoNCE
    else:
        denom = beta - alpha / (n_cols - 1)
        if denom <= 0:
            raise ValueError(
                f"β − α/(N−1) = {beta} − {alpha}/{n_cols - 1} ≤ 0: the batch is too small for "
                f"α={alpha}, β={beta} (need N > 1 + α/β = {1 + alpha / beta:.2f})"
            )
        p = torch.softmax((sim / t).masked_fill(is_pos, float("-inf")), dim=1)
        weights = (beta - alpha * p) / denom
    if min_weight is not None:
        weights = weights.clamp(min=min_weight)
    return weights.masked_fill(is_pos, 1.0)


class InfoNCELoss(nn.Module):
    """InfoNCE with in-batch negatives (sentence-transformers' MultipleNegativesRankingLoss)."""

    def __init__(self, scale: float = DEFAULT_SCALE) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, q: Tensor, c: Tensor, positives: Tensor | None = None) -> Tensor:
        scores = self.scale * (q @ c.T)
        labels = _positives(q.shape[0], c.shape[0], positives, q.device)
        return F.cross_entropy(scores.float(), labels)


class SoftInfoNCELoss(nn.Module):
    """Soft-InfoNCE: InfoNCE whose negatives are weighted by a frozen estimator's similarity.

    ``forward(q, c, sim)``: ``sim`` [n, N] is the estimator's similarity of query i to pair j
    (BM25 score, SimCSE cosine or a trained model's score), computed without gradient.
    """

    def __init__(
        self,
        alpha: float,
        beta: float,
        t: float,
        scale: float = DEFAULT_SCALE,
        min_weight: float = DEFAULT_MIN_WEIGHT,
    ) -> None:
        super().__init__()
        if min_weight <= 0:
            raise ValueError("min_weight must be positive (log-space loss)")
        self.alpha, self.beta, self.t = alpha, beta, t
        self.scale, self.min_weight = scale, min_weight

    def weights(self, sim: Tensor, positives: Tensor | None = None) -> Tensor:
        return soft_weights(
            sim, self.alpha, self.beta, self.t, positives=positives, min_weight=self.min_weight
        )

    def forward(self, q: Tensor, c: Tensor, sim: Tensor, positives: Tensor | None = None) -> Tensor:
        if sim.shape != (q.shape[0], c.shape[0]):
            raise ValueError(
                f"sim must be [{q.shape[0]}, {c.shape[0]}] (queries × candidates), not {tuple(sim.shape)}"
            )
        labels = _positives(q.shape[0], c.shape[0], positives, q.device)
        scores = self.scale * (q @ c.T)
        log_w = self.weights(sim, labels).to(scores.device).log()  # 0 at the positive
        return F.cross_entropy(scores.float() + log_w, labels)
