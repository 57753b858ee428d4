"""Choosing μ of SMM eq. 9 per task: grid search with k-fold cross-validation over videos (SMM §5.2).

"We found the best μ by grid search with three-fold cross-validation on the validation sets of the
uni-task datasets. The search region is μ = {0, 1, ..., 10}." The static model runs once over every
frame; then, for each μ, its features are smoothed within each video and read out by the last
layers, and each task is scored with its ABAW metric (AU: mean F1, EXPR: macro F1, VA: mean CCC,
the terms of SMM eq. 8). Videos are split into k folds; fold i's μ is the best on the other folds
and its score the held-out one (SMM Table 2). The μ kept for the model is the best on all videos.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike

import numpy as np
import pandas as pd
import torch

from affectlab.data.sampling import assign_folds
from affectlab.errors import AffectlabError
from affectlab.inference.batch import collect_outputs
from affectlab.inference.outputs import au_probabilities
from affectlab.inference.smoothing import MU_GRID, readout, smooth_videos, smoothing_inputs
from affectlab.labels import LabelSchema
from affectlab.metrics import p_au, p_expr, p_va
from affectlab.models import AffectModel
from affectlab.models.checkpoint import update_extra
from affectlab.models.meta import InputSpec


@dataclass
class TaskSearch:
    """One task's search: the metric per μ (all videos), per-fold choices and held-out scores, the μ kept."""

    scores: dict[float, float]
    folds: list[dict] = field(default_factory=list)
    mu: float = 0.0


def task_metric(task: str, truth: np.ndarray, output: np.ndarray, schema: LabelSchema) -> float:
    """The ABAW metric of a task (SMM eq. 8 terms) from labels and readout outputs."""
    if task == "au":
        return p_au(truth, (au_probabilities(output) >= 0.5).astype(float))
    if task == "expr":
        return p_expr(truth, output.argmax(axis=1), schema.n_expr)
    return p_va(truth, output)


def _truth(samples: pd.DataFrame, task: str, schema: LabelSchema) -> tuple[np.ndarray, np.ndarray]:
    """(labels, rows labelled for the task)."""
    if task == "au":
        t = samples[list(schema.au_names)].to_numpy(dtype=float)
        return t, ~np.isnan(t).all(axis=1)
    if task == "expr":
        t = samples["expr"].to_numpy(dtype=float)
        return t, t >= 0
    t = samples[list(schema.va_names)].to_numpy(dtype=float)
    return t, ~np.isnan(t).all(axis=1)


def _best(scores: dict[float, float]) -> float:
    """The μ with the highest score; ties to the smaller μ (less smoothing); NaN scores never win."""
    finite = {mu: s for mu, s in scores.items() if not math.isnan(s)}
    if not finite:
        return min(scores)
    top = max(finite.values())
    return min(mu for mu, s in finite.items() if s == top)


def search_mu(model: AffectModel, samples: pd.DataFrame, *, grid: Sequence[float] = MU_GRID, folds: int = 3,
              seed: int = 0, batch_size: int = 128, workers: int = 0,
              device: str | torch.device = "cpu") -> dict[str, TaskSearch]:
    """Grid search of μ per task present in ``samples`` (which must hold videos: ``video`` and ``frame``)."""
    videos = samples["video"].to_numpy().astype(str)
    if (videos == "").all():
        raise AffectlabError("temporal smoothing needs video frames; these samples have no video column values")
    samples = samples[videos != ""].reset_index(drop=True)
    videos = samples["video"].to_numpy().astype(str)
    if len(np.unique(videos)) < folds:
        raise AffectlabError(f"{folds}-fold cross-validation over videos needs at least {folds} videos, "
                             f"got {len(np.unique(videos))}")
    outputs = collect_outputs(model, samples, InputSpec.of(model), batch_size=batch_size, workers=workers,
                              device=device, features=True)
    readable = ~outputs["corrupt"]
    fold = assign_folds(samples["video"], folds, seed)
    frames = samples["frame"].to_numpy()
    results: dict[str, TaskSearch] = {}
    for task in ("au", "expr", "va"):
        truth, labelled = _truth(samples, task, model.schema)
        labelled &= readable
        if not labelled.any():
            continue
        names = [feature for feature, _ in smoothing_inputs(model, task)]
        per_mu: dict[float, np.ndarray] = {}
        for mu in grid:
            smoothed = {n: smooth_videos(outputs[f"feature:{n}"], videos, frames, mu) for n in names}
            per_mu[mu] = readout(model, task, smoothed).numpy()
        score = lambda mu, rows: task_metric(task, truth[rows], per_mu[mu][rows], model.schema)  # noqa: E731
        search = TaskSearch({mu: score(mu, labelled) for mu in grid})
        for k in range(folds):
            train = labelled & (fold != k)
            held = labelled & (fold == k)
            mu_k = _best({mu: score(mu, train) for mu in grid}) if train.any() else search.mu
            search.folds.append({"fold": k, "mu": mu_k, "score": score(mu_k, held) if held.any() else float("nan")})
        search.mu = _best(search.scores)
        results[task] = search
    if not results:
        raise AffectlabError("no labelled frames to choose μ on")
    return results


def format_search(results: dict[str, TaskSearch]) -> str:
    """The metric per μ and task, the μ chosen, and the cross-validated scores."""
    tasks = list(results)
    names = {"au": "AU F1", "expr": "EXPR F1", "va": "VA CCC"}
    grid = list(next(iter(results.values())).scores)
    lines = ["mu    " + "".join(f"{names[t]:>10}" for t in tasks)]
    for mu in grid:
        cells = "".join(f"{results[t].scores[mu]:>10.4f}" if not math.isnan(results[t].scores[mu]) else f"{'-':>10}"
                        for t in tasks)
        lines.append(f"{mu:<6g}{cells}")
    lines.append("chosen" + "".join(f"{results[t].mu:>10g}" for t in tasks))
    for t in tasks:
        folds = "   ".join(f"fold {f['fold'] + 1}: mu {f['mu']:g} -> {f['score']:.4f}" for f in results[t].folds)
        lines.append(f"{names[t]} cross-validation: {folds}")
    return "\n".join(lines)


def write_smoothing(model: AffectModel, path: str | PathLike[str], mu: dict[str, float]) -> None:
    """Save ``model`` to ``path`` with its checkpoint metadata and ``extra["smoothing"] = mu``."""
    update_extra(model, path, smoothing=dict(mu))
