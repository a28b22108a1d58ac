"""Shared fixtures: a seeded fake encoder, an isolated cache, the real default model (once)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeEncoder

__all__ = ["FakeEncoder"]


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
    stop_background_indexers(tmp_path_factory.getbasetemp())


def stop_background_indexers(base: Path) -> None:
    """A detached background indexer that a test's search started never outlives the test: stopped as
    `codesearch stop` would, killed if it does not stop. Every test's cache lies under ``base`` (some
    modules share one cache among their tests)."""
    import signal

    from codesearch.service import background

    for state_file in base.glob(f"*/workspaces/*/{background.STATE_FILE}"):
        found = background.stop(state_file.parent, timeout=30.0)
        if found.running and found.state is not None:
            os.kill(found.state.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The embedded default exported to ONNX once per test session (shared cache across runs)."""
    from codesearch.embed.model_specs import resolve_model

    return resolve_model(None)
