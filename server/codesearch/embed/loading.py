"""The one way a process gets an encoder: a model spec and a device in, a loaded encoder out.

Encoders are shared process-wide by (model spec, device): every workspace folder of a language
server, every root of an MCP server and every engine of a benchmark use one ONNX session per model.

``CODESEARCH_ENCODER_FACTORY=module:callable`` replaces the ONNX model with ``callable(model, device)``
(an object with the :class:`~codesearch.types.Encoder` members): tests use it to run the real servers
with a small deterministic encoder, and it is the hook for encoders that are not ONNX folders.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..types import Encoder
from . import fp16
from .encoder import OnnxEncoder, ProviderError, choose_provider
from .manifest import ModelManifest
from .model_specs import DEFAULT_MODEL, ModelError, check_model_spec, resolve_model

log = logging.getLogger(__name__)

ENCODER_FACTORY_ENV = "CODESEARCH_ENCODER_FACTORY"

_loaded: dict[tuple[str, str, str], Encoder] = {}
_lock = threading.Lock()


class EncoderLoadError(RuntimeError):
    """The model cannot be found, exported or started; the message says what to do."""


def load_encoder(model: str | None, device: str = "auto",
                 on_status: Callable[[str], None] | None = None) -> Encoder:
    """The encoder for ``model`` on ``device``, loaded once per process (exported once per cache)."""
    factory = os.environ.get(ENCODER_FACTORY_ENV, "")
    key = (factory, model or DEFAULT_MODEL, device)
    with _lock:
        encoder = _loaded.get(key)
        if encoder is None:
            encoder = _from_factory(factory, model, device) if factory else _onnx(model, device, on_status)
            _loaded[key] = encoder
        return encoder


def check_model(model: str | None) -> None:
    """Fail now, cheaply, for a model spec that cannot load (the model itself is loaded later)."""
    if os.environ.get(ENCODER_FACTORY_ENV):
        return
    try:
        check_model_spec(model)
    except ModelError as exc:
        raise EncoderLoadError(str(exc)) from exc


def forget_loaded() -> None:
    """Drop the process-wide encoders (tests; a model folder rewritten in place)."""
    with _lock:
        _loaded.clear()


def _onnx(model: str | None, device: str, on_status: Callable[[str], None] | None) -> Encoder:
    try:
        folder = resolve_model(model, on_status)
        return open_encoder(folder, ModelManifest.read(folder), device, on_status)
    except (ModelError, ProviderError, ValueError, OSError) as exc:
        raise EncoderLoadError(str(exc)) from exc


def open_encoder(folder: Path, manifest: ModelManifest, device: str,
                 on_status: Callable[[str], None] | None = None) -> OnnxEncoder:
    """The encoder of an exported folder; on CUDA its parity-checked fp16 copy (see :mod:`.fp16`)."""
    provider = choose_provider(device).provider
    if manifest.precision != "fp32" or not fp16.wanted(provider):
        return OnnxEncoder(folder, manifest, device=device)
    try:
        onnx_path, report = fp16.fp16_model(folder, manifest, provider, on_status)
    except fp16.Fp16Error as exc:
        message = f"running the fp32 model: {exc}"
        log.warning("%s", message)
        if on_status:
            on_status(message)
        return OnnxEncoder(folder, manifest, device=device)
    log.info("fp16 copy %s (min cosine %s to fp32)", onnx_path, report.get("min_cosine"))
    return OnnxEncoder(folder, manifest, device=device, onnx_path=onnx_path, precision="fp16")


def _from_factory(spec: str, model: str | None, device: str) -> Encoder:
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute or "create_encoder")
    except (ImportError, AttributeError) as exc:
        raise EncoderLoadError(f"{ENCODER_FACTORY_ENV}={spec!r} cannot be imported: {exc}") from exc
    log.info("encoder from %s=%s", ENCODER_FACTORY_ENV, spec)
    encoder: Encoder = factory(model, device)
    return encoder
