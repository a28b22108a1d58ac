"""Run an exported ONNX encoder with onnxruntime: provider choice, tokenising, batching."""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Vectors
from .manifest import ModelManifest
from .sessions import CPU, CUDA, Layout, SessionPool, layout_for

log = logging.getLogger(__name__)

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
        return ("this onnxruntime build has no CUDA provider (on Linux x86-64: "
                "`pip install 'onnxruntime-gpu[cuda,cudnn]'` in place of onnxruntime; see docs/gpu.md)")
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
            return (f"the CUDA provider cannot load: {exc} (it needs the CUDA libraries onnxruntime-gpu "
                    f"{ort.__version__} was built for: `pip install 'onnxruntime-gpu[cuda,cudnn]=="
                    f"{ort.__version__}'` installs them, or put the system's on LD_LIBRARY_PATH; see docs/gpu.md)")
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


def create_session(model_path: Path, device: str = "auto", threads: int | None = None,
                   choice: ProviderChoice | None = None) -> tuple[Any, ProviderChoice]:
    """An InferenceSession on the best provider that truly loads; never a silent fallback.

    ``choice``: a provider already chosen for ``device`` (saves probing CUDA again)."""
    import onnxruntime as ort

    choice = choice or choose_provider(device)
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
    ``onnx_path`` runs another graph of the same model (the fp16 variant) with this folder's tokenizer.
    """

    kind = ""

    def __init__(self, folder: Path, manifest: ModelManifest, *, device: str = "auto",
                 threads: int | None = None, onnx_path: Path | None = None,
                 choice: ProviderChoice | None = None) -> None:
        from tokenizers import Tokenizer

        if manifest.kind != self.kind:
            raise ValueError(f"{folder} holds a model of kind {manifest.kind!r}, not {self.kind!r}")
        manifest.verify_files(folder, check_hash=False)
        self.folder = Path(folder)
        self.manifest = manifest
        self.onnx_path = Path(onnx_path) if onnx_path else self.folder / manifest.onnx_file
        self._tokenizer = Tokenizer.from_file(str(self.folder / manifest.tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._session, self._choice = create_session(self.onnx_path, device, threads, choice)
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


@dataclass(frozen=True)
class PreparedBatch:
    """Texts tokenised and padded for one run: ``rows`` are their positions in the texts given."""

    rows: tuple[int, ...]
    payload: Any  # what :meth:`OnnxEncoder.infer` takes: the padded feeds
    tokens: int  # padded tokens (batch × longest)


class OnnxEncoder(OnnxModel):
    """The production Encoder: an exported model folder (manifest + ONNX + tokenizer.json).

    Document batches can be prepared (tokenised, length-sorted, padded) apart from running them, so
    the embedding pipeline tokenises the next batches while workers run the current ones; the
    layout (:mod:`.sessions`) says how many workers and threads, from the cores and the provider.
    The model key is the manifest's even when ``onnx_path`` is a parity-checked fp16 variant, so
    vectors made on a GPU and on a CPU mix in one index.
    """

    kind = "encoder"

    def __init__(self, folder: Path, manifest: ModelManifest, *, device: str = "auto",
                 batch_size: int | None = None, max_batch_tokens: int | None = None, threads: int | None = None,
                 layout: Layout | None = None, onnx_path: Path | None = None, precision: str | None = None) -> None:
        choice = choose_provider(device)
        planned = layout or layout_for(choice.provider)
        if threads and layout is None:  # an explicit thread count: one worker with that many threads
            planned = replace(planned, workers=1, threads=threads, sessions=1)
        super().__init__(folder, manifest, device=device, threads=planned.threads, onnx_path=onnx_path,
                         choice=choice)
        if self.provider != choice.provider and layout is None:  # CUDA failed to start: plan for the CPU
            planned = layout_for(self.provider)
        self.layout = replace(planned, batch_size=batch_size or planned.batch_size,
                              max_batch_tokens=max_batch_tokens or planned.max_batch_tokens)
        self.precision = precision or manifest.precision
        self._tokenizer.enable_truncation(manifest.max_length)
        self._pool = SessionPool(self._session, self.layout, self._another_session)

    @property
    def provider_reason(self) -> str:
        if self.precision == self.manifest.precision:
            return self._choice.reason
        return f"{self._choice.reason}; {self.precision} copy, parity-checked"

    def _another_session(self) -> Any:
        return create_session(self.onnx_path, self.provider_device, self.layout.threads, self._choice)[0]

    @property
    def provider_device(self) -> str:
        return "cuda" if self.provider == CUDA else "cpu"

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

    @property
    def batch_size(self) -> int:
        return self.layout.batch_size

    @property
    def max_batch_tokens(self) -> int:
        return self.layout.max_batch_tokens

    @property
    def workers(self) -> int:
        return self.layout.workers

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self.manifest.query_prefix + t for t in texts])

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self.manifest.document_prefix + t for t in texts])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def prepare_documents(self, texts: Sequence[str]) -> list[PreparedBatch]:
        """Tokenise, sort by length and pad: batches bounded by count and by padded tokens."""
        return self._prepare([self.manifest.document_prefix + t for t in texts])

    def infer(self, payload: Any, worker: int = 0) -> Vectors:
        """Run one prepared batch on the worker's session: float32, L2-normalised vectors."""
        vectors = self._pool.for_worker(worker).run([self.manifest.output], payload)[0]
        out = np.asarray(vectors, dtype=np.float32)
        if not self.manifest.normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _encode(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # No lock around the session: a query is not queued behind a document batch.
        for batch in self._prepare(texts):
            out[list(batch.rows)] = self.infer(batch.payload)
        return out

    def _prepare(self, texts: list[str]) -> list[PreparedBatch]:
        if not texts:
            return []
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        return [PreparedBatch(tuple(batch), pad_encodings([encodings[i] for i in batch], self.manifest.inputs),
                              len(batch) * lengths[batch[-1]])
                for batch in self._batches(order, lengths)]

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
