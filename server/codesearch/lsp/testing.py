"""A seeded fake encoder for fast tests, chosen with ``CODESEARCH_TEST_FAKE_ENCODER=1``.

It hashes identifier parts to random vectors (similar words → similar vectors), so searching
works without exporting or running a model.  ``CODESEARCH_TEST_ENCODER_DELAY`` (seconds per
document batch) makes indexing slow enough to observe progress, cancellation and searches
during indexing; a query containing ``CRASH_QUERY`` fails, to test how internal errors are handled.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence

import numpy as np

from ..index.identifiers import identifier_terms
from ..types import Encoder, Vectors

FAKE_ENCODER_ENV = "CODESEARCH_TEST_FAKE_ENCODER"
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


def encoder_from_env() -> Encoder | None:
    """The fake encoder when the test hook asks for it, else ``None`` (the engine loads the real model)."""
    if os.environ.get(FAKE_ENCODER_ENV, "") not in ("1", "true", "yes"):
        return None
    try:
        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    except ValueError:
        delay = 0.0
    return FakeEncoder(delay_s=delay)
