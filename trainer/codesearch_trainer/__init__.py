"""codesearch_trainer: fine-tune code search encoders with (Soft-)InfoNCE, export them to ONNX,
and evaluate them on BEIR-style retrieval sets."""

from .losses import InfoNCELoss, SoftInfoNCELoss, soft_weights

__all__ = ["InfoNCELoss", "SoftInfoNCELoss", "soft_weights"]
__version__ = "0.1.0"
