"""Score a table of predictions against a table of labels: the one code path behind
``affectlab score`` and ``affectlab evaluate``.

Both tables follow the sample-table contract (affectlab.data.table); predictions may carry AU
probabilities, which are thresholded (0.5, or per-AU thresholds from a file). A predictions file is
a CSV manifest or, as written, a results table of ``affectlab analyze`` (its ``images.csv``): one
face per image is scored, the most confident or a given ``face_id``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.data._parse import existing_file, read_csv_text, require, to_float
from affectlab.errors import DataError
from affectlab.jsonfile import read_json
from affectlab.labels import LabelSchema, canonical_au, openface_au
from affectlab.metrics import multitask_scores

#: Columns by which a CSV is known as a results table of ``affectlab analyze``.
RESULTS_COLUMNS = ("input", "face_id", "success")


@dataclass(frozen=True)
class Matched:
    """Predictions and labels row-aligned on the image path, plus what could not be paired."""

    predictions: pd.DataFrame
    labels: pd.DataFrame
    unmatched_labels: int
    unmatched_predictions: int


def read_predictions(path: str | os.PathLike[str], schema: LabelSchema, face_id: int | None = None) -> pd.DataFrame:
    """Predictions to score: a CSV manifest (``path`` column), or a results table of ``affectlab analyze``."""
    from affectlab.data import read_manifest

    csv = existing_file(path)
    raw = read_csv_text(csv)
    if "path" not in raw.columns and all(c in raw.columns for c in RESULTS_COLUMNS):
        return results_predictions(_native_names(raw), csv, schema, face_id)
    if face_id is not None:
        raise DataError(csv, "--face-id picks a face of an 'affectlab analyze' table (input, face_id columns); "
                             "this file is a manifest")
    return read_manifest(csv, schema=schema, predictions=True).samples


def _native_names(raw: pd.DataFrame) -> pd.DataFrame:
    """An analyze table written with ``--format openface`` or ``feat`` (text cells) in native names."""
    from affectlab.analyze.formats import native_names, results_format

    fmt = results_format(list(raw.columns))
    raw = raw.rename(columns=native_names(list(raw.columns), fmt))
    if fmt == "feat":
        image = raw["timestamp"] == "" if "timestamp" in raw.columns else True
        return raw.assign(frame=raw["frame"].where(~image, "-1"))  # py-feat numbers images from 0
    return raw


def results_predictions(raw: pd.DataFrame, csv: Path, schema: LabelSchema, face_id: int | None) -> pd.DataFrame:
    """One prediction per image of an analyze table (text cells): the face ``face_id``, or else the most
    confident face; images without an analysed face have none. Inputs are paths as analyze was given them."""
    frames = to_float(raw["frame"], csv, "frame") if "frame" in raw.columns else np.full(len(raw), -1.0)
    if (frames > 0).any():
        raise DataError(csv, "is a video's table (frame by frame); score images.csv, or the ABAW files of --abaw",
                        line=int(raw.index[np.argmax(frames > 0)]))
    faces = raw[to_float(raw["success"], csv, "success") == 1]
    if face_id is not None:
        faces = faces[to_float(faces["face_id"], csv, "face_id") == face_id]
        if faces.empty:
            raise DataError(csv, f"no image has an analysed face {face_id}")
    confidence = to_float(faces["confidence"], csv, "confidence") if "confidence" in faces.columns else 0
    faces = faces.assign(_c=confidence).sort_values("_c", ascending=False, kind="stable").drop_duplicates("input")
    out = pd.DataFrame({"path": [os.path.abspath(p) for p in faces["input"]]})
    for au in schema.au_names:
        column = openface_au(au) if openface_au(au) in faces.columns else au
        if column in faces.columns:
            out[au] = _probabilities(faces[column], csv, column)
    if all(name in faces.columns for name in schema.expr_names):
        probs = np.column_stack([_probabilities(faces[n], csv, n) for n in schema.expr_names])
        out["expr"] = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    for name in schema.va_names:
        if name in faces.columns:
            values = to_float(faces[name], csv, name)
            require(np.abs(values) <= 1, csv, name, faces[name], "in [-1, 1]")
            out[name] = values
    return out


def _probabilities(cells: pd.Series, csv: Path, column: str) -> np.ndarray:
    values = to_float(cells, csv, column)
    require((values >= 0) & (values <= 1), csv, column, cells, "a probability in [0, 1]")
    return values


def _keys(table: pd.DataFrame, root: Path | None) -> pd.Series:
    """Absolute normalised paths, or paths relative to the file's folder when ``root`` is given."""
    paths = table["path"].astype(str).map(os.path.normpath)
    if root is None:
        return paths
    return paths.map(lambda p: os.path.relpath(p, root) if os.path.isabs(p) else p)


def _check_unique(keys: pd.Series, what: str | os.PathLike[str]) -> None:
    dup = keys[keys.duplicated()]
    if len(dup):
        raise DataError(what, f"image {dup.iloc[0]!r} appears more than once")


def match(predictions: pd.DataFrame, labels: pd.DataFrame, *, pred_root: Path | None = None,
          label_root: Path | None = None, pred_name: str = "predictions", label_name: str = "labels") -> Matched:
    """Pair rows by image path: first as absolute paths, then what is left by the path relative to each
    file's own folder (so ``video1/00001.jpg`` in two files in different folders still pairs)."""
    p_abs, l_abs = _keys(predictions, None), _keys(labels, None)
    _check_unique(p_abs, pred_name)
    _check_unique(l_abs, label_name)
    label_row = {k: j for j, k in enumerate(l_abs)}
    pairs = {i: label_row[k] for i, k in enumerate(p_abs) if k in label_row}
    if pred_root is not None and label_root is not None and len(pairs) < len(labels):
        taken = set(pairs.values())
        label_row = {k: j for j, k in enumerate(_keys(labels, label_root)) if j not in taken}
        pairs |= {i: label_row[k] for i, k in enumerate(_keys(predictions, pred_root))
                  if i not in pairs and k in label_row}
    if not pairs:
        folder = f", {label_root}" if label_root is not None else ""
        raise DataError(pred_name, f"no image path in common with {label_name}: e.g. {p_abs.iloc[0]!r} here, "
                                   f"{l_abs.iloc[0]!r} there (a relative path in a labels file is read from that "
                                   f"file's folder{folder})")
    p_idx, l_idx = list(pairs), list(pairs.values())
    return Matched(
        predictions=predictions.iloc[p_idx].reset_index(drop=True),
        labels=labels.iloc[l_idx].reset_index(drop=True),
        unmatched_labels=len(labels) - len(pairs),
        unmatched_predictions=len(predictions) - len(pairs),
    )


def _columns(table: pd.DataFrame, names: tuple[str, ...] | list[str]) -> np.ndarray | None:
    if not all(n in table.columns for n in names):
        return None
    return table[list(names)].to_numpy(dtype=float)


def score_tables(predictions: pd.DataFrame, labels: pd.DataFrame, schema: LabelSchema,
                 au_thresholds: np.ndarray | None = None) -> dict:
    """ABAW metrics (affectlab.metrics.multitask_scores) for row-aligned predictions and labels.

    A task is scored when the labels carry it and the predictions carry it too."""
    au_true, au_prob = _columns(labels, schema.au_names), _columns(predictions, schema.au_names)
    has_expr = "expr" in labels.columns and "expr" in predictions.columns
    va_true, va_pred = _columns(labels, ["valence", "arousal"]), _columns(predictions, ["valence", "arousal"])
    both = lambda a, b: (a, b) if a is not None and b is not None else (None, None)  # noqa: E731
    au_true, au_prob = both(au_true, au_prob)
    va_true, va_pred = both(va_true, va_pred)
    return multitask_scores(
        schema,
        au_true=au_true, au_prob=au_prob,
        expr_true=labels["expr"].to_numpy() if has_expr else None,
        expr_pred=predictions["expr"].to_numpy() if has_expr else None,
        va_true=va_true, va_pred=va_pred,
        au_thresholds=au_thresholds,
    )


def load_thresholds(path: str | os.PathLike[str], schema: LabelSchema) -> np.ndarray:
    """Per-AU thresholds from a JSON object ``{"AU1": 0.4, ...}`` naming every AU of the schema."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError(path, 'expected a JSON object like {"AU1": 0.5, ...}')
    try:
        given = {canonical_au(k): float(v) for k, v in raw.items()}
    except (ValueError, TypeError) as e:
        raise DataError(path, str(e)) from None
    missing = [a for a in schema.au_names if a not in given]
    if missing:
        raise DataError(path, f"no threshold for {', '.join(missing)}")
    values = np.array([given[a] for a in schema.au_names])
    if not np.all((values > 0) & (values < 1)):
        raise DataError(path, "thresholds must lie strictly between 0 and 1")
    return values
