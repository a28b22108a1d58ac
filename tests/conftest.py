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
    """The default model's folder: the shipped one, or else the base model exported once (shared cache)."""
    from codesearch.embed.model_specs import resolve_model

    return resolve_model(None)


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """The fp32 base model (all-MiniLM-L6-v2) exported once into the shared cache: what fp16 converts.
    The shipped default has int8 weights, so it cannot stand in for it."""
    from codesearch.embed.model_specs import BASE_MODEL_ID, resolve_model

    pytest.importorskip("torch")  # exporting it needs torch (the dev install has it)
    return resolve_model(BASE_MODEL_ID)


@pytest.fixture(scope="session")
def stand_in_models_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``codesearch_models`` package folder whose ``default/`` is a tiny exported encoder: stands in
    for the shipped default model where the mechanism, not the model, is under test."""
    pytest.importorskip("torch")
    from codesearch.embed.onnx_export import export_encoder
    from codesearch_trainer.testing import tiny_bert

    root = tmp_path_factory.mktemp("stand-in") / "codesearch_models"
    root.mkdir()
    (root / "__init__.py").write_text("")
    tiny = tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", max_length=64)
    export_encoder(tiny, root / "default", model_id="tiny stand-in for the shipped default")
    return root


def source_copy(dest: Path) -> Path:
    """The repository's files (tracked and untracked, not ignored) copied to ``dest``: builds there
    leave no ``build/`` in the checkout and cannot pick up stale files from one."""
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True,
                            check=False)
    if listed.returncode != 0:  # not a git checkout
        shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", "node_modules",
                                                                  ".git"))
        return dest
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = repo / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest
