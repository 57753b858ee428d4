"""Results tables to disk and back: CSV written row chunk by row chunk, in one of three formats.

CSV rows are appended and flushed as they are produced, so an interrupted run keeps what it did. A table
is written in affectlab's own columns (``native``, see analyze.results), as OpenFace 2.2's
FeatureExtraction writes it (``openface``) or with py-feat's Fex column names (``feat``); each format
reads back to the native table (:func:`read_results`), so plots, ABAW files (analyze.abaw) and
``--skip-existing`` work whatever was written.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from affectlab.analyze.results import META_COLUMNS
from affectlab.errors import AffectlabError, DataError

FLOAT_FORMAT = "%.4f"
FORMATS = ("native", "openface", "feat")

# --- OpenFace 2.2 ---------------------------------------------------------------------------------
#: OpenFace 2.2 FeatureExtraction's columns before its AUs, in its order (RecorderCSV: meta, gaze and
#: eye landmarks, head pose, 2-D and 3-D landmarks, shape model parameters).
_EYE = [f"eye_lmk_{axis}_{i}" for axis in ("x", "y", "X", "Y", "Z") for i in range(56)]
_LANDMARKS_2D = (*(f"x_{i}" for i in range(68)), *(f"y_{i}" for i in range(68)))
_GAZE_VECTORS = ("gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z")
_POSE = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")
OPENFACE_LEADING: tuple[str, ...] = (
    "frame", "face_id", "timestamp", "confidence", "success", *_GAZE_VECTORS, "gaze_angle_x", "gaze_angle_y", *_EYE,
    *_POSE, *_LANDMARKS_2D, *(f"{axis}_{i}" for axis in ("X", "Y", "Z") for i in range(68)),
    "p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty", *(f"p_{i}" for i in range(34)))
#: The AUs OpenFace 2.2 estimates: intensities (``_r``) and occurrences (``_c``, AU28 too); it writes each
#: block sorted by name, and so does affectlab, an AU OpenFace lacks (AU24) taking its sorted place.
OPENFACE_AUS_R: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
                                   "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
OPENFACE_AUS_C: tuple[str, ...] = (*OPENFACE_AUS_R[:-1], "AU28", "AU45")
#: What py-feat's ``read_openface`` hands to Fex (time, gaze, head pose, 2-D landmarks, every AU): always
#: written, empty where affectlab estimates nothing (no ``--landmarks``, an AU it has no head for), so
#: ``.aus``, ``.landmarks``, ``.facepose`` and ``.gaze`` find their columns. OpenFace's eye landmarks,
#: 3-D landmarks and shape parameters, which no Fex accessor reads, are not written.
OPENFACE_ALWAYS: frozenset[str] = frozenset({"frame", "timestamp", "confidence", "success", *_GAZE_VECTORS, *_POSE,
                                             *_LANDMARKS_2D})
OPENFACE_SEPARATOR = ", "  # OpenFace writes ", " between names and between values

# --- py-feat ----------------------------------------------------------------------------------------
#: Native column -> py-feat Fex column where only the name differs.
_FEAT_NAMES = {"x": "FaceRectX", "y": "FaceRectY", "width": "FaceRectWidth", "height": "FaceRectHeight",
               "confidence": "FaceScore"}
#: py-feat's head pose (degrees) from OpenFace's angles (radians), with the sign that turns one into the
#: other: py-feat (feat.utils.image_operations.convert_to_euler, from img2pose) decomposes the transposed
#: rotation matrix as extrinsic x-y-z and reports (x, -z, -y); for OpenFace's R = Rx Ry Rz that is
#: Pitch = -Rx, Roll = Rz, Yaw = Ry (tests/analyze/test_formats.py checks it on rotation matrices).
_FEAT_POSE = {"pose_Rx": ("Pitch", -1.0), "pose_Rz": ("Roll", 1.0), "pose_Ry": ("Yaw", 1.0)}
#: py-feat 2's Fex pose block (FEAT_FACEPOSE_COLUMNS_6D): the angles, then img2pose's translation, which
#: affectlab does not estimate (its ``pose_T*`` are OpenFace's millimetres, kept under their own names).
FEAT_POSE_COLUMNS: tuple[str, ...] = ("Pitch", "Roll", "Yaw", "X", "Y", "Z")
#: py-feat 2's AUs (Detectorv2's 20, AU_COLUMNS_V2): each is a column, empty where affectlab has no head for it.
FEAT_AUS: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14",
                             "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43")
#: py-feat 2's gaze (FEAT_GAZE_COLUMNS), from its own gaze model: empty, so ``Fex.gazes`` finds its columns;
#: affectlab's gaze is OpenFace's ``gaze_angle_x, gaze_angle_y`` (``--landmarks``), kept under those names.
FEAT_GAZE_COLUMNS: tuple[str, ...] = ("gaze_pitch", "gaze_yaw", "gaze_angle")
#: Native expression -> py-feat 2's emotion column (EMOTION_COLUMNS_V2), in py-feat's order. A table with
#: valence and arousal is a Detectorv2 file to ``read_feat``, which looks for exactly these seven.
FEAT_EMOTIONS: dict[str, str] = {"Neutral": "Neutral", "Happiness": "Happy", "Sadness": "Sad", "Surprise": "Surprise",
                                 "Fear": "Fear", "Disgust": "Disgust", "Anger": "Anger", "Other": "Other"}
#: py-feat 1's lowercase emotion names, as tables written before py-feat 2's names were used have them.
_FEAT_V1_EMOTIONS = {"anger": "Anger", "disgust": "Disgust", "fear": "Fear", "happiness": "Happiness",
                     "sadness": "Sadness", "surprise": "Surprise", "neutral": "Neutral", "other": "Other"}
_AU = re.compile(r"^AU\d+$")
_LANDMARK = re.compile(r"^[xy]_\d+$")


def _is_au(column: str) -> bool:
    return bool(_AU.match(column))


def _feat_decision(column: str) -> str:
    """``AU01_c`` -> ``au01_c``: ``read_feat`` takes every column with "AU" in its name for an AU
    probability, so the 0/1 decisions are written in lower case."""
    return column.lower()


def openface_columns(native: Sequence[str]) -> list[str]:
    """The columns of the OpenFace file of a native table with columns ``native``, in order: OpenFace's
    own (those present and those py-feat's reader needs), then affectlab's that OpenFace has no column
    for, in native order."""
    names = {c: f"{c}_r" if _is_au(c) else c for c in native}
    leading = [c for c in OPENFACE_LEADING if c in names or c in OPENFACE_ALWAYS]
    aus = sorted({c for c in native if _is_au(c)} | set(OPENFACE_AUS_R))
    au_c = sorted({c for c in native if c.endswith("_c") and _is_au(c[:-2])} | {f"{a}_c" for a in OPENFACE_AUS_C})
    taken = {*leading, *aus, *au_c}
    return [*leading, *(f"{a}_r" for a in aus), *au_c, *(c for c in native if c not in taken)]


def feat_columns(native: Sequence[str]) -> list[str]:
    """The columns of the py-feat file of a native table with columns ``native``, in py-feat 2's order
    (Detectorv2): box, score, landmarks, head pose, AUs, emotions, valence and arousal; then affectlab's
    others, ``input`` and ``frame`` last."""
    present = set(native)
    head = [_FEAT_NAMES[c] for c in ("x", "y", "width", "height", "confidence") if c in present]
    aus = sorted({c for c in native if _is_au(c)} | set(FEAT_AUS))
    emotions = [feat for name, feat in FEAT_EMOTIONS.items() if name in present]
    va = [c for c in ("valence", "arousal") if c in present]
    taken = {*_FEAT_NAMES, *_LANDMARKS_2D, *_FEAT_POSE, *aus, *FEAT_EMOTIONS, *va, "input", "frame"}
    rest = [_feat_decision(c) if c.endswith("_c") and _is_au(c[:-2]) else c for c in native if c not in taken]
    return [*head, *_LANDMARKS_2D, *FEAT_POSE_COLUMNS, *aus, *emotions, *va, *FEAT_GAZE_COLUMNS, *rest,
            *(c for c in ("input", "frame") if c in present)]


def to_format(table: pd.DataFrame, fmt: str, first_image: int = 0) -> pd.DataFrame:
    """A native table in the columns of ``fmt``, a column the format has and affectlab does not fill left
    empty. ``first_image``: py-feat numbers images from 0 within a file; the index of this chunk's first
    image there."""
    if fmt == "native":
        return table
    if fmt == "openface":
        out = table.rename(columns={c: f"{c}_r" for c in table.columns if _is_au(c)})
        return out.reindex(columns=openface_columns(list(table.columns)))
    if fmt != "feat":
        raise AffectlabError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    decisions = {c: _feat_decision(c) for c in table.columns if c.endswith("_c") and _is_au(c[:-2])}
    out = table.rename(columns=_FEAT_NAMES | FEAT_EMOTIONS | decisions)
    pose = {feat: sign * np.degrees(table[native].astype(float))
            for native, (feat, sign) in _FEAT_POSE.items() if native in table}
    out = pd.concat([out.drop(columns=[n for n in _FEAT_POSE if n in table]), pd.DataFrame(pose, index=out.index)], axis=1)
    frames = table["frame"].astype("Int64")
    image = frames < 0
    order = pd.Series(pd.factorize(table["input"].where(image))[0] + first_image, index=table.index)
    out["frame"] = (frames - 1).where(~image, order).astype("Int64")  # py-feat counts frames and images from 0
    return out.reindex(columns=feat_columns(list(table.columns)))


def native_names(columns: Sequence[str], fmt: str) -> dict[str, str]:
    """The renaming that gives a table written in ``fmt`` (stripped column names) its native names
    (py-feat's head pose, in other units, is converted by :func:`from_format`)."""
    if fmt == "openface":
        return {c: c[:-2] for c in columns if c.endswith("_r") and _is_au(c[:-2])}
    if fmt != "feat":
        return {}
    decisions = {c: c.upper()[:-2] + "_c" for c in columns if re.fullmatch(r"au\d+_c", c)}
    return ({v: k for k, v in _FEAT_NAMES.items()} | {v: k for k, v in FEAT_EMOTIONS.items()} | _FEAT_V1_EMOTIONS
            | decisions)


def from_format(table: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """A table written in ``fmt`` (as pandas reads it) back in native columns: what plots, ABAW files and
    the summary read. The columns the format has and affectlab left empty are dropped again."""
    if fmt == "native":
        return table
    table = table.rename(columns=str.strip)
    out = _without_empty_places(table.rename(columns=native_names(list(table.columns), fmt)), fmt)
    if fmt == "openface":
        return out
    pose = {native: sign * np.radians(out[feat].astype(float))
            for native, (feat, sign) in _FEAT_POSE.items() if feat in out}
    out = pd.concat([out.drop(columns=[f for f, _ in _FEAT_POSE.values() if f in out]),
                     pd.DataFrame(pose, index=out.index)], axis=1)
    video = out["timestamp"].notna() if "timestamp" in out.columns else pd.Series(False, index=out.index)
    out["frame"] = (out["frame"] + 1).where(video, -1)
    return out


def _without_empty_places(table: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """``table`` (native names) without the columns ``fmt`` always writes that hold no value although
    faces were analysed (an AU the model has no head for, landmarks without --landmarks); with no
    analysed face at all, every column stays."""
    success = pd.to_numeric(table.get("success", pd.Series(dtype=float)), errors="coerce")
    if not (success == 1).any():
        return table
    places = {*_LANDMARKS_2D, *_POSE, "X", "Y", "Z", *FEAT_GAZE_COLUMNS, *_GAZE_VECTORS, *OPENFACE_AUS_R, *FEAT_AUS,
              *(f"{a}_c" for a in (*OPENFACE_AUS_C, *FEAT_AUS)), *(p for p, _ in _FEAT_POSE.values())}
    empty = [c for c in table.columns if c in places and table[c].isna().all()]
    return table.drop(columns=empty)


def results_format(columns: Sequence[str]) -> str:
    """Which of FORMATS a results table's header is in (an OpenFace file: ``, `` separated, ``AUxx_r``)."""
    if "FaceScore" in columns or "FaceRectX" in columns:
        return "feat"
    if any(c.startswith(" ") or (c.endswith("_r") and _is_au(c[:-2])) for c in columns):
        return "openface"
    return "native"


def read_results(path: str | os.PathLike[str], fmt: str | None = "native") -> pd.DataFrame:
    """A results table written by analyze in ``fmt`` (None: the format its header shows), as a native
    table; DataError if it is in another."""
    found = results_format(list(pd.read_csv(path, nrows=0).columns))
    if fmt is not None and found != fmt:
        raise DataError(path, f"is a results table in the {found} format, not {fmt}: run with --format {found}, "
                              "or move it away")
    # .copy(): pandas reads a block per column; with --landmarks (170+ columns) the fills of the ABAW
    # files would warn of a fragmented frame
    table = pd.read_csv(path, skipinitialspace=found == "openface").copy()
    return from_format(table, found)


def checked_results(path: str | os.PathLike[str], fmt: str | None = None, advice: str = "") -> pd.DataFrame:
    """A results table of analyze as a native table, in ``fmt`` (None: the format its header shows);
    DataError naming the file and what is wrong, with ``advice`` after it, where it is not one."""
    kind = "results table of affectlab analyze" + ("" if fmt in (None, "native") else f" in the {fmt} format")
    try:
        table = read_results(path, fmt)
    except DataError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, KeyError, ValueError, TypeError) as e:
        raise DataError(path, f"not a {kind} ({e}){advice}") from None
    missing = [c for c in META_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(path, f"not a {kind}: no {', '.join(map(repr, missing))} column{'s' if len(missing) > 1 else ''}"
                              f"{advice}")
    return table


def _openface_line(cells: Sequence[str]) -> str:
    """One row of cells with OpenFace's ``, ``; an empty cell (a missing value) follows a bare ``,``, so a
    reader that splits on ``,`` alone (py-feat's ``read_openface``) reads an empty cell, a missing number,
    where ``, `` would give it a blank text."""
    return cells[0] + "".join(("," if cell == "" else OPENFACE_SEPARATOR) + cell for cell in cells[1:])


def _openface_text(rows: pd.DataFrame, header: bool) -> str:
    """OpenFace's CSV text: ``, `` between cells; each cell as pandas writes it (quoting), a missing value
    an empty cell (pandas writes a one-column table's as ``""``, which readers take for a text)."""
    cells = [[cell if cell != '""' else "" for cell in
              rows[[c]].to_csv(header=False, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
              .split("\n")[:-1]] for c in rows.columns]
    lines = [_openface_line(r) for r in zip(*cells)] if len(rows) else []
    return "".join(f"{line}\n" for line in ([OPENFACE_SEPARATOR.join(rows.columns)] if header else []) + lines)


class CsvRows:
    """A CSV file that grows by native DataFrame chunks, written in ``fmt``; the header is written once."""

    def __init__(self, path: str | os.PathLike[str], append: bool = False, fmt: str = "native"):
        if fmt not in FORMATS:
            raise AffectlabError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.path, self.fmt = Path(path), fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        earlier = append and self.path.is_file() and self.path.stat().st_size > 0
        self._header = not earlier
        #: images already in the file (py-feat numbers them from 0 within a file)
        self._images = int(read_results(self.path, fmt)["input"].nunique()) if earlier and fmt == "feat" else 0
        self._file: TextIO = open(self.path, "a" if append else "w", newline="")

    def write(self, rows: pd.DataFrame) -> None:
        out = to_format(rows, self.fmt, first_image=self._images)
        if self.fmt == "openface":
            self._file.write(_openface_text(out, self._header))
        else:
            out.to_csv(self._file, header=self._header, index=False, float_format=FLOAT_FORMAT)
        self._images += int(rows.loc[rows["frame"].astype("Int64") < 0, "input"].nunique())
        self._header = False
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "CsvRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
