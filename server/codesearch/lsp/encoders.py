"""The model as the language server runs it: loaded once and shared by every workspace folder.

``OnnxEncoder`` tokenises under a lock but runs the ONNX session without one, so a search's query
shares the CPU with a batch of documents being embedded but never waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ..embed.manifest import ModelManifest
from ..engine import EngineConfig, load_onnx_encoder
from ..types import Encoder, Vectors


class SharedEncoder:
    """An :class:`~codesearch.types.Encoder` whose ONNX sessions load on :meth:`load`."""

    def __init__(self, config: EngineConfig, loader: Callable[..., Encoder] = load_onnx_encoder) -> None:
        self.config = config
        self._loader = loader
        self._lock = threading.Lock()
        self._documents: Encoder | None = None
        self._queries: Encoder | None = None

    @property
    def loaded(self) -> bool:
        return self._queries is not None

    def load(self, on_status: Callable[[str], None] | None = None) -> None:
        """Load (exporting the model once if needed); raises ``EngineError``. Blocking."""
        with self._lock:
            if self._queries is not None:
                return
            encoder = self._loader(self.config, on_status)
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
