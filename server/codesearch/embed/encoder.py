"""Run an exported ONNX encoder with onnxruntime: provider choice, tokenising, batching."""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Vectors
from .manifest import ModelManifest

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


class ProviderError(RuntimeError):
    """The requested execution provider cannot be used."""


@dataclass(frozen=True)
class ProviderChoice:
    provider: str
    reason: str  # why this provider, e.g. why CUDA was not used


def _cuda_unavailable_reason() -> str | None:
    """None if the CUDA provider library loads with all its dependencies, else why not."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    preload = getattr(ort, "preload_dlls", None)
    # CUDA libraries installed from PyPI (nvidia-* packages) must be preloaded; without them the
    # call only prints failures, so skip it.
    if preload is not None and importlib.util.find_spec("nvidia") is not None:
        try:
            preload()
        except Exception as exc:
            log.debug("onnxruntime.preload_dlls failed: %s", exc)
    lib = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if lib.exists():
        try:
            ctypes.CDLL(str(lib))
        except OSError as exc:
            return f"the CUDA provider cannot load: {exc}"
    return None


def choose_provider(device: str = "auto") -> ProviderChoice:
    if device not in DEVICES:
        raise ProviderError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "cpu":
        return ProviderChoice(CPU, "CPU requested")
    reason = _cuda_unavailable_reason()
    if reason is None:
        return ProviderChoice(CUDA, "CUDA available")
    if device == "cuda":
        raise ProviderError(f"CUDA was requested but {reason}")
    return ProviderChoice(CPU, reason)


def create_session(model_path: Path, device: str = "auto", threads: int | None = None
                   ) -> tuple[Any, ProviderChoice]:
    """An InferenceSession on the best provider that truly loads; never a silent fallback."""
    import onnxruntime as ort

    choice = choose_provider(device)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    # Idle worker threads sleep instead of spinning after a run: a one-query run otherwise leaves them
    # burning the cores the search itself needs (bench/repo_latency.py on 2 busy cores: wall p50 79 -> 42 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [choice.provider] if choice.provider == CPU else [choice.provider, CPU]
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    active = session.get_providers()[0]
    if active != choice.provider:
        if device == "cuda":
            raise ProviderError(f"CUDA was requested but onnxruntime is using {active}")
        choice = ProviderChoice(active, f"{choice.provider} failed to initialise; using {active}")
    return session, choice


class OnnxModel:
    """An exported model folder opened for inference: manifest, tokenizer, provider-chosen session.

    The tokenizer comes with padding and truncation off; subclasses set the truncation they need.
    """

    kind = ""

    def __init__(self, folder: Path, manifest: ModelManifest, *, device: str = "auto",
                 threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        if manifest.kind != self.kind:
            raise ValueError(f"{folder} holds a model of kind {manifest.kind!r}, not {self.kind!r}")
        manifest.verify_files(folder, check_hash=False)
        self.folder = Path(folder)
        self.manifest = manifest
        self._tokenizer = Tokenizer.from_file(str(self.folder / manifest.tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._session, self._choice = create_session(self.folder / manifest.onnx_file, device, threads)
        self._lock = threading.Lock()  # guards the tokenizer; InferenceSession.run is thread-safe
        log.info("%s %s on %s (%s)", self.kind, manifest.id, self._choice.provider, self._choice.reason)

    @property
    def model_id(self) -> str:
        return self.manifest.id

    @property
    def provider(self) -> str:
        return self._choice.provider

    @property
    def provider_reason(self) -> str:
        return self._choice.reason


class OnnxEncoder(OnnxModel):
    """The production Encoder: an exported model folder (manifest + ONNX + tokenizer.json)."""

    kind = "encoder"

    def __init__(self, folder: Path, manifest: ModelManifest, *, device: str = "auto",
                 batch_size: int = 32, max_batch_tokens: int | None = None, threads: int | None = None) -> None:
        super().__init__(folder, manifest, device=device, threads=threads)
        self._tokenizer.enable_truncation(manifest.max_length)
        self.batch_size = batch_size
        # On CPU, big padded batches buy no speed and ORT's arena keeps their buffers: 16k tokens
        # per batch peaked at 1.1 GB RSS against 0.66 GB for 4k (bench notes in docs/benchmarks.md).
        self.max_batch_tokens = max_batch_tokens or (4096 if self._choice.provider == CPU else 32768)

    @classmethod
    def from_folder(cls, folder: Path | str, **kwargs: Any) -> OnnxEncoder:
        folder = Path(folder)
        return cls(folder, ModelManifest.read(folder), **kwargs)

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    @property
    def model_key(self) -> str:
        return self.manifest.model_key

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self.manifest.query_prefix + t for t in texts])

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self.manifest.document_prefix + t for t in texts])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def _encode(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        # No lock around the session: a query is not queued behind a document batch.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for batch in self._batches(order, [len(e.ids) for e in encodings]):
            feeds = self._feeds([encodings[i] for i in batch])
            vectors = self._session.run([self.manifest.output], feeds)[0]
            out[batch] = vectors.astype(np.float32, copy=False)
        if not self.manifest.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Length-sorted batches bounded by count and by padded tokens."""
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            longest = lengths[index]  # ascending order: the newest member is the longest
            if current and (len(current) >= self.batch_size
                            or longest * (len(current) + 1) > self.max_batch_tokens):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def _feeds(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        return pad_encodings(encodings, self.manifest.inputs)


def pad_encodings(encodings: Sequence[Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Dynamic padding of `tokenizers` encodings to the longest one, with an attention mask."""
    longest = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), longest), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = 1
        types[row, :n] = enc.type_ids
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: feeds[name] for name in names}


def default_threads() -> int | None:
    value = os.environ.get("CODESEARCH_THREADS")
    return int(value) if value and value.isdigit() else None
