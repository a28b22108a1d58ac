"""``trainer export-ranker``: a ranker checkpoint to an ONNX model folder the engine reads, validated.

Same approach as the engine's encoder export (``codesearch.embed.onnx_export``): the dynamo exporter with
dynamic batch and sequence dimensions and SDPA attention (the legacy TorchScript exporter breaks
attention masks with transformers 5), then a parity check of onnxruntime against PyTorch on a
mixed-length batch of pairs encoded exactly as the engine encodes them
(``codesearch.query.rerank.encode_pairs``), including pairs that hit the truncation budget. The folder is
moved into place only when parity holds. The manifest says ``kind: "ranker"``, ``output:
"scores"``, ``dimension: 1``; ``extra`` records ``query_max_length``, the parity figures and the
training record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

PARITY_ABS = 1e-3  # fp32: |onnx - torch| ≤ PARITY_ABS · max(1, max |torch score|)
PARITY_ABS_FP16 = 2e-2

PARITY_PAIRS: tuple[tuple[str, str], ...] = (
    ("parse the retry header and back off",
     "def parse_retry_after(header: str) -> float:\n    return float(header.strip())"),
    ("x", "y"),
    ("sort a list of dicts by key", "def by_key(rows, key):\n    return sorted(rows, key=lambda r: r[key])\n"),
    ("connection pool " * 40,
     "class ConnectionPool:\n    def acquire(self):\n        sock = self._idle.pop() if self._idle "
     "else self._connect()\n        return sock\n" * 12),
    ("función que ordena números — 数字を並べ替える", "function sortNumbers(a) { return a.sort((x, y) => x - y); }"),
    ("read a json config file", "\n".join(f"    value_{i} = config.get('key_{i}', default_{i})" for i in range(80))),
)


def _wrapper(model: Any) -> Any:
    import torch

    class RankerGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            out: torch.Tensor = self.model(input_ids, attention_mask, token_type_ids)
            return out.float()

    return RankerGraph().eval()


def validate_ranker(reference: Any, folder: Path, manifest: Any,
                    pairs: tuple[tuple[str, str], ...] = PARITY_PAIRS) -> Any:
    """onnxruntime vs PyTorch on one padded batch of pairs; a ``ParityReport`` listing mismatches.

    ``min_cosine`` is the cosine between the two score vectors; ``max_abs_diff`` the largest gap."""
    import onnxruntime as ort
    import torch
    from codesearch.embed.onnx_export import ParityReport
    from codesearch.query.rerank import encode_pairs
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / manifest.tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    feeds = encode_pairs(tokenizer, [q for q, _ in pairs], [d for _, d in pairs], manifest.max_length,
                         int(manifest.extra.get("query_max_length", 64)), manifest.inputs)
    session = ort.InferenceSession(str(folder / manifest.onnx_file), providers=["CPUExecutionProvider"])
    got = np.asarray(session.run([manifest.output], feeds)[0], dtype=np.float64).reshape(-1)
    with torch.no_grad():
        want = reference(*(torch.from_numpy(feeds[n]) for n in manifest.inputs)).double().numpy().reshape(-1)
    if got.shape != want.shape:
        return ParityReport(0.0, float("inf"), [f"output shape {got.shape} != reference {want.shape}"])
    scale = max(1.0, float(np.abs(want).max()))
    tol = (PARITY_ABS if manifest.precision == "fp32" else PARITY_ABS_FP16) * scale
    mismatches = [
        f"pair {i} ({len(q)} + {len(d)} chars): onnx {got[i]:.6f} vs torch {want[i]:.6f}"
        for i, (q, d) in enumerate(pairs) if abs(got[i] - want[i]) > tol
    ]
    cos = float(got @ want / max(np.linalg.norm(got) * np.linalg.norm(want), 1e-12))
    return ParityReport(cos, float(np.abs(got - want).max()), mismatches)


def export_ranker(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, fp16: bool = False,
                  model_id: str | None = None, opset: int | None = None) -> Any:
    """Export and validate a ranker checkpoint; returns the engine's ``ModelManifest``."""
    from codesearch.embed.manifest import ModelManifest, file_sha256
    from codesearch.embed.onnx_export import (
        EXAMPLE_TEXTS,
        OPSET,
        batch_inputs,
        convert_fp16,
        export_dynamo,
        staged_folder,
        write_validated,
    )

    from .ranker_model import is_ranker_checkpoint, load_cross_encoder, ranker_training_record

    source = Path(checkpoint)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a ranker checkpoint folder")
    if not is_ranker_checkpoint(source):
        raise ValueError(f"{source} is not a ranker checkpoint (no codesearch_ranker.json / ranker_head.pt); "
                         "train one with `trainer train-ranker`")
    model = load_cross_encoder(str(source), device="cpu").eval()
    inputs = model.input_names
    wrapper = _wrapper(model)
    with staged_folder(Path(out), prefix=".export-ranker-") as staging:
        model.tokenizer.save(str(staging / "tokenizer.json"))
        from tokenizers import Tokenizer

        example_tok = Tokenizer.from_file(str(staging / "tokenizer.json"))
        example = batch_inputs(example_tok, list(EXAMPLE_TEXTS), model.settings.max_length, inputs)
        onnx_path = staging / "model.onnx"
        export_dynamo(wrapper, example, "scores", onnx_path, opset=opset or OPSET)
        if fp16:
            convert_fp16(onnx_path)
        extra: dict[str, Any] = {"query_max_length": model.settings.query_max_length,
                                 "pooling": model.settings.pooling, **ranker_training_record(source)}
        manifest = ModelManifest(
            id=model_id or str(checkpoint), dimension=1, max_length=model.settings.max_length, kind="ranker",
            pooling=model.settings.pooling, normalize=False, inputs=inputs, output="scores",
            precision="fp16" if fp16 else "fp32", sha256=file_sha256(onnx_path), extra=extra,
        )
        report = validate_ranker(wrapper, staging, manifest)
        return write_validated(manifest, report, staging, "the ONNX ranker",
                               parity_max_abs_diff=round(report.max_abs_diff, 7),
                               parity_score_cosine=round(report.min_cosine, 7))
