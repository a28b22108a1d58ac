"""Frozen weight estimators for Soft-InfoNCE: each scores query i against pair j of a batch.

``similarity(queries, codes, rows)`` takes the texts of the (global) batch and returns the
[len(rows), N] similarity of the queries in ``rows`` (this process's shard; all by default) to
every pair of the batch. Estimators never receive gradients: neural ones are loaded as separate
models (never shared with the model being trained), put in eval mode with ``requires_grad``
off, and run under ``torch.no_grad``.

- ``BM25Estimator``: BM25 between query i and the query/docstring of pair j, over identifier-split
  lowercase tokens; document frequencies from the training queries when fitted, else the batch.
- ``SimCSEEstimator``: cosine between sentence embeddings of query i and query j (the base model,
  or one trained with ``trainer simcse``).
- ``TrainedEstimator``: a frozen InfoNCE-trained encoder's score of query i against code j,
  ``score_scale · cos`` (the scores it was trained on: its InfoNCE scale, 20 by default).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import Encoder, autocast, load_encoder

Gather = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class EstimatorDefaults:
    alpha: float
    beta: float
    t: float


# The paper's settings per estimator (Li et al. 2023, section 4 / appendix).
PAPER_DEFAULTS: dict[str, EstimatorDefaults] = {
    "bm25": EstimatorDefaults(alpha=1.5, beta=0.5, t=1.0),
    "simcse": EstimatorDefaults(alpha=1.3, beta=0.7, t=0.1),
    "trained": EstimatorDefaults(alpha=1.3, beta=0.7, t=5.0),
}

_WORD = re.compile(r"[A-Za-z]+|\d+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifiers(text: str) -> list[str]:
    """Lowercase word tokens, identifiers split on snake_case and camelCase (HTTPServer → http, server)."""
    out: list[str] = []
    for word in _WORD.findall(text):
        out.extend(part.lower() for part in _CAMEL.findall(word))
    return out


class Estimator(ABC):
    """Scores each query of a batch against every pair of the batch; frozen."""

    name: str = ""

    @abstractmethod
    def similarity(
        self, queries: Sequence[str], codes: Sequence[str], rows: slice | None = None
    ) -> Tensor:
        """[len(rows), N] similarities, float32, without gradient."""


class BM25Estimator(Estimator):
    name = "bm25"

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._df: Counter[str] | None = None
        self._n_docs = 0
        self._avgdl = 0.0

    def fit(self, corpus: Iterable[str]) -> BM25Estimator:
        """Document frequencies and mean length from a corpus (the training queries)."""
        df: Counter[str] = Counter()
        n, total = 0, 0
        for text in corpus:
            tokens = split_identifiers(text)
            df.update(set(tokens))
            n += 1
            total += len(tokens)
        self._df, self._n_docs, self._avgdl = df, n, (total / n if n else 0.0)
        return self

    def scores(self, queries: Sequence[str], docs: Sequence[str]) -> Tensor:
        """[len(queries), len(docs)] BM25 scores of each query against each document."""
        doc_tokens = [Counter(split_identifiers(d)) for d in docs]
        lengths = [sum(c.values()) for c in doc_tokens]
        if self._df is not None and self._n_docs:
            df, n_docs, avgdl = self._df, self._n_docs, self._avgdl
        else:
            df = Counter()
            for c in doc_tokens:
                df.update(c.keys())
            n_docs, avgdl = len(docs), (sum(lengths) / len(docs) if docs else 0.0)
        avgdl = avgdl or 1.0
        out = torch.zeros(len(queries), len(docs))
        for qi, query in enumerate(queries):
            terms = set(split_identifiers(query))
            for term in terms:
                n_t = df.get(term, 0)
                idf = math.log(1.0 + (n_docs - n_t + 0.5) / (n_t + 0.5))
                for dj, counts in enumerate(doc_tokens):
                    tf = counts.get(term, 0)
                    if tf:
                        norm = tf + self.k1 * (1 - self.b + self.b * lengths[dj] / avgdl)
                        out[qi, dj] += idf * tf * (self.k1 + 1) / norm
        return out

    def similarity(
        self, queries: Sequence[str], codes: Sequence[str], rows: slice | None = None
    ) -> Tensor:
        rows = rows or slice(0, len(queries))
        return self.scores(queries[rows], queries)


class _NeuralEstimator(Estimator):
    """A frozen encoder; ``gather`` (set under data parallelism) all-gathers shard embeddings."""

    def __init__(self, encoder: Encoder, *, query_max_length: int = 64, code_max_length: int = 256,
                 batch_size: int = 64) -> None:
        encoder.eval()
        encoder.requires_grad_(False)
        self.encoder = encoder
        self.query_max_length = query_max_length
        self.code_max_length = code_max_length
        self.batch_size = batch_size
        self.gather: Gather | None = None

    @torch.no_grad()
    def _embed(self, texts: Sequence[str], max_length: int) -> Tensor:
        enc = self.encoder
        device = next(enc.parameters()).device
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = enc.tokenize(texts[start : start + self.batch_size], max_length)
            with autocast(device):
                emb = enc(**{k: v.to(device) for k, v in batch.items()})
            parts.append(F.normalize(emb.float(), dim=-1))
        return torch.cat(parts) if parts else torch.empty(0, enc.dimension, device=device)

    def _rows_and_pairs(
        self, queries: Sequence[str], other: Sequence[str], other_len: int, rows: slice | None
    ) -> tuple[Tensor, Tensor]:
        rows = rows or slice(0, len(queries))
        q = self._embed(queries[rows], self.query_max_length)
        if self.gather is not None:  # each process embeds its shard; gather the rest
            pairs = self.gather(self._embed(other[rows], other_len))
        else:
            pairs = self._embed(other, other_len)
        return q, pairs


class SimCSEEstimator(_NeuralEstimator):
    name = "simcse"

    def similarity(
        self, queries: Sequence[str], codes: Sequence[str], rows: slice | None = None
    ) -> Tensor:
        q, pairs = self._rows_and_pairs(queries, queries, self.query_max_length, rows)
        return (q @ pairs.T).float()


class TrainedEstimator(_NeuralEstimator):
    name = "trained"

    def __init__(self, encoder: Encoder, *, score_scale: float = 20.0, **kwargs: int) -> None:
        super().__init__(encoder, **kwargs)
        self.score_scale = score_scale

    def similarity(
        self, queries: Sequence[str], codes: Sequence[str], rows: slice | None = None
    ) -> Tensor:
        q, pairs = self._rows_and_pairs(queries, codes, self.code_max_length, rows)
        return (self.score_scale * (q @ pairs.T)).float()


def build_estimator(
    kind: str,
    *,
    model: str | None = None,
    base_model: str | None = None,
    device: str | torch.device = "cpu",
    fit_corpus: Iterable[str] | None = None,
    query_max_length: int = 64,
    code_max_length: int = 256,
    score_scale: float = 20.0,
) -> Estimator:
    """``bm25``, ``simcse`` (``model`` or else the base model) or ``trained`` (``model`` required)."""
    if kind == "bm25":
        est = BM25Estimator()
        if fit_corpus is not None:
            est.fit(fit_corpus)
        return est
    lengths = {"query_max_length": query_max_length, "code_max_length": code_max_length}
    if kind == "simcse":
        return SimCSEEstimator(load_encoder(model or base_model, device=device), **lengths)
    if kind == "trained":
        if model is None:
            raise ValueError("--weights trained needs --estimator-model (an InfoNCE-trained checkpoint)")
        return TrainedEstimator(load_encoder(model, device=device), score_scale=score_scale, **lengths)
    raise ValueError(f"unknown estimator {kind!r}: choose bm25, simcse or trained")
