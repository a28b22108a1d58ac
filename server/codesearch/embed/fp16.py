"""A half-precision copy of an fp32 encoder for GPUs, made once into the cache and checked before use.

On a GPU, fp16 embeds faster than fp32 for the same vectors (on an H200: 10,360 against 6,923
chunks/s, docs/benchmarks.md). The copy is converted from the exported fp32 graph (onnxruntime's
float16 converter, inputs and outputs kept fp32) into ``<cache>/models/<name>-fp16-<sha>/`` next to
the fp32 export, then run on the provider that will use it and compared with the fp32 graph on the
CPU over mixed-length texts: every text's cosine must reach :data:`FP16_MIN_COSINE`, or the copy is
refused and the fp32 model runs. Because of that check, fp16 vectors keep the fp32 model's key: an
index embedded on a GPU is searched on a CPU without re-embedding.

``CODESEARCH_FP16``: ``auto`` (default: fp16 on CUDA only), ``on`` (on any provider: how the tests run
this code on a CPU), ``off``. Converting needs the ``onnx`` package; it runs in a child process
(``python -m codesearch.embed.fp16``) so a server never imports onnx.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..paths import cache_root
from .encoder import CUDA, create_session, pad_encodings
from .manifest import ModelManifest, file_sha256

FP16_MIN_COSINE = 0.999  # per text, fp16 on the target provider against fp32 on the CPU
FP16_ENV = "CODESEARCH_FP16"
REPORT = "fp16.json"
ONNX_FILE = "model.onnx"

CHECK_TEXTS = (
    "parse the retry header and back off",
    "x",
    "def parse_retry_after(header: str) -> float:\n    return float(header.strip())",
    "class ConnectionPool:\n    def acquire(self):\n        sock = self._idle.pop() if self._idle "
    "else self._connect()\n        return sock\n" * 8,
    "función que ordena números — 数字を並べ替える",
    "SELECT id, name FROM users WHERE created_at > now() - interval '1 day' ORDER BY name",
    "fn fnv1a_hash(bytes: &[u8]) -> u64 { bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ *b as u64)"
    ".wrapping_mul(0x100000001b3)) }",
    "// TODO: remove once the upstream bug is fixed\n" * 40,
)


class Fp16Error(RuntimeError):
    """No usable fp16 copy: the converter is missing, or the copy does not reproduce the fp32 model."""


@dataclass(frozen=True)
class ParityCheck:
    min_cosine: float
    mean_cosine: float
    provider: str
    texts: int

    @property
    def ok(self) -> bool:
        return self.min_cosine >= FP16_MIN_COSINE


def wanted(provider: str) -> bool:
    mode = os.environ.get(FP16_ENV, "auto").strip().lower()
    if mode in ("on", "1", "yes", "true"):
        return True
    if mode in ("off", "0", "no", "false"):
        return False
    return provider == CUDA


def variant_dir(folder: Path, manifest: ModelManifest) -> Path:
    digest = manifest.sha256 or file_sha256(Path(folder) / manifest.onnx_file)
    return cache_root() / "models" / f"{Path(folder).resolve().name[-40:]}-fp16-{digest[:16]}"


def fp16_model(folder: Path, manifest: ModelManifest, provider: str,
               on_status: Callable[[str], None] | None = None) -> tuple[Path, dict[str, object]]:
    """(fp16 ONNX file, its check report) for this fp32 model folder, converting it once."""
    target = variant_dir(folder, manifest)
    found = read_report(target, manifest)
    if found is not None:
        return target / ONNX_FILE, found
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=1800):
        found = read_report(target, manifest)
        if found is None:
            if on_status:
                on_status(f"converting {manifest.id} to fp16 for {provider} (once) into {target}")
            _run_child(folder, target, provider)
            found = read_report(target, manifest)
    if found is None:
        raise Fp16Error(f"the fp16 conversion wrote no usable model to {target}")
    return target / ONNX_FILE, found


def read_report(target: Path, manifest: ModelManifest) -> dict[str, object] | None:
    """The report of a finished, passed conversion of exactly this fp32 model, else None."""
    try:
        report = json.loads((target / REPORT).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    source = manifest.sha256 or report.get("source_sha256")
    if report.get("source_sha256") != source or not (target / ONNX_FILE).is_file():
        return None
    if float(report.get("min_cosine", 0.0)) < FP16_MIN_COSINE:
        return None
    return dict(report)


def _run_child(folder: Path, target: Path, provider: str) -> None:
    cmd = [sys.executable, "-m", "codesearch.embed.fp16", str(folder), str(target), "--provider", provider]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        raise Fp16Error(errors[-1].removeprefix("error: ") if errors else proc.stderr.strip()[-1500:])


# the child: convert and check ----------------------------------------------------------------------
def convert(source: Path, out: Path) -> None:
    """fp32 → fp16 weights and compute; inputs and outputs stay int64/fp32."""
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise Fp16Error(f"converting to fp16 needs the onnx package ({exc}): `pip install onnx`, "
                        f"or set {FP16_ENV}=off") from exc
    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(out))


def check_parity(folder: Path, manifest: ModelManifest, candidate: Path, provider: str) -> ParityCheck:
    """Cosine of each check text's vector from ``candidate`` on ``provider`` to the fp32 model's on the CPU."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / manifest.tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(manifest.max_length)
    texts = [manifest.document_prefix + t for t in CHECK_TEXTS]
    feeds = pad_encodings(tokenizer.encode_batch(texts), manifest.inputs)
    reference, _ = create_session(Path(folder) / manifest.onnx_file, "cpu")
    device = "cuda" if provider == CUDA else "cpu"
    session, choice = create_session(candidate, device)
    want = np.asarray(reference.run([manifest.output], feeds)[0], dtype=np.float64)
    got = np.asarray(session.run([manifest.output], feeds)[0], dtype=np.float64)
    norms = np.maximum(np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
    cosines = np.sum(want * got, axis=1) / norms
    return ParityCheck(float(cosines.min()), float(cosines.mean()), choice.provider, len(texts))


def convert_and_check(folder: Path, target: Path, provider: str,
                      converter: Callable[[Path, Path], None] = convert) -> ParityCheck:
    """Write ``target`` (fp16 graph + report) only if the copy passes the check."""
    from .onnx_export import staged_folder

    manifest = ModelManifest.read(folder)
    if manifest.precision != "fp32":
        raise Fp16Error(f"{folder} holds a {manifest.precision} model, not fp32")
    with staged_folder(Path(target), prefix=".fp16-") as staging:
        converter(Path(folder) / manifest.onnx_file, staging / ONNX_FILE)
        check = check_parity(folder, manifest, staging / ONNX_FILE, provider)
        if not check.ok:
            raise Fp16Error(f"the fp16 copy does not reproduce the fp32 model on {check.provider}: cosine "
                            f"{check.min_cosine:.6f} < {FP16_MIN_COSINE}; running fp32")
        report = {"source_sha256": manifest.sha256 or file_sha256(Path(folder) / manifest.onnx_file),
                  "sha256": file_sha256(staging / ONNX_FILE), "provider": check.provider,
                  "min_cosine": round(check.min_cosine, 7), "mean_cosine": round(check.mean_cosine, 7),
                  "threshold": FP16_MIN_COSINE, "texts": check.texts}
        (staging / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codesearch.embed.fp16",
                                     description="Convert an exported fp32 encoder to a parity-checked fp16 copy.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--provider", default=CUDA)
    args = parser.parse_args(argv)
    try:
        check = convert_and_check(args.folder, args.target, args.provider)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"target": str(args.target), "min_cosine": check.min_cosine, "provider": check.provider}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
