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
- ``valence``, ``arousal`` in [-1, 1];
- with ``--reid across``, ``person_id``: one per person across all inputs of the call (empty where no face).
"""
from __future__ import annotations

from collections.abc import Sequence

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


def finalize(table: pd.DataFrame, schema: LabelSchema, geometry: bool = False, mesh: bool = False,
             person: bool = False) -> pd.DataFrame:
    """Column order and dtypes of the contract: whole numbers stay whole (nullable where a row has no face);
    ``person``: ``person_id`` follows (``analyze --reid across``), ``geometry``: then the landmark, pose
    and gaze columns (``analyze --landmarks``), ``mesh``: then the full mesh's (``--mesh``)."""
    extra = [*(("person_id",) if person else ()), *(GEOMETRY_COLUMNS if geometry or mesh else ()),
             *(MESH_COLUMNS if mesh else ())]
    table = table.reindex(columns=[*result_columns(schema), *extra])
    ints = ["frame", "face_id", "success", *(("person_id",) if person else ()), *(f"{a}_c" for a in au_columns(schema))]
    return table.astype({c: "Int64" for c in ints} | {"input": "str", "expression": "object"})


def main_face_id(faces: pd.DataFrame) -> int | None:
    """The main face of a table's analysed rows: the face_id in most rows (frames); on a tie the lowest
    face_id, whatever the rows' order. None without faces. ABAW files and plots both use it."""
    if faces.empty:
        return None
    counts = faces["face_id"].astype(int).value_counts()
    return int(counts[counts == counts.max()].index.min())


def summary(faces: pd.DataFrame, frames: int, aus: Sequence[str] | None = None, top_aus: int = 3) -> dict:
    """The numbers that sum up analysed rows ``faces`` out of ``frames`` frames or images, each where the
    table has its columns: ``frames``, ``with_face`` (frames with a face), ``faces`` (rows), ``people``
    (face_ids tracked in a video), ``dominant`` expression and its ``dominant_share``, mean ``valence``
    and ``arousal``, and ``top_aus``: of ``aus`` (default: the table's), those decided present most often,
    as (AU, share of rows)."""
    numbers: dict = {"frames": frames, "with_face": faces.drop_duplicates(["input", "frame"]).shape[0],
                     "faces": len(faces), "people": int(faces.loc[faces["frame"] > 0, "face_id"].nunique())}
    if faces.empty:
        return numbers
    if "expression" in faces and faces["expression"].notna().any():
        dominant = faces["expression"].value_counts()
        numbers["dominant"], numbers["dominant_share"] = str(dominant.index[0]), float(dominant.iloc[0] / len(faces))
    for column in ("valence", "arousal"):
        if column in faces:
            numbers[column] = float(pd.to_numeric(faces[column], errors="coerce").mean())
    aus = [c[:-2] for c in faces.columns if c.startswith("AU") and c.endswith("_c")] if aus is None else aus
    decided = [f"{a}_c" for a in aus if f"{a}_c" in faces]
    if decided:
        rates = faces[decided].apply(pd.to_numeric, errors="coerce").mean().sort_values(ascending=False)
        numbers["top_aus"] = [(k[:-2], float(v)) for k, v in rates.head(top_aus).items()]
    return numbers


def describe(table: pd.DataFrame, schema: LabelSchema, top_aus: int = 3) -> str:
    """A short human summary: faces found, dominant expression, mean VA, most active AUs."""
    faces = table[pd.to_numeric(table["success"], errors="coerce") == 1]
    s = summary(faces, table.drop_duplicates(["input", "frame"]).shape[0], au_columns(schema), top_aus)
    video = bool((table["frame"] > 0).any())
    parts = [f"faces in {s['with_face']}/{s['frames']} frames" if video else
             f"{s['faces']} face{'' if s['faces'] == 1 else 's'} in {s['with_face']}/{s['frames']} images"]
    if s["people"]:
        parts[0] += f" ({s['people']} {'person' if s['people'] == 1 else 'people'} tracked)"
    if "dominant" in s:
        parts.append(f"mostly {s['dominant']} ({s['dominant_share']:.0%})")
    if "valence" in s and "arousal" in s:
        parts.append(f"mean valence {s['valence']:+.2f}, arousal {s['arousal']:+.2f}")
    if s.get("top_aus"):
        parts.append("most active " + ", ".join(f"{au} {rate:.0%}" for au, rate in s["top_aus"]))
    return "; ".join(parts)
