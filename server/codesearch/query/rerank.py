"""Re-rank the top of a result list with an exported cross-encoder (a "ranker" model folder).

A ranker reads ``[CLS] query [SEP] code [SEP]`` and returns one relevance score per pair. It is
trained by ``trainer train-ranker`` and exported by ``trainer export-ranker`` into the same folder
layout as an encoder (``manifest.json`` with ``kind: "ranker"``, ``output: "scores"``, the ONNX
graph and ``tokenizer.json``).

Pair encoding (shared with the trainer, so training and serving cut texts identically): the query
is tokenised first and keeps at most ``query_max_length`` tokens; the code gets what is left of
``max_length`` after the query and the three special tokens. Padding is dynamic (to the longest pair
of the call) with an attention mask.

How the final order is made (``rerank``): the first ``k`` hits of the retriever's (fused) list are
sorted by ranker score, highest first; equal ranker scores keep the retriever's order (the
retriever's score is the tie-break). Hits below ``k`` are left exactly as they were, so re-ranking
only moves hits within the top ``k``, and the top ``k`` stay above the rest whatever their scores
(as in Dong et al.'s retriever-ranker). The re-ranked hits keep the retriever's score *slots*: the
``k`` retriever scores, sorted, are handed out in the new order, so ``score`` stays monotone down
the list for clients that sort or threshold on it; re-ranked hits get ``"ranker"`` added to
``sources``.

Nothing here imports torch; a missing or broken ranker never breaks search: ``load_ranker``
returns ``(None, reason)``, and ``rerank_hits`` falls back to the retriever's order with a reason if
scoring fails.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..embed.encoder import OnnxModel
from ..embed.manifest import ManifestError, ModelManifest
from ..types import SearchHit

log = logging.getLogger(__name__)

MIN_RERANK_K, MAX_RERANK_K = 2, 200
DEFAULT_RERANK_K = 5  # least quality lost and least latency of K in {5, 10, 20, 50}: docs/ranker.md
DEFAULT_QUERY_MAX_LENGTH = 64
CHARS_PER_TOKEN_CAP = 12  # texts are cut at this many characters per token of budget before tokenising
RANKER_SOURCE = "ranker"

Scores = npt.NDArray[np.float32]


class RankerError(RuntimeError):
    """The ranker cannot be loaded or run."""


# ---------------------------------------------------------------------------------------------
# Pair encoding (used by the trainer too)


def pair_budget(query_tokens: int, max_length: int, query_max_length: int, specials: int = 3) -> tuple[int, int]:
    """(query tokens kept, code tokens allowed) for one pair: the query first, the code gets the rest."""
    query_keep = max(0, min(query_tokens, query_max_length, max_length - specials - 1))
    return query_keep, max(1, max_length - specials - query_keep)


def encode_pairs(
    tokenizer: Any,
    queries: Sequence[str] | str,
    documents: Sequence[str],
    max_length: int,
    query_max_length: int = DEFAULT_QUERY_MAX_LENGTH,
    names: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
) -> dict[str, np.ndarray]:
    """int64 ``[pairs, longest]`` feeds for (query, document) pairs with the query-first budget.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` with padding and truncation switched off. ``queries``
    is one query for all documents (tokenised once) or one per document.
    """
    if isinstance(queries, str):
        one = _encode(tokenizer, [queries], query_max_length)[0]
        q_encs = [one] * len(documents)
    else:
        if len(queries) != len(documents):
            raise ValueError(f"{len(queries)} queries for {len(documents)} documents")
        q_encs = _encode(tokenizer, list(queries), query_max_length)
    specials = int(tokenizer.num_special_tokens_to_add(True))
    doc_budget = max(1, max_length - specials)
    d_encs = _encode(tokenizer, list(documents), doc_budget)
    pairs = []
    for q, d in zip(q_encs, d_encs, strict=True):
        q_keep, d_keep = pair_budget(len(q.ids), max_length, query_max_length, specials)
        _cut(q, q_keep)  # idempotent: a query shared by all documents is cut once, to the same length
        _cut(d, d_keep)
        merged = tokenizer.post_process(q, d, add_special_tokens=True)  # the model's own specials
        pairs.append((merged.ids, merged.type_ids))
    longest = max((len(ids) for ids, _ in pairs), default=0)
    ids = np.zeros((len(pairs), max(longest, 1)), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, (pair_ids, pair_types) in enumerate(pairs):
        n = len(pair_ids)
        ids[row, :n] = pair_ids
        mask[row, :n] = 1
        types[row, :n] = pair_types
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: feeds[name] for name in names}


def _encode(tokenizer: Any, texts: list[str], budget: int) -> list[Any]:
    cap = max(64, budget * CHARS_PER_TOKEN_CAP)
    return list(tokenizer.encode_batch([t[:cap] for t in texts], add_special_tokens=False))


def _cut(encoding: Any, n: int) -> None:
    if len(encoding.ids) > n:
        encoding.truncate(n)


# ---------------------------------------------------------------------------------------------
# The ONNX ranker


class OnnxRanker(OnnxModel):
    """An exported ranker folder run with onnxruntime on the same provider choice as the encoder."""

    kind = "ranker"

    def __init__(self, folder: Path, manifest: ModelManifest, *, device: str = "auto",
                 threads: int | None = None) -> None:
        if manifest.kind != "ranker":
            raise RankerError(f"{folder} holds a model of kind {manifest.kind!r}, not a ranker "
                              "(export one with `trainer export-ranker`)")
        super().__init__(folder, manifest, device=device, threads=threads)
        self.query_max_length = int(manifest.extra.get("query_max_length", DEFAULT_QUERY_MAX_LENGTH))

    @classmethod
    def from_folder(cls, path: Path | str, device: str = "auto", threads: int | None = None) -> OnnxRanker:
        folder = Path(path).expanduser()
        return cls(folder, ModelManifest.read(folder), device=device, threads=threads)

    def feeds(self, query: str, documents: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            return encode_pairs(self._tokenizer, query, documents, self.manifest.max_length,
                                self.query_max_length, self.manifest.inputs)

    def score(self, query: str, documents: Sequence[str]) -> Scores:
        """Relevance of each document to ``query`` (higher is better), in one onnxruntime call."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        feeds = self.feeds(query, documents)
        with self._lock:
            out = self._session.run([self.manifest.output], feeds)[0]
        return np.asarray(out, dtype=np.float32).reshape(len(documents))


def load_ranker(spec: str | Path | None, device: str = "auto", threads: int | None = None
                ) -> tuple[OnnxRanker | None, str | None]:
    """``(ranker, None)``, or ``(None, reason)`` when the ranker cannot be used (never raises).

    ``spec`` is an exported ranker folder; ``None``/``""`` means no ranker is configured, which is
    ``(None, None)``. The reason is also logged as a warning.
    """
    if spec is None or str(spec).strip() == "":
        return None, None
    folder = Path(spec).expanduser()
    reason: str | None = None
    ranker: OnnxRanker | None = None
    if not folder.exists():
        reason = f"ranker model {folder} does not exist"
    elif not folder.is_dir():
        reason = f"ranker model {folder} is not a folder (give the folder written by `trainer export-ranker`)"
    else:
        try:
            ranker = OnnxRanker.from_folder(folder, device=device, threads=threads)
        except (ManifestError, RankerError) as exc:
            reason = f"ranker model {folder}: {exc}"
        except Exception as exc:  # onnxruntime raises its own types for corrupt graphs
            reason = f"ranker model {folder} cannot be loaded: {type(exc).__name__}: {exc}"
    if reason:
        reason += "; searching without re-ranking"
        log.warning("%s", reason)
    return ranker, reason


# ---------------------------------------------------------------------------------------------
# Combining ranker and retriever


def rerank(hits: list[SearchHit], scores: np.ndarray | Sequence[float], k: int) -> list[SearchHit]:
    """The first ``k`` hits in ranker order (retriever order breaks ties), the rest untouched.

    ``scores[i]`` is the ranker's score of ``hits[i]`` for ``i < min(k, len(hits))``. The re-ranked
    hits take the retriever's score slots (the top ``k`` scores, highest first, handed out in the
    new order) so scores stay monotone, and get ``"ranker"`` in ``sources``.
    """
    n = min(max(k, 0), len(hits))
    if n <= 1:
        return list(hits)
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.shape[0] < n:
        raise ValueError(f"{values.shape[0]} ranker scores for the top {n} hits")
    head = hits[:n]
    order = sorted(range(n), key=lambda i: (-_finite(float(values[i])), -head[i].score, i))
    slots = sorted((h.score for h in head), reverse=True)
    out = []
    for slot, i in zip(slots, order, strict=True):
        hit = head[i]
        sources = hit.sources if RANKER_SOURCE in hit.sources else (*hit.sources, RANKER_SOURCE)
        out.append(dataclasses.replace(hit, score=slot, sources=sources))
    return out + list(hits[n:])


def _finite(value: float) -> float:
    return float(value) if np.isfinite(value) else float("-inf")


@dataclass(frozen=True)
class RerankInfo:
    k: int  # hits actually re-ranked
    seconds: float
    skipped: str | None = None  # why the ranker was not applied, if it was not


def rerank_hits(ranker: OnnxRanker | None, query: str, hits: list[SearchHit], texts: Sequence[str], k: int
                ) -> tuple[list[SearchHit], RerankInfo]:
    """Score the first ``k`` hits (``texts[i]`` is the code of ``hits[i]``) and re-rank them.

    Never raises for a failing ranker: the retriever's order comes back with the reason in
    ``RerankInfo.skipped`` (also logged).
    """
    n = min(max(k, 0), len(hits), len(texts))
    if ranker is None:
        return list(hits), RerankInfo(0, 0.0, "no ranker configured")
    if n <= 1:
        return list(hits), RerankInfo(n, 0.0, None)
    started = time.perf_counter()
    try:
        scores = ranker.score(query, list(texts[:n]))
    except Exception as exc:
        reason = f"the ranker failed ({type(exc).__name__}: {exc}); results are in retrieval order"
        log.warning("%s", reason)
        return list(hits), RerankInfo(0, time.perf_counter() - started, reason)
    return rerank(hits, scores, n), RerankInfo(n, time.perf_counter() - started, None)
