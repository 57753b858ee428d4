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

from affectlab.errors import AffectlabError, DataError

FLOAT_FORMAT = "%.4f"
FORMATS = ("native", "openface", "feat")

# --- OpenFace 2.2 ---------------------------------------------------------------------------------
#: OpenFace 2.2 FeatureExtraction's columns before its AUs, in its order (RecorderCSV: meta, gaze and
#: eye landmarks, head pose, 2-D and 3-D landmarks, shape model parameters).
_EYE = [f"eye_lmk_{axis}_{i}" for axis in ("x", "y", "X", "Y", "Z") for i in range(56)]
OPENFACE_LEADING: tuple[str, ...] = (
    "frame", "face_id", "timestamp", "confidence", "success",
    "gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y", *_EYE,
    "pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz",
    *(f"{axis}_{i}" for axis in ("x", "y", "X", "Y", "Z") for i in range(68)),
    "p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty", *(f"p_{i}" for i in range(34)))
#: The AUs OpenFace 2.2 estimates: intensities (``_r``) and occurrences (``_c``, AU28 too); it writes each
#: block sorted by name, and so does affectlab, an AU OpenFace lacks (AU24) taking its sorted place.
OPENFACE_AUS_R: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12", "AU14",
                                   "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45")
OPENFACE_AUS_C: tuple[str, ...] = (*OPENFACE_AUS_R[:-1], "AU28", "AU45")
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
FEAT_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
_AU = re.compile(r"^AU\d+$")
_LANDMARK = re.compile(r"^[xy]_\d+$")


def _is_au(column: str) -> bool:
    return bool(_AU.match(column))


def openface_columns(native: Sequence[str]) -> list[str]:
    """The columns of the OpenFace file of a native table with columns ``native``, in order: OpenFace's
    own (those present), then affectlab's that OpenFace has no column for, in native order."""
    names = {c: f"{c}_r" if _is_au(c) else c for c in native}
    leading = [c for c in OPENFACE_LEADING if c in names]
    aus = sorted(c for c in native if _is_au(c))
    au_c = sorted(c for c in native if c.endswith("_c") and _is_au(c[:-2]))
    taken = {*leading, *aus, *au_c}
    return [*leading, *(f"{a}_r" for a in aus), *au_c, *(c for c in native if c not in taken)]


def feat_columns(native: Sequence[str]) -> list[str]:
    """The columns of the py-feat file of a native table with columns ``native``, in py-feat's order: box,
    score, landmarks, head pose, AUs, emotions; then affectlab's others, ``input`` and ``frame`` last."""
    present = set(native)
    head = [_FEAT_NAMES[c] for c in ("x", "y", "width", "height", "confidence") if c in present]
    marks = [c for c in native if _LANDMARK.match(c)]
    marks = sorted(marks, key=lambda c: (c[0], int(c[2:])))
    pose = [_FEAT_POSE[c][0] for c in ("pose_Rx", "pose_Rz", "pose_Ry") if c in present]
    aus = sorted(c for c in native if _is_au(c))
    emotions = [e for e in (*FEAT_EMOTIONS, "other") if e.capitalize() in present]  # ABAW's Other: after py-feat's 7
    taken = {*_FEAT_NAMES, *marks, *_FEAT_POSE, *aus, *(e.capitalize() for e in emotions), "input", "frame"}
    rest = [c for c in native if c not in taken]
    return [*head, *marks, *pose, *aus, *emotions, *rest, *(c for c in ("input", "frame") if c in present)]


def to_format(table: pd.DataFrame, fmt: str, first_image: int = 0) -> pd.DataFrame:
    """A native table in the columns of ``fmt``. ``first_image``: py-feat numbers images from 0 within a
    file; the index of this chunk's first image there."""
    if fmt == "native":
        return table
    if fmt == "openface":
        out = table.rename(columns={c: f"{c}_r" for c in table.columns if _is_au(c)})
        return out[openface_columns(list(table.columns))]
    if fmt != "feat":
        raise AffectlabError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = table.rename(columns=_FEAT_NAMES | {c.capitalize(): c for c in FEAT_EMOTIONS} | {"Other": "other"})
    pose = {feat: sign * np.degrees(table[native].astype(float))
            for native, (feat, sign) in _FEAT_POSE.items() if native in table}
    out = pd.concat([out.drop(columns=[n for n in _FEAT_POSE if n in table]), pd.DataFrame(pose, index=out.index)], axis=1)
    frames = table["frame"].astype("Int64")
    image = frames < 0
    order = pd.Series(pd.factorize(table["input"].where(image))[0] + first_image, index=table.index)
    out["frame"] = (frames - 1).where(~image, order).astype("Int64")  # py-feat counts frames and images from 0
    return out[feat_columns(list(table.columns))]


def from_format(table: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """A table written in ``fmt`` (as pandas reads it) back in native columns: what plots, ABAW files and
    the summary read."""
    if fmt == "native":
        return table
    table = table.rename(columns=str.strip)
    if fmt == "openface":
        return table.rename(columns={c: c[:-2] for c in table.columns if c.endswith("_r") and _is_au(c[:-2])})
    out = table.rename(columns={v: k for k, v in _FEAT_NAMES.items()} | {e: e.capitalize() for e in FEAT_EMOTIONS}
                       | {"other": "Other"})
    pose = {native: sign * np.radians(out[feat].astype(float))
            for native, (feat, sign) in _FEAT_POSE.items() if feat in out}
    out = pd.concat([out.drop(columns=[f for f, _ in _FEAT_POSE.values() if f in out]),
                     pd.DataFrame(pose, index=out.index)], axis=1)
    video = out["timestamp"].notna() if "timestamp" in out.columns else pd.Series(False, index=out.index)
    out["frame"] = (out["frame"] + 1).where(video, -1)
    return out


def results_format(columns: Sequence[str]) -> str:
    """Which of FORMATS a results table's header is in (an OpenFace file: ``, `` separated, ``AUxx_r``)."""
    if "FaceScore" in columns or "FaceRectX" in columns:
        return "feat"
    if any(c.startswith(" ") or (c.endswith("_r") and _is_au(c[:-2])) for c in columns):
        return "openface"
    return "native"


def read_results(path: str | os.PathLike[str], fmt: str = "native") -> pd.DataFrame:
    """A results table written by analyze in ``fmt``, as a native table; DataError if it is in another."""
    table = pd.read_csv(path, skipinitialspace=fmt == "openface")
    found = results_format(list(pd.read_csv(path, nrows=0).columns))
    if found != fmt:
        raise DataError(path, f"is a results table in the {found} format, not {fmt}: run with --format {found}, "
                              "or move it away")
    return from_format(table, fmt)


def _openface_text(rows: pd.DataFrame, header: bool) -> str:
    """OpenFace's CSV text: ``, `` between cells; each cell as pandas writes it (quoting, empty = missing)."""
    cells = [rows[[c]].to_csv(header=False, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
             .split("\n")[:-1] for c in rows.columns]
    lines = [OPENFACE_SEPARATOR.join(r) for r in zip(*cells)] if len(rows) else []
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
