"""The fp16 copy of an fp32 model (the base model), made and checked the way a GPU gets it, here on the CPU provider."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from codesearch.embed import fp16
from codesearch.embed.encoder import CPU, OnnxEncoder
from codesearch.embed.loading import forget_loaded, load_encoder
from codesearch.embed.manifest import ModelManifest

pytestmark = pytest.mark.slow

TEXTS = ["parse the retry header", "def add(a, b):\n    return a + b\n" * 20, "x", "class Pool: pass"]


def test_converted_once_checked_and_same_vectors(base_model_dir: Path) -> None:
    manifest = ModelManifest.read(base_model_dir)
    said: list[str] = []
    onnx_path, report = fp16.fp16_model(base_model_dir, manifest, CPU, said.append)
    assert onnx_path.is_file()
    assert onnx_path.parent.parent.resolve() == base_model_dir.parent.resolve()  # next to the fp32 export
    assert float(str(report["min_cosine"])) >= fp16.FP16_MIN_COSINE == report["threshold"]
    assert report["provider"] == CPU and report["source_sha256"] == manifest.sha256
    assert onnx_path.stat().st_size < 0.6 * (base_model_dir / manifest.onnx_file).stat().st_size
    again: list[str] = []
    assert fp16.fp16_model(base_model_dir, manifest, CPU, again.append)[0] == onnx_path
    assert not again  # converted once

    half = OnnxEncoder(base_model_dir, manifest, device="cpu", onnx_path=onnx_path, precision="fp16")
    full = OnnxEncoder(base_model_dir, manifest, device="cpu")
    assert half.model_key == full.model_key  # vectors of both mix in one index
    cosines = np.sum(half.encode_documents(TEXTS) * full.encode_documents(TEXTS), axis=1)
    assert cosines.min() >= fp16.FP16_MIN_COSINE
    assert "fp16" in half.provider_reason


def test_a_copy_that_does_not_reproduce_fp32_is_refused(base_model_dir: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    def damaged(source: Path, out: Path) -> None:
        fp16.convert(source, out)
        model = onnx.load(str(out))
        rng = np.random.default_rng(0)
        for init in model.graph.initializer:
            weights = numpy_helper.to_array(init)
            if weights.ndim == 2 and weights.size > 10_000:
                noisy = weights + rng.normal(0, 0.05, weights.shape).astype(weights.dtype)
                init.CopyFrom(numpy_helper.from_array(noisy, init.name))
        onnx.save(model, str(out))

    target = tmp_path / "fp16"
    with pytest.raises(fp16.Fp16Error, match="does not reproduce"):
        fp16.convert_and_check(base_model_dir, target, CPU, converter=damaged)
    assert not target.exists()


def test_the_engine_loads_fp16_when_asked_and_fp32_otherwise(base_model_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fp16.FP16_ENV, "on")
    forget_loaded()
    try:
        encoder = load_encoder(str(base_model_dir), "cpu")
        assert isinstance(encoder, OnnxEncoder) and encoder.precision == "fp16"
        assert encoder.onnx_path.name == "model.onnx" and "fp16" in encoder.onnx_path.parent.name
        monkeypatch.setenv(fp16.FP16_ENV, "auto")  # the default: fp16 on CUDA only
        forget_loaded()
        encoder = load_encoder(str(base_model_dir), "cpu")
        assert isinstance(encoder, OnnxEncoder) and encoder.precision == "fp32"
    finally:
        forget_loaded()


def test_only_an_fp32_model_is_converted(default_model_dir: Path) -> None:
    manifest = ModelManifest.read(default_model_dir)
    if manifest.precision == "fp32":
        pytest.skip("no int8 default ships in this checkout")
    with pytest.raises(fp16.Fp16Error, match="not fp32"):
        fp16.fp16_model(default_model_dir, manifest, CPU)


def test_a_stale_report_is_not_trusted(base_model_dir: Path) -> None:
    manifest = ModelManifest.read(base_model_dir)
    onnx_path, _ = fp16.fp16_model(base_model_dir, manifest, CPU)
    report_path = onnx_path.parent / fp16.REPORT
    original = report_path.read_text()
    try:
        report_path.write_text(json.dumps({**json.loads(original), "source_sha256": "0" * 64}))
        assert fp16.read_report(onnx_path.parent, manifest) is None
        report_path.write_text(json.dumps({**json.loads(original), "min_cosine": 0.9}))
        assert fp16.read_report(onnx_path.parent, manifest) is None
    finally:
        report_path.write_text(original)
