"""What a model gives per face, as probabilities: the one place logits become probabilities."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceOutputs:
    """Per-face outputs: AU probabilities (N, n_au), expression probabilities (N, n_expr), VA (N, 2),
    and, when asked for, the model's named features (for temporal smoothing)."""

    au: np.ndarray
    expr: np.ndarray
    va: np.ndarray
    features: dict[str, np.ndarray] | None = None


def au_probabilities(logits: np.ndarray) -> np.ndarray:
    """AU occurrence probabilities: the sigmoid of the logits. A very negative logit overflows exp to
    inf and gives probability 0, as it should: no warning."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-logits))


def expr_probabilities(logits: np.ndarray) -> np.ndarray:
    """Expression class probabilities (N, n_expr): the softmax of the logits along the classes."""
    expr = np.exp(logits - logits.max(axis=1, keepdims=True))
    return expr / expr.sum(axis=1, keepdims=True)


def probabilities(au_logits: np.ndarray, expr_logits: np.ndarray, va: np.ndarray,
                  features: dict[str, np.ndarray] | None = None) -> FaceOutputs:
    """Per-face outputs from logits: sigmoid for AUs, softmax for expressions, VA clipped to [-1, 1]."""
    return FaceOutputs(au=au_probabilities(au_logits), expr=expr_probabilities(expr_logits), va=np.clip(va, -1, 1),
                       features=features)
