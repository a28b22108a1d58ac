"""The default model: a shipped exported folder is loaded as it is (no torch, no export); without one
the base model is exported; the base model stays reachable by name; the package that installs it.

The mechanism is tested on a tiny exported model standing in for the shipped one. The checks of the
real shipped model (manifest, size, model card, parity with its checkpoint) run when
``models/codesearch_models/default`` exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from codesearch.embed import model_specs as models
from codesearch.embed.encoder import OnnxEncoder
from codesearch.embed.manifest import ModelManifest
from conftest import source_copy

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "codesearch_models" / "default"
MAX_BYTES = 25 * 10**6
shipped_only = pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(),
                                  reason="no default model is shipped in models/codesearch_models/default")


def _no_export(*args: object) -> None:
    raise AssertionError("the default model must not be exported")


def test_a_shipped_default_is_loaded_as_it_is(
    stand_in_models_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "_package_folder",
                        lambda package: stand_in_models_package if package == models.SHIPPED_PACKAGE else None)
    monkeypatch.setattr(models, "run_export", _no_export)
    for spec in (None, "", "default"):  # the base model's package is not even looked for
        models.check_model_spec(spec)
        assert models.resolve_model(spec) == stand_in_models_package / "default"
    encoder = OnnxEncoder.from_folder(models.resolve_model(None), device="cpu")
    assert encoder.encode_documents(["def add(a, b):\n    return a + b\n"]).shape == (1, encoder.dimension)


def test_without_a_shipped_model_the_default_is_the_base_export(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exported: list[tuple[str, str]] = []

    def fake_export(source: str, target: Path, model_id: str) -> None:
        exported.append((source, model_id))
        target.mkdir(parents=True)
        ModelManifest(id=model_id, dimension=4, max_length=16).write(target)

    real = models._package_folder
    monkeypatch.setattr(models, "_package_folder",
                        lambda package: None if package == models.SHIPPED_PACKAGE else real(package))
    monkeypatch.setattr(models, "run_export", fake_export)
    monkeypatch.setenv("CODESEARCH_CACHE_DIR", str(tmp_path))  # an empty cache, not the shared exports
    folder = models.resolve_model(None)
    assert exported == [(str(models.base_model_source()), models.BASE_MODEL_ID)]
    assert folder.name.startswith("minilm-") and folder.parent == tmp_path / "models"
    assert models.resolve_model("minilm") == folder  # the same export, by name


def test_the_base_model_is_reachable_by_name() -> None:
    for name in models.BASE_MODEL_NAMES:
        source, target, model_id = models.export_target(name)
        assert Path(source) == models.base_model_source() and model_id == models.BASE_MODEL_ID
        assert target.name.startswith("minilm-")


def test_a_damaged_shipped_model_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    monkeypatch.setattr(models, "_package_folder", lambda package: tmp_path)
    with pytest.raises(models.ModelError, match="damaged"):
        models.resolve_model(None)


@pytest.mark.slow
def test_a_wheel_installs_the_models_package(tmp_path: Path) -> None:
    """A normal (non-editable) install gets codesearch_models, and the default model when one is shipped."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source_copy(tmp_path / "src"))], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("codesearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "codesearch_models/__init__.py" in names
    shipped = {f"codesearch_models/default/{p.name}" for p in SHIPPED.glob("*")} if SHIPPED.is_dir() else set()
    assert shipped <= names


@shipped_only
def test_shipped_manifest_files_size_and_card() -> None:
    manifest = ModelManifest.read(SHIPPED)
    manifest.verify_files(SHIPPED)  # the sha256 of model.onnx included
    assert (manifest.kind, manifest.pooling, manifest.normalize) == ("encoder", "mean", True)
    assert manifest.precision == "int8" and manifest.dimension == 384
    # int8 weights, fp32 arithmetic (trainer export --int8-weights): near-lossless
    assert manifest.extra["int8"]["weights_only"] is True
    assert manifest.extra["int8"]["min_cosine_to_fp32_torch"] >= 0.998
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) <= MAX_BYTES
    card = (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert manifest.sha256 in card and "trainer export" in card


@shipped_only
def test_shipped_model_reproduces_the_checkpoint_it_came_from() -> None:
    """reference.json holds the fp32 PyTorch checkpoint's embeddings, written by `trainer export --int8`."""
    reference = json.loads((SHIPPED / "reference.json").read_text(encoding="utf-8"))
    manifest = ModelManifest.read(SHIPPED)
    assert reference["max_length"] == manifest.max_length
    got = OnnxEncoder(SHIPPED, manifest, device="cpu").encode_documents(reference["texts"])
    want = np.asarray(reference["embeddings"], dtype=np.float32)
    cosines = (got * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.998, cosines
    assert cosines.mean() == pytest.approx(manifest.extra["int8"]["mean_cosine_to_fp32_torch"], abs=2e-3)


@shipped_only
def test_shipped_model_matches_its_checkpoint_in_torch() -> None:
    """Live, where torch and the checkpoint are at hand (CODESEARCH_DEFAULT_CHECKPOINT, or the base
    model's package when the card says the default is the quantised base model)."""
    pytest.importorskip("torch")
    from codesearch_trainer.model import load_encoder

    reference = json.loads((SHIPPED / "reference.json").read_text(encoding="utf-8"))
    checkpoint = os.environ.get("CODESEARCH_DEFAULT_CHECKPOINT")
    if not checkpoint and reference["checkpoint"] in models.BASE_MODEL_NAMES:
        checkpoint = str(models.base_model_source())
    if not checkpoint:
        pytest.skip("set CODESEARCH_DEFAULT_CHECKPOINT to the checkpoint the default was exported from")
    live = load_encoder(checkpoint).encode(reference["texts"], max_length=reference["max_length"]).numpy()
    np.testing.assert_allclose(live, np.asarray(reference["embeddings"]), atol=1e-4)


@shipped_only
def test_shipped_model_embeds_a_text_the_same_alone_and_in_a_batch() -> None:
    """Its arithmetic is fp32 (no activations quantised at run time), so a vector does not depend on
    the other texts of its batch: an index built in batches matches a query embedded alone."""
    texts = ["x", "def add(a, b):\n    return a + b\n" * 20, "parse the retry header and back off", "é ü 数字"]
    encoder = OnnxEncoder.from_folder(SHIPPED, device="cpu")
    together = encoder.encode_documents(texts)
    alone = np.stack([encoder.encode_documents([t])[0] for t in texts])
    assert (together * alone).sum(axis=1).min() >= 0.99999


@shipped_only
def test_shipped_model_never_shares_vectors_with_the_fp32_base() -> None:
    """Same checkpoint, other weights: the key the engine files vectors under differs, so an index made
    with one is re-embedded, never mixed, when the other is used."""
    pytest.importorskip("torch")
    base = ModelManifest.read(models.resolve_model("minilm"))
    shipped = ModelManifest.read(SHIPPED)
    assert base.model_key != shipped.model_key and base.id != shipped.id
