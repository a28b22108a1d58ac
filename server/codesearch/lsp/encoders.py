"""The model as the language server runs it: loaded once and shared by every workspace folder.

``OnnxEncoder`` tokenises under a lock but runs the ONNX session without one, so a search's query
shares the CPU with a batch of documents being embedded but never waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ..engine import EngineConfig, EngineError, load_onnx_encoder
from ..manifest import ModelManifest
from ..types import Encoder, Vectors


class LoadFailedBefore(EngineError):
    """The model failed to load for an earlier caller, who reported it; ``cause`` says why."""

    def __init__(self, cause: EngineError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class SharedEncoder:
    """An :class:`~codesearch.types.Encoder` whose ONNX sessions load on :meth:`load`."""

    def __init__(self, config: EngineConfig, loader: Callable[..., Encoder] = load_onnx_encoder) -> None:
        self.config = config
        self._loader = loader
        self._lock = threading.Lock()
        self._documents: Encoder | None = None
        self._queries: Encoder | None = None
        self._failure: EngineError | None = None

    @property
    def loaded(self) -> bool:
        return self._queries is not None

    def load(self, on_status: Callable[[str], None] | None = None) -> None:
        """Load (exporting the model once if needed); raises ``EngineError``. Blocking.

        A failure is tried once for every folder: later calls raise ``LoadFailedBefore``, so the
        reason is said once, not once per folder.
        """
        with self._lock:
            if self._queries is not None:
                return
            if self._failure is not None:
                raise LoadFailedBefore(self._failure)
            try:
                encoder = self._loader(self.config, on_status)
            except EngineError as exc:
                self._failure = exc
                raise
            self._documents = encoder
            self._queries = encoder

    def _docs(self) -> Encoder:
        if self._documents is None:
            raise RuntimeError("the model is not loaded yet")
        return self._documents

    @property
    def manifest(self) -> ModelManifest | None:
        return getattr(self._documents, "manifest", None)

    @property
    def dimension(self) -> int:
        return self._docs().dimension

    @property
    def model_key(self) -> str:
        return self._docs().model_key

    @property
    def provider(self) -> str:
        return self._docs().provider

    @property
    def provider_reason(self) -> str:
        return str(getattr(self._documents, "provider_reason", ""))

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return self._docs().encode_documents(texts)

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        if self._queries is None:
            raise RuntimeError("the model is not loaded yet")
        return self._queries.encode_queries(texts)
