"""Retrieval evaluation on BEIR folders: MRR, NDCG@10 and Recall@1/5/10/100.

Models are PyTorch encoders (the default name, a checkpoint or HF folder, a hub id), encoded with
torch, or exported ONNX models (a folder with ``manifest.json``), encoded through the engine's
``codesearch.embed.encoder.OnnxEncoder`` when it is importable and with onnxruntime directly otherwise.

Metrics use the full ranking of the (possibly capped) corpus: MRR is the mean reciprocal rank of
the first relevant document (no cut-off), NDCG@10 uses linear gains from the qrels scores, and
Recall@k is the share of a query's relevant documents in its top k.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

RECALL_KS = (1, 5, 10, 100)
METRICS = ("mrr", "ndcg@10", *(f"recall@{k}" for k in RECALL_KS))

FloatArray = npt.NDArray[np.float32]


@dataclass
class BeirData:
    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]] = field(default_factory=dict)


def _qrels_file(folder: Path) -> Path:
    for candidate in ("qrels.tsv", "qrels/test.tsv", "qrels/dev.tsv", "qrels/train.tsv"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(f"{folder}: no qrels.tsv (nor qrels/test.tsv, dev.tsv, train.tsv)")


def dataset_name(folder: Path) -> str:
    folder = Path(folder).resolve()
    return f"{folder.parent.name}/{folder.name}"


def load_beir(
    folder: str | os.PathLike[str],
    *,
    max_queries: int | None = None,
    max_corpus: int | None = None,
    seed: int = 0,
) -> BeirData:
    """Read a BEIR folder. ``max_queries`` keeps a seeded random sample of the judged queries;
    ``max_corpus`` keeps every document relevant to a kept query plus a seeded random sample of
    the others up to that many documents (a capped corpus makes retrieval easier: say so)."""
    folder = Path(folder)
    corpus: dict[str, str] = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                title, text = str(d.get("title") or ""), str(d.get("text") or "")
                corpus[str(d["_id"])] = f"{title}\n{text}" if title.strip() else text
    queries: dict[str, str] = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                q = json.loads(line)
                queries[str(q["_id"])] = str(q["text"])
    qrels: dict[str, dict[str, float]] = {}
    with open(_qrels_file(folder), encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (n == 0 and not parts[2].replace(".", "").lstrip("-").isdigit()):
                continue
            qid, did, score = parts[0], parts[1], float(parts[2])
            if score > 0 and qid in queries and did in corpus:
                qrels.setdefault(qid, {})[did] = score
    queries = {qid: text for qid, text in queries.items() if qid in qrels}
    rng = random.Random(seed)
    if max_queries is not None and len(queries) > max_queries:
        keep = set(rng.sample(sorted(queries), max_queries))
        queries = {q: t for q, t in queries.items() if q in keep}
        qrels = {q: r for q, r in qrels.items() if q in keep}
    if max_corpus is not None and len(corpus) > max_corpus:
        needed = {d for rel in qrels.values() for d in rel}
        others = sorted(d for d in corpus if d not in needed)
        extra = rng.sample(others, max(0, min(len(others), max_corpus - len(needed))))
        keep_docs = needed | set(extra)
        corpus = {d: t for d, t in corpus.items() if d in keep_docs}
    return BeirData(name=dataset_name(folder), corpus=corpus, queries=queries, qrels=qrels)


def retrieval_metrics(
    scores: FloatArray, relevance: Sequence[dict[int, float]], ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """Mean MRR, NDCG@10 and Recall@k from a [queries, documents] score matrix and, per query,
    {document column: graded relevance}."""
    n_q = scores.shape[0]
    if n_q == 0:
        return {m: float("nan") for m in METRICS}
    totals = dict.fromkeys(("mrr", "ndcg@10", *(f"recall@{k}" for k in ks)), 0.0)
    for i in range(n_q):
        rel = relevance[i]
        row = scores[i]
        rel_cols = np.fromiter(rel.keys(), dtype=np.int64)
        # rank of each relevant document = 1 + number of documents scored strictly higher
        # (ties broken in favour of the relevant document, as they are measure-zero for floats)
        ranks = np.sort(1 + (row[None, :] > row[rel_cols][:, None]).sum(axis=1))
        totals["mrr"] += 1.0 / ranks[0]
        gains = {int(c): g for c, g in rel.items()}
        order = np.argsort(-row, kind="stable")[:10]
        dcg = sum(gains.get(int(d), 0.0) / math.log2(r + 2) for r, d in enumerate(order))
        ideal = sorted(gains.values(), reverse=True)[:10]
        idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
        totals["ndcg@10"] += dcg / idcg if idcg else 0.0
        for k in ks:
            totals[f"recall@{k}"] += float((ranks <= k).sum()) / len(rel_cols)
    return {name: value / n_q for name, value in totals.items()}


class TextEncoder(Protocol):
    def encode_queries(self, texts: Sequence[str]) -> FloatArray: ...

    def encode_documents(self, texts: Sequence[str]) -> FloatArray: ...


class TorchTextEncoder:
    """A PyTorch encoder (``model.Encoder``) behind the engine's encoder interface."""

    def __init__(self, encoder: Any, batch_size: int = 64, query_max_length: int | None = None) -> None:
        self.encoder = encoder
        self.batch_size = batch_size
        self.query_max_length = query_max_length

    @classmethod
    def load(cls, name: str, *, device: str | None = None, batch_size: int = 64) -> TorchTextEncoder:
        import torch

        from .model import load_encoder

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(load_encoder(name, device=dev), batch_size=batch_size)

    def encode_queries(self, texts: Sequence[str]) -> FloatArray:
        s = self.encoder.settings
        out = self.encoder.encode(texts, max_length=self.query_max_length, batch_size=self.batch_size,
                                  prefix=s.query_prefix)
        return np.asarray(out.numpy(), dtype=np.float32)

    def encode_documents(self, texts: Sequence[str]) -> FloatArray:
        s = self.encoder.settings
        out = self.encoder.encode(texts, batch_size=self.batch_size, prefix=s.document_prefix)
        return np.asarray(out.numpy(), dtype=np.float32)


class OrtEncoder:
    """Minimal onnxruntime encoder for an exported folder (used when the engine's is missing)."""

    def __init__(self, folder: str | os.PathLike[str], batch_size: int = 32) -> None:
        import onnxruntime as ort
        from codesearch.embed.manifest import ModelManifest
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.manifest = ModelManifest.read(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / self.manifest.tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.manifest.max_length)
        opts = ort.SessionOptions()
        self.session = ort.InferenceSession(
            str(folder / self.manifest.onnx_file), opts, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.batch_size = batch_size

    def _encode(self, texts: Sequence[str], prefix: str) -> FloatArray:
        dim = self.manifest.dimension
        out = np.zeros((len(texts), dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encs = self.tokenizer.encode_batch([prefix + texts[i] for i in idx])
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for r, e in enumerate(encs):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = e.attention_mask
                types[r, : len(e.ids)] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: v for k, v in feeds.items() if k in self.input_names}
            (emb,) = self.session.run([self.manifest.output], feeds)
            out[idx] = np.asarray(emb, dtype=np.float32)
        return out

    def encode_queries(self, texts: Sequence[str]) -> FloatArray:
        return self._encode(texts, self.manifest.query_prefix)

    def encode_documents(self, texts: Sequence[str]) -> FloatArray:
        return self._encode(texts, self.manifest.document_prefix)


def is_onnx_model(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "manifest.json").is_file()


def open_encoder(name: str, *, device: str | None = None, batch_size: int = 64) -> TextEncoder:
    """An exported ONNX folder through the engine (or onnxruntime), anything else through torch."""
    if is_onnx_model(name):
        try:
            from codesearch.embed.encoder import OnnxEncoder
        except ImportError:
            return OrtEncoder(name)
        encoder: TextEncoder = OnnxEncoder.from_folder(Path(name))
        return encoder
    return TorchTextEncoder.load(name, device=device, batch_size=batch_size)


def evaluate(encoder: TextEncoder, data: BeirData) -> dict[str, float]:
    """Metrics of one encoder on one dataset, plus sizes and encoding time."""
    t0 = time.perf_counter()
    doc_ids = list(data.corpus)
    q_ids = list(data.queries)
    docs = encoder.encode_documents([data.corpus[d] for d in doc_ids])
    queries = encoder.encode_queries([data.queries[q] for q in q_ids])
    scores = (queries @ docs.T).astype(np.float32)
    col = {d: i for i, d in enumerate(doc_ids)}
    relevance = [{col[d]: s for d, s in data.qrels[q].items()} for q in q_ids]
    result = retrieval_metrics(scores, relevance)
    result["queries"] = float(len(q_ids))
    result["documents"] = float(len(doc_ids))
    result["seconds"] = time.perf_counter() - t0
    return result


def format_table(results: list[dict[str, Any]]) -> str:
    """One row per (model, dataset): ``results`` items hold model, dataset and the metrics."""
    headers = ["model", "dataset", "queries", "docs", *(m.upper() if m == "mrr" else m for m in METRICS)]
    rows = []
    for r in results:
        m = r["metrics"]
        rows.append(
            [r["model"], r["dataset"], str(int(m["queries"])), str(int(m["documents"]))]
            + [f"{m[k]:.4f}" for k in METRICS]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
