"""`trainer export`: the tiny model's ONNX graph reproduces PyTorch, and evaluates like it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("codesearch.embed.onnx_export")

from codesearch.embed.manifest import ModelManifest
from codesearch_trainer.cli import main
from codesearch_trainer.evaluate import OrtEncoder, TorchTextEncoder, open_encoder
from codesearch_trainer.export import PROBE_TEXTS, quantize_int8
from codesearch_trainer.model import load_encoder
from codesearch_trainer.testing import tiny_bert


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_export_parity_and_int8_report(tmp_path: Path) -> None:
    tiny = tiny_bert(tmp_path / "bert", max_length=64)
    out = tmp_path / "onnx"
    res = CliRunner().invoke(main, ["export", str(tiny), str(out)])
    assert res.exit_code == 0, res.output
    manifest = ModelManifest.read(out)
    assert manifest.dimension == 32 and manifest.max_length == 64 and manifest.pooling == "mean"
    assert manifest.extra["parity_min_cosine"] >= 0.9999
    texts = list(PROBE_TEXTS)
    reference = load_encoder(tiny).encode(texts).numpy()
    for encoder in (OrtEncoder(out), open_encoder(str(out))):
        got = encoder.encode_documents(texts)
        assert _cos(got, reference).min() >= 0.9999
    assert isinstance(open_encoder(str(tiny)), TorchTextEncoder)

    # int8 on a copy of the validated export (a second export would only repeat the above)
    out8 = tmp_path / "onnx8"
    shutil.copytree(out, out8)
    report = quantize_int8(out8, tiny)
    assert 0 < report.min_cosine <= report.mean_cosine <= 1.0001
    m8 = json.loads((out8 / "manifest.json").read_text())
    assert m8["precision"] == "int8"
    assert m8["extra"]["int8"]["mean_cosine_to_fp32_torch"] == pytest.approx(report.mean_cosine)
    ModelManifest.read(out8).verify_files(out8)
    got8 = OrtEncoder(out8).encode_documents(texts)
    assert _cos(got8, reference).mean() == pytest.approx(report.mean_cosine, abs=1e-4)
    # weights only: fp32 arithmetic, so closer to the reference, and the same vectors in any batch
    outw = tmp_path / "onnxw"
    shutil.copytree(out, outw)
    report_w = quantize_int8(outw, tiny, weights_only=True)
    mw = ModelManifest.read(outw)
    assert mw.precision == "int8" and mw.extra["int8"]["weights_only"] is True
    import onnx

    graph = onnx.load(str(outw / "model.onnx")).graph
    dequantised = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in dequantised]
    assert len(matmuls) >= 2 * 6  # per layer: q, k, v, attention output, two FFN
    assert any(t.data_type == onnx.TensorProto.INT8 and t.dims[0] > 100 for t in graph.initializer)  # words
    enc_w = OrtEncoder(outw)
    together = enc_w.encode_documents(texts)
    alone = np.concatenate([enc_w.encode_documents([t]) for t in texts])
    assert _cos(together, alone).min() > 0.99999
    assert _cos(together, reference).min() >= 0.999 and report_w.min_cosine >= 0.999
    assert report_w.min_cosine >= report.min_cosine

    recorded = json.loads((out8 / "reference.json").read_text())
    assert recorded["texts"] == texts and recorded["max_length"] == 64
    np.testing.assert_allclose(np.array(recorded["embeddings"]), reference, atol=1e-5)
