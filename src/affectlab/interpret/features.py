"""A model's named feature spaces on a labelled table: which features to look at, and extracting them.

SMM-EmotionNet (§3) has 12 sign-vehicle spaces (``features["sign"]``, (B, H, D), one D-vector per AU)
and one message space (``features["message"]``, (B, D)) shared by EXPR and VA; its MSS ablation (§6)
has separate ``message_expr`` and ``message_va`` spaces. Other models expose their per-AU features
(the streaming network's ``au_features``) and their heads' input (``expr_features``, ``va_features``,
or the pooled ``embedding``): the penultimate layer stands in for the message space. Images reach
the model exactly as in ``affectlab evaluate`` (:func:`affectlab.inference.batch.collect_outputs`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from affectlab.errors import AffectlabError
from affectlab.inference.batch import collect_outputs, combine_outputs, predictions_table
from affectlab.models import AffectModel
from affectlab.models.meta import InputSpec

#: The first of these a model outputs is its per-AU (sign-vehicle) space, (B, n_au, d).
SIGN_FEATURES: tuple[str, ...] = ("sign", "au_features")
#: ... its space for expressions, (B, d): SMM's message, MSS's EXPR message, else the penultimate features.
EXPR_FEATURES: tuple[str, ...] = ("message", "message_expr", "expr_features", "embedding")
#: ... and its space for valence and arousal, (B, d).
VA_FEATURES: tuple[str, ...] = ("message", "message_va", "va_features", "embedding")


@dataclass(frozen=True)
class Spaces:
    """The feature names that play the sign-vehicle (None if the model has none), EXPR and VA spaces."""

    sign: str | None
    expr: str
    va: str


def feature_spaces(names: Iterable[str]) -> Spaces:
    """Pick the spaces to draw from the names of a model's ``Prediction.features``."""
    names = list(names)
    first = lambda options: next((n for n in options if n in names), None)  # noqa: E731
    expr, va = first(EXPR_FEATURES), first(VA_FEATURES)
    if expr is None or va is None:
        raise AffectlabError(f"the model exposes no message or penultimate features (it has: {', '.join(names)}); "
                             f"expected one of {', '.join(EXPR_FEATURES)}")
    return Spaces(sign=first(SIGN_FEATURES), expr=expr, va=va)


def require_single_face(model: AffectModel) -> None:
    """Feature spaces are drawn for models of one face per sample; clips and two-view inputs are refused."""
    if model.input_layout != "BCHW":
        raise AffectlabError(f"model {model.model_name!r} takes {model.input_layout} input; feature spaces are drawn "
                             "for single-face image models (BCHW)")


@dataclass
class Extraction:
    """The rows whose images could be read, the model's predictions for them and every named feature."""

    samples: pd.DataFrame
    predictions: pd.DataFrame
    features: dict[str, np.ndarray]
    unreadable: list[str]


def extract(model: AffectModel, samples: pd.DataFrame, *, batch_size: int = 64, device: str = "cpu",
            progress: bool = False) -> Extraction:
    """Run ``model`` (a loaded checkpoint) over ``samples`` and keep predictions and features.

    The rows go through :func:`collect_outputs` one batch at a time so a progress bar can follow.
    """
    require_single_face(model)
    spec = InputSpec.of(model)
    parts: list[dict[str, np.ndarray]] = []
    starts = range(0, len(samples), batch_size)
    for start in tqdm(starts, desc="extracting features", unit="batch", disable=not progress):
        chunk = samples.iloc[start : start + batch_size]
        parts.append(collect_outputs(model, chunk, spec, batch_size=batch_size, device=device, features=True))
    outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    if not outputs:
        raise AffectlabError("no rows to extract features from")
    readable = ~outputs["corrupt"]
    kept = samples[readable].reset_index(drop=True)
    probs = combine_outputs([{k: outputs[k][readable] for k in ("au", "expr", "va")}])
    features = {k.removeprefix("feature:"): v[readable] for k, v in outputs.items() if k.startswith("feature:")}
    return Extraction(kept, predictions_table(kept, probs, model.schema), features, list(outputs["errors"]))
