"""Per-AU decision thresholds tuned on labelled data and stored in the checkpoint (``AUxx_c`` in analyze).

A threshold tuned on the data it is scored on flatters the F1, so the F1 reported is
cross-validated: thresholds tuned on k - 1 folds (whole subjects, films, videos or images) score the
held-out fold, beside the F1 at the untuned 0.5. The thresholds stored are those tuned on all of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
import pandas as pd

from affectlab.data.sampling import assign_folds
from affectlab.errors import AffectlabError
from affectlab.inference.batch import collect_outputs
from affectlab.inference.outputs import au_probabilities
from affectlab.metrics import au_f1, tune_au_thresholds
from affectlab.models import AffectModel
from affectlab.models.checkpoint import update_extra
from affectlab.models.meta import InputSpec


@dataclass
class ThresholdSearch:
    """Per-AU thresholds and the F1 they give: at 0.5, cross-validated tuned, tuned on everything."""

    au_names: tuple[str, ...]
    thresholds: np.ndarray
    f1_default: np.ndarray
    f1_cross_validated: np.ndarray
    folds: int

    def as_dict(self) -> dict[str, float]:
        return {a: float(t) for a, t in zip(self.au_names, self.thresholds)}


def fold_keys(samples: pd.DataFrame) -> pd.Series:
    """What the folds keep together: a subject, else a film (SFEW), else a video, else the image itself."""
    for column in ("subject", "movie", "video"):
        if column in samples and (samples[column].astype(str) != "").all():
            return samples[column].astype(str)
    return samples["path"].astype(str)


def cross_validated_f1(truth: np.ndarray, probs: np.ndarray, keys: pd.Series, folds: int) -> np.ndarray:
    """Per-AU F1 of thresholds tuned on the other folds, pooled over the held-out predictions."""
    fold = assign_folds(keys, folds)
    decided = np.zeros_like(probs)
    for f in range(folds):
        held = fold == f
        decided[held] = probs[held] >= tune_au_thresholds(truth[~held], probs[~held])
    return au_f1(truth, decided)


def search_thresholds(model: AffectModel, samples: pd.DataFrame, *, folds: int = 3, batch_size: int = 128,
                      workers: int = 0, device: str = "cpu") -> ThresholdSearch:
    """Tune ``model``'s AU thresholds on the AU-labelled rows of ``samples`` (see the module docstring)."""
    aus = list(model.schema.au_names)
    labelled = samples[aus].notna().any(axis=1).to_numpy()
    rows = samples[labelled].reset_index(drop=True)
    if len(rows) < 2 * folds:
        raise AffectlabError(f"{len(rows)} AU-labelled rows: too few to tune thresholds with {folds} folds")
    out = collect_outputs(model, rows, InputSpec.of(model), batch_size=batch_size, workers=workers, device=device)
    readable = ~out["corrupt"]
    truth, probs = rows[aus].to_numpy(dtype=np.float64)[readable], au_probabilities(out["au"][readable])
    return ThresholdSearch(tuple(aus), tune_au_thresholds(truth, probs), au_f1(truth, probs >= 0.5),
                           cross_validated_f1(truth, probs, fold_keys(rows[readable]), folds), folds)


def format_thresholds(result: ThresholdSearch) -> str:
    """A table: threshold and F1 (at 0.5, and tuned but cross-validated) per AU, and their means."""
    lines = [f"{'AU':<6}{'threshold':>10}{'F1 @0.5':>10}{'F1 tuned':>10}   (tuned F1 {result.folds}-fold cross-validated)"]
    for a, t, f0, f1 in zip(result.au_names, result.thresholds, result.f1_default, result.f1_cross_validated):
        lines.append(f"{a:<6}{t:>10.2f}{f0:>10.3f}{f1:>10.3f}")
    lines.append(f"{'mean':<6}{'':>10}{np.nanmean(result.f1_default):>10.3f}{np.nanmean(result.f1_cross_validated):>10.3f}")
    return "\n".join(lines)


def write_thresholds(model: AffectModel, path: str | PathLike[str], result: ThresholdSearch) -> None:
    """Store the thresholds in the checkpoint (``extra["au_thresholds"]``), where analyze reads them."""
    update_extra(model, path, au_thresholds=result.as_dict())
