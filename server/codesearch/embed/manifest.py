"""The model manifest: the contract between the trainer (which writes models) and the engine.

An exported model is a folder holding ``manifest.json``, the ONNX graph and ``tokenizer.json``.
The graph takes ``input_ids``/``attention_mask`` (and ``token_type_ids`` when the manifest lists it)
as int64 ``[batch, sequence]`` and returns, for an encoder, pooled and L2-normalised
``embeddings`` ``[batch, dimension]``; for a ranker, relevance ``scores`` ``[batch]``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT = "codesearch-model"
FORMAT_VERSION = 1
KINDS = ("encoder", "ranker")
POOLINGS = ("mean", "cls", "max")


class ManifestError(ValueError):
    """A model folder whose manifest is missing, malformed, or does not match its files."""


@dataclass(frozen=True)
class ModelManifest:
    id: str  # where the weights came from (hub id or path), for people to read
    dimension: int  # embedding size (1 for rankers)
    max_length: int  # tokens, including special tokens
    kind: str = "encoder"
    pooling: str = "mean"
    normalize: bool = True
    query_prefix: str = ""
    document_prefix: str = ""
    onnx_file: str = "model.onnx"
    tokenizer_file: str = "tokenizer.json"
    inputs: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    output: str = "embeddings"
    precision: str = "fp32"
    sha256: str = ""  # of the ONNX file
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. validation figures, training info

    @property
    def model_key(self) -> str:
        """Stable identity of the exact weights and their use; the engine keys vectors by it."""
        basis = json.dumps(
            [self.sha256, self.pooling, self.normalize, self.max_length, self.query_prefix,
             self.document_prefix],
        )
        return hashlib.sha256(basis.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        if data.get("format") != FORMAT:
            raise ManifestError(f"not a codesearch model manifest (format={data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ManifestError(
                f"manifest format_version {data['format_version']} is newer than this codesearch "
                f"understands ({FORMAT_VERSION}); upgrade codesearch"
            )
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        if "inputs" in kwargs:
            kwargs["inputs"] = tuple(kwargs["inputs"])
        try:
            manifest = cls(**kwargs)
        except TypeError as exc:
            raise ManifestError(f"manifest is missing fields: {exc}") from exc
        problems = manifest.problems()
        if problems:
            raise ManifestError("invalid manifest: " + "; ".join(problems))
        return manifest

    @classmethod
    def read(cls, folder: Path) -> ModelManifest:
        path = Path(folder) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"{path} does not exist") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"{path} does not hold a JSON object")
        return cls.from_dict(data)

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.kind not in KINDS:
            out.append(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.pooling not in POOLINGS:
            out.append(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if self.dimension < 1:
            out.append("dimension must be positive")
        if self.max_length < 8:
            out.append("max_length must be at least 8")
        if "input_ids" not in self.inputs or "attention_mask" not in self.inputs:
            out.append("inputs must include input_ids and attention_mask")
        return out

    def verify_files(self, folder: Path, *, check_hash: bool = True) -> None:
        """Raise ManifestError if the files the manifest names are missing or altered."""
        folder = Path(folder)
        for name in (self.onnx_file, self.tokenizer_file):
            if not (folder / name).is_file():
                raise ManifestError(f"{folder / name} is missing")
        if check_hash and self.sha256:
            actual = file_sha256(folder / self.onnx_file)
            if actual != self.sha256:
                raise ManifestError(
                    f"{folder / self.onnx_file} does not match its manifest (sha256 {actual[:12]}… "
                    f"!= {self.sha256[:12]}…); re-export the model"
                )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_exported_model(folder: Path) -> bool:
    return (Path(folder) / MANIFEST_NAME).is_file()
