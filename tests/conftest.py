"""Shared fixtures: a seeded fake encoder, an isolated cache, the real default model (once)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from codesearch.lexical import identifier_terms


class FakeEncoder:
    """Deterministic bag-of-identifier-parts hashing encoder: similar words → similar vectors."""

    def __init__(self, dimension: int = 64, key: str = "fake-1") -> None:
        self._dim = dimension
        self._key = key

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def model_key(self) -> str:
        return self._key

    @property
    def provider(self) -> str:
        return "CPUExecutionProvider"

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self._dim, dtype=np.float32)
        for term in identifier_terms(text) or ["<empty>"]:
            seed = int.from_bytes(hashlib.blake2b(f"{self._key}:{term}".encode(), digest_size=8).digest(), "little")
            vec += np.random.default_rng(seed).standard_normal(self._dim).astype(np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-9)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self._dim), np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_queries(texts)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own workspace index folder; exported models are shared (see below)."""
    cache = tmp_path_factory.mktemp("cache")
    shared = Path(os.environ.get("CODESEARCH_CACHE_DIR", str(Path.home() / ".cache" / "codesearch-tests")))
    models = shared / "models"
    models.mkdir(parents=True, exist_ok=True)
    (cache / "models").exists() or (cache / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("CODESEARCH_CACHE_DIR", str(cache))
    yield cache


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The embedded default exported to ONNX once per test session (shared cache across runs)."""
    from codesearch.models import resolve_model

    return resolve_model(None)
