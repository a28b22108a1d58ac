"""The ONNX encoder on the real default model: batching parity, provider report, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from codesearch.embed.encoder import CPU, OnnxEncoder, ProviderError, choose_provider
from codesearch.embed.manifest import ModelManifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder(default_model_dir: Path) -> OnnxEncoder:
    return OnnxEncoder.from_folder(default_model_dir, device="cpu")


def test_manifest_of_the_default_model(default_model_dir: Path) -> None:
    manifest = ModelManifest.read(default_model_dir)
    assert (manifest.dimension, manifest.pooling, manifest.normalize) == (384, "mean", True)
    assert manifest.extra["parity_min_cosine"] >= 0.9999  # the fp32 graph against PyTorch, before int8
    manifest.verify_files(default_model_dir)


def test_the_base_model_exports_by_name() -> None:
    """all-MiniLM-L6-v2 stays available by name, exported once (in a child process, with torch)."""
    pytest.importorskip("torch")
    from codesearch.embed.model_specs import resolve_model

    folder = resolve_model("minilm")
    manifest = ModelManifest.read(folder)
    assert manifest.id == "sentence-transformers/all-MiniLM-L6-v2" and manifest.precision == "fp32"
    assert (manifest.dimension, manifest.max_length) == (384, 256)
    assert manifest.extra["parity_min_cosine"] >= 0.9999
    manifest.verify_files(folder)


def test_batching_and_padding_do_not_change_vectors(encoder: OnnxEncoder) -> None:
    texts = ["x", "parse the retry header", "def f(a, b):\n    return a + b\n" * 30, "ok", "é ü 数字"]
    together = encoder.encode_documents(texts)
    alone = np.stack([encoder.encode_documents([t])[0] for t in texts])
    assert together.shape == (5, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    assert (np.sum(together * alone, axis=1) > 0.9999).all()
    assert encoder.encode_documents([]).shape == (0, 384)


def test_provider_is_reported(encoder: OnnxEncoder) -> None:
    assert encoder.provider == CPU and encoder.provider_reason
    choice = choose_provider("auto")
    assert choice.provider in (CPU, "CUDAExecutionProvider") and choice.reason
    with pytest.raises(ProviderError):
        choose_provider("tpu")


def test_query_is_not_queued_behind_a_document_batch(encoder: OnnxEncoder) -> None:
    docs = ["class Pool:\n    def acquire(self, host):\n        return self.idle.pop()\n" * 12] * 48
    done = threading.Event()

    def embed() -> None:
        encoder.encode_documents(docs)
        done.set()

    worker = threading.Thread(target=embed)
    worker.start()
    try:
        vec = encoder.encode_queries(["reuse idle sockets"])
        finished_first = not done.is_set()
    finally:
        worker.join()
    assert vec.shape == (1, 384)
    assert finished_first  # the query came back while the documents were still being embedded


def test_prepared_batches_and_the_pipeline_match_encode_documents(encoder: OnnxEncoder,
                                                                   default_model_dir: Path) -> None:
    from codesearch.embed.pipeline import EmbeddingPipeline
    from codesearch.embed.sessions import Layout

    two = OnnxEncoder.from_folder(default_model_dir, device="cpu",
                                  layout=Layout(workers=2, threads=1, sessions=2, batch_size=4, max_batch_tokens=256))
    texts = [f"def handler_{i}(request):\n" + "    value = request.args.get('x')\n" * (i % 9) for i in range(23)]
    batches = two.prepare_documents(texts)
    assert sorted(r for b in batches for r in b.rows) == list(range(23))
    longest = [int(b.payload["attention_mask"].sum(axis=1).max()) for b in batches]
    assert longest == sorted(longest)  # length-bucketed
    assert all(len(b.rows) <= 4 and (b.tokens <= 256 or len(b.rows) == 1) for b in batches)
    with EmbeddingPipeline(two, enumerate(texts), window=10) as pipeline:
        got = {k: v for keys, vectors in pipeline for k, v in zip(keys, vectors, strict=True)}
    want = encoder.encode_documents(texts)
    assert min(float(got[i] @ want[i]) for i in range(23)) > 0.9999
    assert two._pool.for_worker(1) is not two._pool.for_worker(0)  # two sessions, as the layout says
