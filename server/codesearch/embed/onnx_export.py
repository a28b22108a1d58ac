"""Export a Hugging Face encoder to the ONNX model folder the engine reads, and prove parity.

This is the only module of the engine that imports torch and transformers, and it does so only
when called; the engine runs it in a separate process (``python -m codesearch.embed.onnx_export``) so
that a language server or a search never loads torch.

Uses the dynamo-based exporter: the legacy TorchScript exporter traces transformers' attention
mask construction for the example's shape and silently breaks padded batches (cosine ≈ 0.9 to
the reference), which the parity check below exists to catch.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .encoder import pad_encodings
from .manifest import ModelManifest, file_sha256
from .source_model import load_tokenizer_json, read_source_settings

if TYPE_CHECKING:
    import torch

PARITY_MIN_COSINE = 0.9999
OPSET = 18

# Mixed lengths on purpose: padding must not change any row's embedding.
PARITY_TEXTS = (
    "parse the retry header and back off",
    "def parse_retry_after(header: str) -> float:\n    return float(header.strip())",
    "x",
    "class ConnectionPool:\n    def acquire(self):\n        sock = self._idle.pop() if self._idle "
    "else self._connect()\n        return sock\n" * 6,
    "sort a list of dicts by key",
    "función que ordena números — 数字を並べ替える",
)


class ExportError(RuntimeError):
    """The export failed or does not reproduce the reference model."""


@dataclass
class ParityReport:
    min_cosine: float
    max_abs_diff: float
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def resolve_source(source: str | Path) -> str:
    """A local folder as a string path, or a hub id (downloaded by transformers if allowed)."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path.resolve())
    return str(source)


def _pooled_encoder(model: Any, pooling: str, normalize: bool, use_token_types: bool) -> torch.nn.Module:
    """The transformer with pooling and normalisation, as one torch module to export."""
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if use_token_types and token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model(**kwargs).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if pooling == "cls":
                pooled = hidden[:, 0]
            elif pooling == "max":
                pooled = hidden.masked_fill(mask == 0, -1e4).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
            return pooled

    return PooledEncoder().eval()


def batch_inputs(tokenizer: Any, texts: list[str], max_length: int, names: tuple[str, ...]
                 ) -> dict[str, np.ndarray]:
    """Dynamic padding to the longest text in the batch, with an attention mask."""
    tokenizer.enable_truncation(max_length)
    return pad_encodings(tokenizer.encode_batch(texts), names)


def export_encoder(
    source: str | Path,
    out_dir: Path,
    *,
    max_length: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    query_prefix: str | None = None,
    document_prefix: str | None = None,
    fp16: bool = False,
    model_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelManifest:
    """Export, validate against transformers, and only then move the folder into place.

    Settings left as None come from the source folder (``source_model.read_source_settings``); an
    explicit ``max_length`` is still capped by the model's positions.
    """
    from transformers import AutoConfig, AutoModel

    src = resolve_source(source)
    config = AutoConfig.from_pretrained(src)
    settings = read_source_settings(src, config=config)
    pooling = pooling or settings.pooling
    normalize = settings.normalize if normalize is None else normalize
    max_length = settings.limit(max_length)
    query_prefix = settings.query_prefix if query_prefix is None else query_prefix
    document_prefix = settings.document_prefix if document_prefix is None else document_prefix
    model = AutoModel.from_pretrained(src, attn_implementation="sdpa").eval()
    use_token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 0
    inputs: tuple[str, ...] = ("input_ids", "attention_mask") + (
        ("token_type_ids",) if use_token_types else ()
    )
    wrapper = _pooled_encoder(model, pooling, normalize, use_token_types)
    tokenizer = load_tokenizer_json(src)

    with staged_folder(Path(out_dir)) as staging:
        example = batch_inputs(tokenizer, list(EXAMPLE_TEXTS), max_length, inputs)
        onnx_path = staging / "model.onnx"
        export_dynamo(wrapper, example, "embeddings", onnx_path)
        if fp16:
            convert_fp16(onnx_path)
        tokenizer.save(str(staging / "tokenizer.json"))
        dim = int(getattr(config, "hidden_size", 0))
        manifest = ModelManifest(
            id=model_id or str(source), dimension=dim, max_length=max_length, kind="encoder",
            pooling=pooling, normalize=normalize, query_prefix=query_prefix,
            document_prefix=document_prefix, inputs=inputs, output="embeddings",
            precision="fp16" if fp16 else "fp32", sha256=file_sha256(onnx_path), extra=dict(extra or {}),
        )
        report = validate_encoder(wrapper, staging, manifest)
        return write_validated(manifest, report, staging, "the ONNX export",
                               parity_min_cosine=round(report.min_cosine, 7))


EXAMPLE_TEXTS = ("a short one", "a somewhat longer example text here")


@contextmanager
def staged_folder(out_dir: Path, prefix: str = ".export-") -> Iterator[Path]:
    """A fresh folder beside ``out_dir`` that replaces it only if the block finishes without error."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir.parent))
    try:
        yield staging
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.replace(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def export_dynamo(module: torch.nn.Module, example: dict[str, np.ndarray], output: str, onnx_path: Path,
                  opset: int = OPSET) -> None:
    """Export ``module(input_ids, attention_mask[, token_type_ids])`` with dynamic batch and length."""
    import torch

    names = tuple(example)
    args = tuple(torch.from_numpy(example[name]) for name in names)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    arg_names = ("input_ids", "attention_mask", "token_type_ids")[: len(names)]
    with torch.no_grad():
        torch.onnx.export(
            module, args, str(onnx_path), input_names=list(names), output_names=[output],
            opset_version=opset, dynamo=True, dynamic_shapes={arg: {0: batch, 1: seq} for arg in arg_names},
            external_data=False, verbose=False,
        )


def write_validated(manifest: ModelManifest, report: ParityReport, staging: Path, what: str,
                    **figures: float) -> ModelManifest:
    """Refuse an export that fails its parity check; else record the figures and write the manifest."""
    if not report.ok:
        raise ExportError(f"{what} does not reproduce the PyTorch model:\n  " + "\n  ".join(report.mismatches))
    manifest = ModelManifest(**{**manifest.__dict__, "extra": {**manifest.extra, **figures}})
    manifest.write(staging)
    return manifest


def convert_fp16(onnx_path: Path) -> None:
    """Rewrite the graph in fp16 weights and activations, keeping fp32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(onnx_path))
    model = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(model, str(onnx_path))


def validate_encoder(
    reference: torch.nn.Module, folder: Path, manifest: ModelManifest,
    texts: tuple[str, ...] = PARITY_TEXTS,
) -> ParityReport:
    """Compare the ONNX graph with the torch module on one mixed-length batch; list every mismatch."""
    import onnxruntime as ort
    import torch

    tokenizer = load_tokenizer_json(str(folder))
    feeds = batch_inputs(tokenizer, list(texts), manifest.max_length, manifest.inputs)
    session = ort.InferenceSession(str(folder / manifest.onnx_file), providers=["CPUExecutionProvider"])
    got = session.run([manifest.output], feeds)[0].astype(np.float32)
    with torch.no_grad():
        want = reference(*(torch.from_numpy(feeds[n]) for n in manifest.inputs)).float().numpy()
    mismatches: list[str] = []
    if got.shape != want.shape:
        return ParityReport(0.0, float("inf"), [f"output shape {got.shape} != reference {want.shape}"])
    threshold = PARITY_MIN_COSINE if manifest.precision == "fp32" else 0.999
    cosines = []
    for row, text in enumerate(texts):
        a, b = got[row], want[row]
        cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        cosines.append(cos)
        if cos < threshold:
            mismatches.append(f"text {row} ({len(text)} chars): cosine {cos:.6f} < {threshold}")
    return ParityReport(min(cosines), float(np.abs(got - want).max()), mismatches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codesearch.embed.onnx_export",
        description="Export a Hugging Face encoder (folder or hub id) to a codesearch ONNX model folder.",
    )
    parser.add_argument("source")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--model-id", default=None)
    args = parser.parse_args(argv)
    try:
        manifest = export_encoder(args.source, args.out_dir, max_length=args.max_length, fp16=args.fp16,
                                  model_id=args.model_id)
    except ImportError as exc:
        print(f"error: exporting a model needs torch and transformers ({exc}); install them with "
              "`pip install torch==2.13.0 'codesearch[export]'`", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"error: export failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"out_dir": str(args.out_dir), "dimension": manifest.dimension,
                      "parity_min_cosine": manifest.extra.get("parity_min_cosine")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
