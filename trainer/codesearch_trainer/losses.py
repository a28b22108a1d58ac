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


def distillation_terms(
    q: Tensor,
    c: Tensor,
    teacher_q: Tensor,
    teacher_c: Tensor,
    *,
    scale: float = DEFAULT_SCALE,
    teacher_scale: float = DEFAULT_SCALE,
) -> tuple[Tensor, Tensor]:
    """(similarity KD, embedding regression) of a student against a frozen teacher.

    ``q`` [n, d] and ``c`` [N, d] are the student's query and code embeddings, ``teacher_q`` [n, d']
    and ``teacher_c`` [N, d'] the teacher's (detached; d' may differ from d for the KD term).

    - KD: ``mean_i KL(softmax_j(teacher_scale · tq_i·tc_j) ‖ softmax_j(scale · q_i·c_j))``, the
      teacher's in-batch score distribution as a soft target (Hinton et al.; the teacher's
      preferences among the negatives carry what it knows beyond the one labelled positive).
    - regression: ``mean over the n + N rows of ‖student − teacher‖²`` (needs d = d'); for
      L2-normalised embeddings that is ``2 − 2·cos``.
    """
    if q.shape[0] != teacher_q.shape[0] or c.shape[0] != teacher_c.shape[0]:
        raise ValueError(
            f"student ({q.shape[0]} queries, {c.shape[0]} codes) and teacher ({teacher_q.shape[0]}, "
            f"{teacher_c.shape[0]}) embeddings must cover the same texts"
        )
    teacher_q, teacher_c = teacher_q.detach().float(), teacher_c.detach().float()
    student_log_p = F.log_softmax(scale * (q.float() @ c.float().T), dim=1)
    teacher_log_p = F.log_softmax(teacher_scale * (teacher_q @ teacher_c.T), dim=1)
    kd = F.kl_div(student_log_p, teacher_log_p, reduction="batchmean", log_target=True)
    if q.shape[1] != teacher_q.shape[1]:
        regression = q.new_zeros(())
    else:
        rows = torch.cat([q.float() - teacher_q, c.float() - teacher_c])
        regression = rows.pow(2).sum(dim=1).mean()
    return kd, regression


class DistillationLoss(nn.Module):
    """``contrastive · InfoNCE + kd · KD + regression · ‖s − t‖²`` (see :func:`distillation_terms`).

    ``forward(q, c, teacher_q, teacher_c, positives)`` returns the total; ``last`` keeps the
    three detached terms of the last call for the log.
    """

    def __init__(
        self,
        *,
        contrastive: float = 1.0,
        kd: float = 1.0,
        regression: float = 1.0,
        scale: float = DEFAULT_SCALE,
        teacher_scale: float = DEFAULT_SCALE,
    ) -> None:
        super().__init__()
        if min(contrastive, kd, regression) < 0 or contrastive + kd + regression == 0:
            raise ValueError("loss weights must be ≥ 0 and not all 0")
        self.contrastive, self.kd, self.regression = contrastive, kd, regression
        self.scale, self.teacher_scale = scale, teacher_scale
        self.infonce = InfoNCELoss(scale)
        self.last: dict[str, float] = {}

    def forward(self, q: Tensor, c: Tensor, teacher_q: Tensor, teacher_c: Tensor,
                positives: Tensor | None = None) -> Tensor:
        kd, regression = distillation_terms(q, c, teacher_q, teacher_c, scale=self.scale,
                                            teacher_scale=self.teacher_scale)
        contrastive = self.infonce(q, c, positives) if self.contrastive else q.new_zeros(())
        self.last = {"loss_infonce": float(contrastive.detach()), "loss_kd": float(kd.detach()),
                     "loss_regression": float(regression.detach())}
        return self.contrastive * contrastive + self.kd * kd + self.regression * regression
