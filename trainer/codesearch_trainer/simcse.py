"""``trainer simcse``: unsupervised SimCSE on training queries, for the Soft-InfoNCE estimator.

Each query is encoded twice with dropout on; the two views are the positive pair and the other
queries of the batch the negatives (InfoNCE at scale 20, i.e. temperature 0.05, as in Gao et al.
2021). The result is a sentence encoder of queries for ``trainer train --weights simcse
--estimator-model DIR/best``.
"""

from __future__ import annotations

from dataclasses import replace

from .train import TrainConfig, TrainResult, train

SIMCSE_DEFAULTS = {"lr": 3e-5, "batch_size": 64, "epochs": 1, "query_max_length": 64}


def simcse_config(cfg: TrainConfig) -> TrainConfig:
    """The SimCSE variant of a training configuration: (query, query) pairs, InfoNCE, no dev."""
    return replace(cfg, simcse=True, loss="infonce", dev=[], max_length=cfg.query_max_length)


def train_simcse(cfg: TrainConfig) -> TrainResult:
    return train(simcse_config(cfg))
