"""Models installed with codesearch, as exported folders (manifest.json, model.onnx, tokenizer.json).

``default/`` is the default encoder: ``codesearch.embed.model_specs`` resolves the default spec to it
and ``codesearch.embed.loading`` loads it as it is (no torch, no export). Its model card,
``default/MODEL_CARD.md``, says how it was made and measured.
"""

from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "default"
