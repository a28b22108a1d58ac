"""Negatives for the ranker: ranking-based hard negatives mined with a frozen retriever, and the
in-batch random baseline.

Hard negatives (Dong et al., "Improving Code Search with Hard Negative Sampling Based on
Fine-tuning"): a frozen dual encoder ranks the whole training corpus (every training pair's code)
for each training query. Walking down that ranking from just *below* the gold code, we skip the
gold item and anything that duplicates it, and keep a window of candidates: ``window_start`` is the
first kept position (1 = the first non-duplicate candidate ranked below the gold item) and
``window_size`` how many are kept. Each step draws ``negatives_per_query`` of them at random.
Candidates ranked *above* the gold item are never used: they are the likeliest false negatives.

What counts as a duplicate of the gold item (never a negative):

- the same code after whitespace normalisation;
- a near duplicate: the retriever's code-to-code cosine ≥ ``near_dup_cosine``, or the Jaccard
  similarity of the two codes' token sets ≥ ``near_dup_jaccard``;
- a code whose own query is the same as this query (after normalisation): a second positive.

Embeddings are cached on disk (keyed by the retriever's identity and the exact texts), and so are
the mined windows (keyed by the pairs, the retriever and the mining settings), so re-runs are
cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .data import Pair

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
NEGATIVE_MODES = ("hard", "random")
NEGATIVES_FILE = "negatives.json"
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


class TextEncoder(Protocol):
    def encode_queries(self, texts: Sequence[str]) -> FloatArray: ...

    def encode_documents(self, texts: Sequence[str]) -> FloatArray: ...


@dataclass(frozen=True)
class MiningConfig:
    window_start: int = 1
    window_size: int = 16
    near_dup_cosine: float = 0.98
    near_dup_jaccard: float = 0.9

    def validate(self) -> None:
        if self.window_start < 1:
            raise ValueError("--window-start must be at least 1 (1 = the first candidate below the gold item)")
        if self.window_size < 1:
            raise ValueError("--window-size must be at least 1")


@dataclass
class MinedNegatives:
    """Per training pair: its window of negative candidates (corpus indices, best ranked first)
    and the retriever's 1-based rank of its gold code."""

    windows: list[list[int]]
    gold_ranks: list[int]
    duplicates_skipped: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def stats(self) -> dict[str, float]:
        ranks = np.asarray(self.gold_ranks, dtype=np.float64)
        sizes = np.asarray([len(w) for w in self.windows], dtype=np.float64)
        if not len(ranks):
            return {}
        return {
            "pairs": float(len(ranks)),
            "gold_rank_median": float(np.median(ranks)),
            "gold_at_1": float((ranks == 1).mean()),
            "gold_mrr": float((1.0 / ranks).mean()),
            "window_mean": float(sizes.mean()),
            "empty_windows": float((sizes == 0).sum()),
            "duplicates_skipped": float(self.duplicates_skipped),
        }


# ---------------------------------------------------------------------------------------------
# Duplicates


def normalize_code(text: str) -> str:
    return " ".join(text.split())


def normalize_query(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def code_tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / max(1, len(a | b))


class DuplicateFilter:
    """Decides whether corpus item ``candidate`` duplicates (or is another positive of) ``gold``."""

    def __init__(self, codes: Sequence[str], *, doc_vectors: FloatArray | None = None,
                 queries: Sequence[str] | None = None, near_dup_cosine: float = 0.98,
                 near_dup_jaccard: float = 0.9) -> None:
        self.codes = codes
        self.doc_vectors = doc_vectors
        self.near_dup_cosine = near_dup_cosine
        self.near_dup_jaccard = near_dup_jaccard
        self._norm = [hashlib.blake2b(normalize_code(c).encode(), digest_size=12).digest() for c in codes]
        self._queries = ([normalize_query(q) for q in queries] if queries is not None else None)
        self._tokens: dict[int, frozenset[str]] = {}

    def tokens(self, index: int) -> frozenset[str]:
        found = self._tokens.get(index)
        if found is None:
            found = self._tokens[index] = code_tokens(self.codes[index])
        return found

    def is_duplicate(self, gold: int, candidate: int) -> bool:
        if candidate == gold or self._norm[candidate] == self._norm[gold]:
            return True
        if self._queries is not None and self._queries[candidate] == self._queries[gold]:
            return True
        if self.doc_vectors is not None and float(self.doc_vectors[gold] @ self.doc_vectors[candidate]) \
                >= self.near_dup_cosine:
            return True
        return jaccard(self.tokens(gold), self.tokens(candidate)) >= self.near_dup_jaccard


# ---------------------------------------------------------------------------------------------
# Mining


def mine_hard_negatives(
    query_vectors: FloatArray,
    doc_vectors: FloatArray,
    codes: Sequence[str],
    *,
    gold: Sequence[int] | None = None,
    queries: Sequence[str] | None = None,
    config: MiningConfig = MiningConfig(),
    block: int = 512,
) -> MinedNegatives:
    """Windows of candidates ranked just below each query's gold document (see the module doc).

    ``query_vectors[i]`` is query ``i``, ``doc_vectors[j]`` corpus item ``j`` (normalised; the score
    is the dot product) and ``gold[i]`` the corpus index of query ``i``'s code (default ``i``).
    ``queries`` (the training queries, aligned with the corpus) lets a code whose own query equals
    this one count as a second positive rather than a negative.
    """
    config.validate()
    n_q, n_docs = query_vectors.shape[0], doc_vectors.shape[0]
    gold_idx = list(range(n_q)) if gold is None else list(gold)
    if len(gold_idx) != n_q:
        raise ValueError(f"{len(gold_idx)} gold indices for {n_q} queries")
    if len(codes) != n_docs:
        raise ValueError(f"{len(codes)} codes for {n_docs} document vectors")
    dup = DuplicateFilter(codes, doc_vectors=doc_vectors, queries=queries,
                          near_dup_cosine=config.near_dup_cosine, near_dup_jaccard=config.near_dup_jaccard)
    need = config.window_start - 1 + config.window_size
    windows: list[list[int]] = []
    ranks: list[int] = []
    skipped = 0
    positions = np.arange(n_docs)
    for start in range(0, n_q, block):
        scores = query_vectors[start : start + block] @ doc_vectors.T
        for row in range(scores.shape[0]):
            i = start + row
            g = gold_idx[i]
            s = scores[row]
            gold_score = s[g]
            ranks.append(1 + int((s > gold_score).sum()))
            # ranked below the gold item: lower score, or an equal score after it in index order
            below = np.flatnonzero((s < gold_score) | ((s == gold_score) & (positions > g)))
            kept: list[int] = []
            pool = max(4 * need + 16, 64)
            if len(below) > pool:  # the best `pool` first; the rest only if duplicates ate them
                first = below[np.argpartition(-s[below], pool)[:pool]]
                rest = np.setdiff1d(below, first, assume_unique=True)
            else:
                first, rest = below, below[:0]
            for part in (first, rest):
                if len(kept) >= need or not len(part):
                    break
                for j in part[np.argsort(-s[part], kind="stable")].tolist():
                    if dup.is_duplicate(g, j):
                        skipped += 1
                        continue
                    kept.append(j)
                    if len(kept) >= need:
                        break
            windows.append(kept[config.window_start - 1 : need])
    return MinedNegatives(windows=windows, gold_ranks=ranks, duplicates_skipped=skipped,
                          info={"config": asdict(config), "corpus": n_docs})


def sample_negatives(
    batch: Sequence[int],
    n: int,
    rng: random.Random,
    *,
    mode: str,
    corpus_size: int,
    duplicates: DuplicateFilter,
    mined: MinedNegatives | None = None,
) -> list[list[int]]:
    """``n`` negatives (corpus indices) for each pair index in ``batch``.

    ``hard``: drawn from the pair's mined window; ``random``: from the other pairs of the batch
    (in-batch random negatives). Either is topped up with random corpus items when it has fewer
    than ``n``; duplicates of the gold item are never returned.
    """
    if mode not in NEGATIVE_MODES:
        raise ValueError(f"negatives must be one of {NEGATIVE_MODES}, not {mode!r}")
    if mode == "hard" and mined is None:
        raise ValueError("hard negatives need mined windows")
    out: list[list[int]] = []
    for i in batch:
        if mode == "hard":
            assert mined is not None
            pool = [j for j in mined.windows[i] if not duplicates.is_duplicate(i, j)]
        else:
            pool = [j for j in batch if j != i and not duplicates.is_duplicate(i, j)]
        chosen = rng.sample(pool, n) if len(pool) > n else list(pool)
        tries = 0
        while len(chosen) < n and tries < 50 * n and corpus_size > 1:
            tries += 1
            j = rng.randrange(corpus_size)
            if j not in chosen and not duplicates.is_duplicate(i, j):
                chosen.append(j)
        out.append(chosen)
    return out


# ---------------------------------------------------------------------------------------------
# The retriever and cached embeddings


def retriever_key(spec: str) -> str:
    """Identity of a retriever for caches: the manifest's model key, or a folder fingerprint."""
    path = Path(spec)
    if (path / "manifest.json").is_file():
        from codesearch.embed.manifest import ModelManifest

        manifest = ModelManifest.read(path)
        return f"onnx:{manifest.model_key}:{manifest.sha256[:16]}"
    digest = hashlib.sha256(str(spec).encode())
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file():
                st = f.stat()
                digest.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return "torch:" + digest.hexdigest()[:24]


def open_retriever(spec: str, device: str | None = None, batch_size: int = 64) -> TextEncoder:
    """An exported dual encoder (the engine's ``OnnxEncoder``), or a PyTorch encoder folder run in
    fp32 (no autocast, so its scores match the exported graph's up to float rounding)."""
    if (Path(spec) / "manifest.json").is_file():
        from codesearch.embed.encoder import OnnxEncoder

        onnx: TextEncoder = OnnxEncoder.from_folder(Path(spec), device=_onnx_device(device))
        return onnx
    return TorchRetriever(spec, device=device, batch_size=batch_size)


def _onnx_device(device: str | None) -> str:
    if device is None:
        return "auto"
    return "cuda" if device.startswith("cuda") else "cpu" if device == "cpu" else "auto"


class TorchRetriever:
    """A PyTorch encoder (``model.load_encoder``) encoding in fp32 on ``device`` (CUDA when present)."""

    def __init__(self, name: str, device: str | None = None, batch_size: int = 64) -> None:
        import torch

        from .model import load_encoder

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.encoder = load_encoder(name, device=self.device).eval()
        self.batch_size = batch_size

    def _encode(self, texts: Sequence[str], prefix: str) -> FloatArray:
        vectors: FloatArray = self.encoder.encode(list(texts), batch_size=self.batch_size, prefix=prefix).numpy()
        return vectors

    def encode_queries(self, texts: Sequence[str]) -> FloatArray:
        return self._encode(texts, self.encoder.settings.query_prefix)

    def encode_documents(self, texts: Sequence[str]) -> FloatArray:
        return self._encode(texts, self.encoder.settings.document_prefix)


def texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def embed_cached(encoder: TextEncoder, texts: Sequence[str], *, kind: str, key: str,
                 cache_dir: str | os.PathLike[str] | None) -> FloatArray:
    """``encoder.encode_queries``/``encode_documents`` of ``texts``, cached as .npy in ``cache_dir``."""
    if kind not in ("queries", "documents"):
        raise ValueError(kind)
    path: Path | None = None
    if cache_dir is not None:
        name = hashlib.sha256(f"{key}|{kind}|{texts_digest(texts)}".encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"{kind}-{name}.npy"
        if path.is_file():
            return np.load(path)
    fn = encoder.encode_queries if kind == "queries" else encoder.encode_documents
    vectors = np.asarray(fn(list(texts)), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    return vectors


def mine_for_pairs(
    pairs: Sequence[Pair],
    retriever: str,
    config: MiningConfig,
    *,
    cache_dir: str | os.PathLike[str] | None,
    negatives_file: str | os.PathLike[str] | None = None,
    device: str | None = None,
    encoder: TextEncoder | None = None,
) -> MinedNegatives:
    """Mine windows for ``pairs`` (corpus = their codes), reusing ``negatives_file`` when it was
    made from the same pairs, retriever and settings."""
    key = retriever_key(retriever)
    queries = [p.query for p in pairs]
    codes = [p.code for p in pairs]
    identity = {"retriever": key, "pairs": texts_digest(queries + codes), "config": asdict(config)}
    if negatives_file is not None and Path(negatives_file).is_file():
        data = json.loads(Path(negatives_file).read_text(encoding="utf-8"))
        if data.get("identity") == identity:
            log.info("reusing mined negatives from %s", negatives_file)
            return MinedNegatives(windows=data["windows"], gold_ranks=data["gold_ranks"],
                                  duplicates_skipped=int(data.get("duplicates_skipped", 0)),
                                  info=data.get("info", {}))
    enc = encoder or open_retriever(retriever, device=device)
    q_vecs = embed_cached(enc, queries, kind="queries", key=key, cache_dir=cache_dir)
    d_vecs = embed_cached(enc, codes, kind="documents", key=key, cache_dir=cache_dir)
    mined = mine_hard_negatives(q_vecs, d_vecs, codes, queries=queries, config=config)
    mined.info.update(retriever=str(retriever), stats=mined.stats())
    if negatives_file is not None:
        path = Path(negatives_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"identity": identity, "windows": mined.windows, "gold_ranks": mined.gold_ranks,
                                   "duplicates_skipped": mined.duplicates_skipped, "info": mined.info}),
                       encoding="utf-8")
        tmp.replace(path)
    return mined
