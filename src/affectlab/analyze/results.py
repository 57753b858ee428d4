"""The results table of ``affectlab analyze``: one row per face per frame (or image), stable columns.

Columns, in order (OpenFace-style AU names, so other tools read them):

- ``input`` (the file), ``frame`` (1-based in a video, -1 for an image), ``timestamp`` (seconds, NaN
  for an image), ``face_id`` (stable across a video's frames; -1 where no face was found),
  ``x, y, width, height`` (face box in input pixels), ``confidence`` (detector score; 1 for given
  crops, 0 where no face), ``success`` (1 when a face was analysed, 0 for a frame or image without one:
  such frames still get a row, with the remaining columns empty);
- ``AU01 … AU26``: AU occurrence probabilities, then ``AU01_c …``: decisions (0/1) at the model's
  per-AU thresholds (0.5 unless the checkpoint stores tuned ones);
- the expression probabilities, one column per class named as the class (``Neutral`` … ``Other``),
  and ``expression``, the most probable class's name;
- ``valence``, ``arousal`` in [-1, 1].
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.faces.geometry import GEOMETRY_COLUMNS, MESH_COLUMNS
from affectlab.labels import LabelSchema, openface_au

META_COLUMNS: tuple[str, ...] = ("input", "frame", "timestamp", "face_id", "x", "y", "width", "height",
                                 "confidence", "success")


def au_columns(schema: LabelSchema) -> list[str]:
    return [openface_au(a) for a in schema.au_names]


def result_columns(schema: LabelSchema) -> list[str]:
    """Every column of a results table under ``schema``, in order."""
    aus = au_columns(schema)
    return [*META_COLUMNS, *aus, *(f"{a}_c" for a in aus), *schema.expr_names, "expression", "valence", "arousal"]


def prediction_frame(schema: LabelSchema, au_prob: np.ndarray, expr_prob: np.ndarray, va: np.ndarray,
                     au_thresholds: np.ndarray) -> pd.DataFrame:
    """The prediction columns for N faces: AU probabilities and decisions, expression, VA."""
    aus = au_columns(schema)
    data: dict[str, object] = {a: au_prob[:, j] for j, a in enumerate(aus)}
    data |= {f"{a}_c": (au_prob[:, j] >= au_thresholds[j]).astype(np.int64) for j, a in enumerate(aus)}
    data |= {name: expr_prob[:, k] for k, name in enumerate(schema.expr_names)}
    data["expression"] = np.asarray(schema.expr_names, dtype=object)[expr_prob.argmax(axis=1)] if len(expr_prob) else []
    data["valence"], data["arousal"] = va[:, 0], va[:, 1]
    return pd.DataFrame(data)


def finalize(table: pd.DataFrame, schema: LabelSchema, geometry: bool = False, mesh: bool = False) -> pd.DataFrame:
    """Column order and dtypes of the contract: whole numbers stay whole (nullable where a row has no face);
    ``geometry``: the landmark, pose and gaze columns follow (``analyze --landmarks``), ``mesh``: then
    the full mesh's (``--mesh``)."""
    extra = [*(GEOMETRY_COLUMNS if geometry or mesh else ()), *(MESH_COLUMNS if mesh else ())]
    table = table.reindex(columns=[*result_columns(schema), *extra])
    ints = ["frame", "face_id", "success", *(f"{a}_c" for a in au_columns(schema))]
    return table.astype({c: "Int64" for c in ints} | {"input": "str", "expression": "object"})
