"""Run models over a sample table and score them: validation during training, ``affectlab evaluate``,
threshold and smoothing calibration, feature figures.

Predictions become a table in the sample-table layout (AU probabilities, ``expr`` ids plus one
probability column per class, ``valence``, ``arousal``), scored by :func:`affectlab.scoring.score_tables`,
the one scoring path that ``affectlab score`` uses too. Several models form an ensemble: ``mean``
averages AU and class probabilities and VA (teacher-student "Student Ensemble"); ``vote`` lets each
model vote (streaming §4.3.1): an AU is present when at least half the models say so, the class with
most votes wins (ties to the higher mean probability), VA is averaged.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from affectlab.data.dataset import FaceDataset
from affectlab.errors import AffectlabError
from affectlab.inference.outputs import probabilities
from affectlab.labels import LabelSchema
from affectlab.models import AffectModel
from affectlab.models.meta import VA_CALIBRATION, InputSpec
from affectlab.scoring import score_tables


def _loader(samples: pd.DataFrame, schema: LabelSchema, spec: InputSpec, batch_size: int, workers: int,
            features: np.ndarray | None = None) -> DataLoader:
    dataset = FaceDataset(samples, schema, spec, features=features)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      persistent_workers=False, generator=torch.Generator())


@torch.no_grad()
def frame_features(model: AffectModel, samples: pd.DataFrame, spec: InputSpec, *, batch_size: int = 128,
                   workers: int = 0, device: str | torch.device = "cpu", autocast: bool = False) -> np.ndarray:
    """A temporal model's per-frame features (N, C) of every row, once per frame (float16; NaN rows
    for unreadable images): what its frozen CNN gives the GRUs (multi-database §3.3)."""
    was_training = model.training
    model.eval()
    single = dataclasses.replace(spec, clip_len=0)
    parts = []
    try:
        for batch in _loader(samples, model.schema, single, batch_size, workers):
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
                out = model.frame_features(batch["image"].to(device)).float().cpu()
            out[batch["corrupt"]] = float("nan")
            parts.append(out.numpy().astype(np.float16))
    finally:
        model.train(was_training)
    return np.concatenate(parts)


@torch.no_grad()
def collect_outputs(model: AffectModel, samples: pd.DataFrame, spec: InputSpec, *, batch_size: int = 128,
                    workers: int = 0, device: str | torch.device = "cpu", autocast: bool = False,
                    features: bool = False, frames: np.ndarray | None = None,
                    progress: str | None = None) -> dict[str, np.ndarray]:
    """Raw outputs for every row: ``au`` and ``expr`` logits, ``va``, ``va_bins`` (when the model has
    them), ``corrupt`` (rows whose image could not be read) and, with ``features``, every named
    feature as ``feature:<name>``. Sequence models give the output of each row's own frame; given
    ``frames`` (:func:`frame_features` of ``samples``) they read clips of those instead of images.
    ``progress``: a bar with that name on stderr, over the rows (a pass over a large table takes minutes)."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    errors: list[str] = []
    bar = tqdm(total=len(samples), desc=progress, unit="face", dynamic_ncols=True, file=sys.stderr,
               disable=progress is None, leave=False)
    try:
        for batch in _loader(samples, model.schema, spec, batch_size, workers, frames):
            bar.update(len(batch["image"]))
            image = batch["image"].to(device)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
                pred = model(image)
            named = {"au": pred.au, "expr": pred.expr, "va": pred.va}
            if pred.va_bins is not None:
                named["va_bins"] = pred.va_bins
            if features:
                named.update({f"feature:{k}": v for k, v in pred.features.items()})
            if spec.clip_len:
                anchor = batch["anchor"].to(device)
                named = {k: v[torch.arange(len(v), device=device), anchor] for k, v in named.items()}
            for k, v in named.items():
                parts.setdefault(k, []).append(v.float().cpu().numpy())
            parts.setdefault("corrupt", []).append(batch["corrupt"].numpy())
            errors += [e for e in batch["error"] if e]
    finally:
        bar.close()
        model.train(was_training)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["errors"] = np.array(errors, dtype=object)
    return out


def combine_outputs(outputs: Sequence[dict[str, np.ndarray]], method: str = "mean",
                    va_calibrations: Sequence[dict | None] | None = None) -> dict[str, np.ndarray]:
    """One set of probabilities from one or more models' outputs (see the module docstring), each
    model's VA mapped by its own stored calibration (``va_calibrations``, one per output) if any."""
    calibrations = va_calibrations or [None] * len(outputs)
    each = [probabilities(o["au"], o["expr"], o["va"], va_calibration=c) for o, c in zip(outputs, calibrations)]
    au = np.stack([p.au for p in each])
    expr = np.stack([p.expr for p in each])
    va = np.stack([p.va for p in each]).mean(0)
    if method == "mean":
        return {"au": au.mean(0), "expr": expr.mean(0), "va": va}
    if method != "vote":
        raise ValueError(f"unknown ensemble method {method!r}; expected mean or vote")
    votes = (au >= 0.5).mean(0)
    n_classes = expr.shape[2]
    counts = np.eye(n_classes)[expr.argmax(2)].sum(0)
    shares = counts / len(outputs)
    winner = (counts + expr.mean(0) / 2).argmax(1)  # a mean probability (< 1) only breaks ties
    return {"au": votes, "expr": shares, "va": va, "expr_id": winner}


def predictions_table(samples: pd.DataFrame, probs: dict[str, np.ndarray], schema: LabelSchema) -> pd.DataFrame:
    """Probabilities as a table that :func:`affectlab.scoring.score_tables` pairs with ``samples``."""
    expr_id = probs.get("expr_id", probs["expr"].argmax(1))
    table = pd.DataFrame({"path": samples["path"].to_numpy()})
    for c in ("source", "video", "frame"):
        if c in samples:
            table[c] = samples[c].to_numpy()
    # float64 throughout: written to CSV and read back (affectlab score), the numbers stay the same
    table[list(schema.au_names)] = probs["au"].astype(np.float64)
    table["expr"] = expr_id.astype(np.int64)
    table[list(schema.expr_names)] = probs["expr"].astype(np.float64)
    table[list(schema.va_names)] = probs["va"].astype(np.float64)
    return table


@dataclass
class Evaluation:
    """Scores of one table, the predictions behind them, and the images that could not be read."""

    scores: dict
    predictions: pd.DataFrame
    readable: np.ndarray  # (N,) bool: rows whose image could be read (the only ones scored)
    unreadable: list[str]  # "path: reason" of the others


def evaluate(models: Sequence[AffectModel], samples: pd.DataFrame, *, method: str = "mean",
             au_thresholds: np.ndarray | None = None, batch_size: int = 128, workers: int = 0,
             device: str | torch.device = "cpu", autocast: bool = False, spec: InputSpec | None = None,
             frames: np.ndarray | None = None) -> Evaluation:
    """Predict ``samples`` with one model or an ensemble and score against the table's own labels.

    Members must share label schema and input (``spec``, default: each checkpoint's own); unreadable
    images are left out of the scores. ``frames``: per-frame features for temporal models whose
    frozen CNN computed them (:func:`frame_features`).
    """
    if not models:
        raise AffectlabError("no model to evaluate")
    schema = models[0].schema
    specs = [spec or InputSpec.of(m) for m in models]
    for m, s in zip(models[1:], specs[1:]):
        if m.schema != schema or s != specs[0]:
            raise AffectlabError("ensemble members must share labels and input (size, margin, views)")
    outputs = [collect_outputs(m, samples, specs[0], batch_size=batch_size, workers=workers, device=device,
                               autocast=autocast, frames=frames) for m in models]
    calibrations = [(m.checkpoint_meta.extra if m.checkpoint_meta else {}).get(VA_CALIBRATION) for m in models]
    predictions = predictions_table(samples, combine_outputs(outputs, method, calibrations), schema)
    readable = ~outputs[0]["corrupt"]
    scores = score_tables(predictions[readable].reset_index(drop=True), samples[readable].reset_index(drop=True),
                          schema, au_thresholds=au_thresholds)
    return Evaluation(scores, predictions, readable, list(outputs[0]["errors"]))
