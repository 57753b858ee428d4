"""``evaluate --faces detect``: a model scored on whole images the way ``analyze`` then ``score`` scores it.

``evaluate`` reads labelled images as face crops (``--faces crops``, the default: a dataset's crops,
aligned by its landmarks or framing). Photos with a face somewhere in them need the face found first:
here each labelled image goes through analyze's pipeline (MTCNN, alignment to the checkpoint's
template, the model), its most confident face is its prediction, and the labels are scored against
those predictions, as ``affectlab score images.csv LABELS`` would. Images where no face is found have
no prediction and are left out of the scores (and counted).
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from affectlab.analyze.analyzer import Analyzer
from affectlab.errors import DataError
from affectlab.inference.batch import Evaluation
from affectlab.labels import openface_au
from affectlab.scoring import score_tables


def face_predictions(table: pd.DataFrame, schema) -> pd.DataFrame:
    """One prediction per image of an analyze table: its most confident analysed face's probabilities."""
    faces = table[table["success"] == 1].sort_values("confidence", ascending=False, kind="stable")
    faces = faces.drop_duplicates("input")
    out = pd.DataFrame({"path": faces["input"].astype(str).to_numpy()})
    for au in schema.au_names:
        out[au] = faces[openface_au(au)].to_numpy(dtype=float)
    out["expr"] = faces[list(schema.expr_names)].to_numpy(dtype=float).argmax(axis=1)
    for name in schema.va_names:
        out[name] = faces[name].to_numpy(dtype=float)
    return out


def evaluate_detected(checkpoint: str | os.PathLike[str], samples: pd.DataFrame, *,
                      au_thresholds: np.ndarray | None = None, batch_size: int = 32,
                      device: str | torch.device = "cpu") -> Evaluation:
    """Scores of one model on ``samples``' whole images, each image's face found as analyze finds it."""
    analyzer = Analyzer(checkpoint, device=str(device), faces="detect", batch_size=batch_size)
    tables, unreadable = [], []
    for result in analyzer.analyze_images(samples["path"].tolist()):
        if isinstance(result, DataError):
            unreadable.append(str(result))
        else:
            tables.append(result)
    schema = analyzer.schema
    predictions = face_predictions(pd.concat(tables, ignore_index=True), schema) if tables else \
        pd.DataFrame({"path": []})
    row = {p: i for i, p in enumerate(predictions["path"])}
    found = samples["path"].astype(str).map(row)
    readable = found.notna().to_numpy()
    if not readable.any():
        raise DataError(samples["path"].iloc[0], f"no face found in any of the {len(samples)} images "
                                                 "(--faces crops reads them as face crops)")
    matched = predictions.iloc[found[readable].astype(int).to_numpy()].reset_index(drop=True)
    scores = score_tables(matched, samples[readable].reset_index(drop=True), schema, au_thresholds=au_thresholds)
    return Evaluation(scores, matched, readable, unreadable)
