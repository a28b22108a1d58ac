"""A seeded fake encoder for fast tests.

It hashes identifier parts to random vectors (similar words → similar vectors), so searching
works without exporting or running a model. Servers started by the tests use it through the
engine's encoder hook: ``CODESEARCH_ENCODER_FACTORY=fakes:create_encoder`` with this folder on
``PYTHONPATH`` (see :func:`fake_encoder_env`). ``CODESEARCH_TEST_ENCODER_DELAY`` (seconds per
document batch) makes indexing slow enough to observe progress, cancellation and searches
during indexing; a query containing ``CRASH_QUERY`` fails, to test how internal errors are handled.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from codesearch.embed.loading import ENCODER_FACTORY_ENV
from codesearch.index.identifiers import identifier_terms
from codesearch.types import Vectors

DELAY_ENV = "CODESEARCH_TEST_ENCODER_DELAY"
CRASH_QUERY = "__codesearch_test_crash__"  # a query the fake encoder fails on: an internal error on demand


class FakeEncoder:
    def __init__(self, dimension: int = 64, key: str = "fake-1", delay_s: float = 0.0) -> None:
        self._dim = dimension
        self._key = key
        self.delay_s = delay_s

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def model_key(self) -> str:
        return self._key

    @property
    def model_id(self) -> str:
        return "fake"

    @property
    def provider(self) -> str:
        return "CPUExecutionProvider"

    @property
    def provider_reason(self) -> str:
        return "fake encoder for tests"

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self._dim, dtype=np.float32)
        for term in identifier_terms(text) or ["<empty>"]:
            seed = int.from_bytes(hashlib.blake2b(f"{self._key}:{term}".encode(), digest_size=8).digest(), "little")
            vec += np.random.default_rng(seed).standard_normal(self._dim).astype(np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-9)

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        if any(CRASH_QUERY in t for t in texts):
            raise RuntimeError("the fake encoder was asked to fail")
        if not texts:
            return np.zeros((0, self._dim), np.float32)
        return np.stack([self._one(t) for t in texts])

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        return self.encode_queries(texts)


def create_encoder(model: str | None = None, device: str = "auto") -> FakeEncoder:
    """The engine's encoder hook: the fake, slowed down by ``CODESEARCH_TEST_ENCODER_DELAY``."""
    try:
        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    except ValueError:
        delay = 0.0
    return FakeEncoder(delay_s=delay)


def fake_encoder_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the hook set, for a server or CLI started in a subprocess."""
    here = str(Path(__file__).resolve().parent)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = f"{here}{os.pathsep}{path}" if path else here
    env[ENCODER_FACTORY_ENV] = "fakes:create_encoder"
    return env
