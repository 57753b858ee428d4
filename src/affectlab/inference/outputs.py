"""What a model gives per face, as probabilities: the one place logits become probabilities."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlab.labels import VA_NAMES


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


def calibrated_va(va: np.ndarray, calibration: dict[str, list[float]] | None = None) -> np.ndarray:
    """(N, 2) valence and arousal in [-1, 1], each mapped first by its stored affine calibration
    ``{"valence": [a, b], "arousal": [a, b]}`` (a checkpoint's ``va_calibration``; a dimension it
    does not name, or no calibration, is left as the model gives it)."""
    if calibration:
        a = np.array([calibration.get(name, (1.0, 0.0))[0] for name in VA_NAMES], dtype=va.dtype)
        b = np.array([calibration.get(name, (1.0, 0.0))[1] for name in VA_NAMES], dtype=va.dtype)
        va = va * a + b
    return np.clip(va, -1, 1)


def probabilities(au_logits: np.ndarray, expr_logits: np.ndarray, va: np.ndarray,
                  features: dict[str, np.ndarray] | None = None,
                  va_calibration: dict[str, list[float]] | None = None) -> FaceOutputs:
    """Per-face outputs from logits: sigmoid for AUs, softmax for expressions, VA calibrated (where the
    checkpoint stores a calibration) and clipped to [-1, 1]."""
    return FaceOutputs(au=au_probabilities(au_logits), expr=expr_probabilities(expr_logits),
                       va=calibrated_va(va, va_calibration), features=features)
