"""A per-dimension affine calibration of valence and arousal, fitted on labelled faces and stored in
the checkpoint (``extra["va_calibration"]``), where inference applies it.

CCC rewards the right mean and spread as well as correlation: a model that squeezes arousal toward
its mean loses CCC it could keep. Among affine maps ``a·x + b`` of the predictions ``x``, CCC with
the labels ``y`` is highest for ``a = σ_y / σ_x`` and ``b = μ_y − a·μ_x`` (matching the labels' mean
and spread), where it equals Pearson's correlation. A map fitted on the data it is scored on flatters,
so the CCC reported is cross-validated (fitted on k − 1 folds of whole subjects, films or images,
scored on the held-out one) beside the plain CCC; only a dimension whose cross-validated CCC beats the
plain one is calibrated (the others keep ``a = 1, b = 0``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from affectlab.data.sampling import assign_folds
from affectlab.errors import AffectlabError
from affectlab.inference.batch import collect_outputs
from affectlab.labels import VA_NAMES
from affectlab.metrics import ccc
from affectlab.models import AffectModel
from affectlab.models.checkpoint import update_extra
from affectlab.models.meta import VA_CALIBRATION, InputSpec
from affectlab.train.thresholds import fold_keys

def fit_affine(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` maximising CCC(a·pred + b, truth): the labels' spread over the predictions' and the
    mean that follows; the identity where the predictions do not vary."""
    spread = float(np.std(pred))
    if spread == 0 or not np.isfinite(spread):
        return 1.0, 0.0
    a = float(np.std(truth)) / spread
    return a, float(np.mean(truth) - a * np.mean(pred))


@dataclass
class VACalibration:
    """Per dimension: the map fitted on everything, the plain CCC and the cross-validated calibrated CCC."""

    maps: dict[str, tuple[float, float]]
    ccc_plain: dict[str, float]
    ccc_cross_validated: dict[str, float]
    folds: int

    def paying(self) -> dict[str, list[float]]:
        """The maps of the dimensions where calibration pays cross-validated (what is stored)."""
        return {name: list(self.maps[name]) for name in self.maps
                if self.ccc_cross_validated[name] > self.ccc_plain[name]}


def cross_validated_calibration(pred: np.ndarray, truth: np.ndarray, keys: pd.Series, folds: int = 5) -> VACalibration:
    """Fit each dimension's map (``pred``, ``truth``: (N, 2) valence, arousal; ``keys``: what a fold keeps
    together) and score it on held-out folds; rows with a missing label are left out per dimension."""
    maps, plain, crossed = {}, {}, {}
    for d, name in enumerate(VA_NAMES):
        keep = ~np.isnan(truth[:, d])
        x, y = pred[keep, d], truth[keep, d]
        fold = assign_folds(keys[keep].reset_index(drop=True), folds)
        held_out = np.empty_like(x)
        for f in range(folds):
            held = fold == f
            a, b = fit_affine(x[~held], y[~held])
            held_out[held] = np.clip(a * x[held] + b, -1, 1)
        maps[name], plain[name], crossed[name] = fit_affine(x, y), ccc(x, y), ccc(held_out, y)
    return VACalibration(maps, plain, crossed, folds)


def search_va_calibration(model: AffectModel, samples: pd.DataFrame, *, folds: int = 5, batch_size: int = 128,
                          workers: int = 0, device: str = "cpu") -> VACalibration:
    """Fit ``model``'s VA calibration on the VA-labelled rows of ``samples`` (module docstring); the
    model's raw VA, before any calibration it already stores."""
    labelled = samples[list(VA_NAMES)].notna().any(axis=1).to_numpy()
    rows = samples[labelled].reset_index(drop=True)
    if len(rows) < 2 * folds:
        raise AffectlabError(f"{len(rows)} VA-labelled rows: too few to calibrate with {folds} folds")
    out = collect_outputs(model, rows, InputSpec.of(model), batch_size=batch_size, workers=workers, device=device)
    readable = ~out["corrupt"]
    truth = rows[list(VA_NAMES)].to_numpy(dtype=np.float64)[readable]
    pred = np.clip(out["va"][readable].astype(np.float64), -1, 1)
    return cross_validated_calibration(pred, truth, fold_keys(rows[readable]).reset_index(drop=True), folds)


def write_va_calibration(model: AffectModel, path, result: VACalibration) -> None:
    """Store the paying maps in the checkpoint (``extra["va_calibration"]``; none: the stored one removed)."""
    update_extra(model, path, **{VA_CALIBRATION: result.paying() or None})


def format_calibration(result: VACalibration) -> str:
    """A table: the map, the plain CCC and the cross-validated calibrated CCC per dimension."""
    lines = [f"{'':<9}{'a':>8}{'b':>8}{'CCC':>8}{'CCC cal':>9}   (calibrated CCC {result.folds}-fold cross-validated)"]
    for name, (a, b) in result.maps.items():
        lines.append(f"{name:<9}{a:>8.3f}{b:>+8.3f}{result.ccc_plain[name]:>8.3f}{result.ccc_cross_validated[name]:>9.3f}")
    return "\n".join(lines)
