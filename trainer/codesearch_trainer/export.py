"""``trainer export``: a checkpoint to the engine's ONNX model folder, validated.

The graph itself (pooling and normalisation inside), the manifest and the parity check
(cosine ≥ 0.9999 against PyTorch on a mixed-length batch) are the engine's
``codesearch.embed.onnx_export.export_encoder``; this module supplies the checkpoint's settings and
training record, and the optional int8 variant, whose quality loss it measures and prints. The
int8 graph uses dynamic quantisation with one scale per output channel of each weight matrix:
with a single scale per matrix (onnxruntime's default) all-MiniLM-L6-v2 fell to a mean cosine of
0.934 to the fp32 model on code (min 0.863); per channel it keeps 0.994 (min 0.988), and it is
faster as well (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .model import TRAINER_CONFIG, read_settings, resolve_model

# A mixed-length batch: short queries, one-liners, and functions long enough to hit truncation.
PROBE_TEXTS: tuple[str, ...] = (
    "read a file",
    "parse a date string into a datetime object",
    "def add(a, b):\n    return a + b\n",
    "function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n    clearTimeout(t);\n"
    "    t = setTimeout(() => fn(...args), ms);\n  };\n}\n",
    "class LRUCache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n"
    "        self.data = OrderedDict()\n\n    def get(self, key):\n        if key not in self.data:\n"
    "            return None\n        self.data.move_to_end(key)\n        return self.data[key]\n",
    "\n".join(f"    total_{i} = compute_value(items[{i}], weight={i} * factor) + offset_{i}" for i in range(60)),
    "SELECT name, count(*) FROM users GROUP BY name HAVING count(*) > 1",
    "how do I retry an HTTP request with exponential backoff?",
)


@dataclass(frozen=True)
class Int8Report:
    mean_cosine: float
    min_cosine: float
    fp32_bytes: int
    int8_bytes: int


def _training_record(source: Path) -> dict[str, Any]:
    own = source / TRAINER_CONFIG
    if not own.is_file():
        return {}
    data = json.loads(own.read_text(encoding="utf-8"))
    training = data.get("training")
    return {"training": training} if training else {}


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fp16: bool = False,
    max_length: int | None = None,
    model_id: str | None = None,
) -> Any:
    """Export and validate; returns the engine's ``ModelManifest``."""
    try:
        from codesearch.embed.onnx_export import export_encoder
    except ImportError as exc:
        raise RuntimeError("trainer export needs codesearch.embed.onnx_export (the engine's exporter)") from exc
    source = Path(resolve_model(str(checkpoint)))
    settings = read_settings(source)
    return export_encoder(
        source,
        Path(out),
        max_length=max_length or settings.max_length,
        pooling=settings.pooling,
        normalize=settings.normalize,
        query_prefix=settings.query_prefix,
        document_prefix=settings.document_prefix,
        fp16=fp16,
        model_id=model_id or str(checkpoint),
        extra=_training_record(source),
    )


DYNAMIC_METHOD = ("onnxruntime quantize_dynamic: QInt8 weights per channel, activations quantised at run time "
                  "with one scale per tensor (so an embedding depends slightly on its batch)")
WEIGHTS_METHOD = "int8 weights per output channel + DequantizeLinear, fp32 activations (weight_quant.py)"


def _write_int8(fp32: Path, int8: Path, weights_only: bool) -> str:
    if weights_only:
        import onnx

        from .weight_quant import quantize_weights

        model = onnx.load(str(fp32))
        quantize_weights(model)
        onnx.save(model, str(int8))
        return WEIGHTS_METHOD
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    return DYNAMIC_METHOD


def quantize_int8(folder: str | os.PathLike[str], checkpoint: str | os.PathLike[str], *,
                  weights_only: bool = False) -> Int8Report:
    """Replace the exported fp32 graph by an int8 one, measuring cosine to PyTorch.

    ``weights_only``: int8 weights, fp32 arithmetic (``weight_quant.py``): near-lossless and
    batch-independent, fp32 speed. Otherwise onnxruntime's dynamic quantisation: faster, lossier.
    The manifest records ``precision: int8`` and the measured figures under ``extra.int8``.
    """
    from codesearch.embed.manifest import ModelManifest, file_sha256

    from .evaluate import OrtEncoder
    from .model import load_encoder

    folder = Path(folder)
    manifest = ModelManifest.read(folder)
    fp32 = folder / manifest.onnx_file
    int8 = folder / "model.int8.onnx"
    method = _write_int8(fp32, int8, weights_only)
    fp32_bytes, int8_bytes = fp32.stat().st_size, int8.stat().st_size
    backup = folder / "model.fp32.onnx.tmp"
    shutil.move(fp32, backup)
    shutil.move(int8, fp32)
    try:
        got = OrtEncoder(folder).encode_documents(list(PROBE_TEXTS))
    except Exception:
        shutil.move(backup, fp32)
        raise
    backup.unlink()
    reference = load_encoder(resolve_model(str(checkpoint))).encode(
        list(PROBE_TEXTS), max_length=manifest.max_length).numpy()
    write_reference(folder, str(checkpoint), manifest.max_length, reference)
    cos = (got * reference).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1)
    )
    report = Int8Report(float(cos.mean()), float(cos.min()), fp32_bytes, int8_bytes)
    extra = dict(manifest.extra)
    extra["int8"] = {"mean_cosine_to_fp32_torch": report.mean_cosine,
                     "min_cosine_to_fp32_torch": report.min_cosine,
                     "method": method, "weights_only": weights_only}
    replace(manifest, precision="int8", sha256=file_sha256(fp32), extra=extra).write(folder)
    return report


REFERENCE_FILE = "reference.json"


def write_reference(folder: Path, checkpoint: str, max_length: int, embeddings: np.ndarray) -> Path:
    """The fp32 PyTorch checkpoint's embeddings of ``PROBE_TEXTS``, kept beside a quantised graph so
    that its parity with the checkpoint it came from can be checked without the checkpoint."""
    path = folder / REFERENCE_FILE
    data = {"checkpoint": checkpoint, "max_length": max_length, "texts": list(PROBE_TEXTS),
            "embeddings": [[round(float(x), 6) for x in row] for row in embeddings]}
    path.write_text(json.dumps(data) + "\n", encoding="utf-8")
    return path
