"""Results to disk: CSV written row chunk by row chunk, in one of three formats, and the ABAW submission files.

CSV rows are appended and flushed as they are produced, so an interrupted run keeps what it did. A table
is written in affectlab's own columns (``native``, see analyze.results), as OpenFace 2.2's
FeatureExtraction writes it (``openface``) or with py-feat's Fex column names (``feat``); each format
reads back to the native table (:func:`read_results`), so plots, ABAW files and ``--skip-existing`` work
whatever was written. ABAW files need one prediction per frame of one person (:func:`main_face`, or
with two people tracked the left and the right one); frames where that person was not found get the
prediction of the nearest frame where it was.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from affectlab.analyze.results import au_columns
from affectlab.errors import AffectlabError, DataError
from affectlab.labels import LabelSchema

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
#: Pitch = -Rx, Roll = Rz, Yaw = Ry (tests/analyze/test_writers.py checks it on rotation matrices).
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


def main_face_id(faces: pd.DataFrame) -> int | None:
    """The main face of a table's analysed rows: the face_id in most rows (frames); on a tie the lowest
    face_id, whatever the rows' order. None without faces. ABAW files and plots both use it."""
    if faces.empty:
        return None
    counts = faces["face_id"].astype(int).value_counts()
    return int(counts[counts == counts.max()].index.min())


def main_face(table: pd.DataFrame) -> pd.DataFrame:
    """One row per frame for the main face (:func:`main_face_id`), in frame order, with frames where it
    was not found filled from the nearest frame where it was."""
    faces = table[table["success"] == 1]
    if faces.empty:
        raise AffectlabError(f"no face was found in {table['input'].iloc[0]}; nothing to write for ABAW")
    return _one_face(table, main_face_id(faces))


def _one_face(table: pd.DataFrame, face_id: int) -> pd.DataFrame:
    """Every frame of ``table`` holding face ``face_id``'s row, filled from the nearest frame it was in."""
    faces = table[(table["success"] == 1) & (table["face_id"] == face_id)]
    frames = pd.Index(sorted(table["frame"].unique()), name="frame")
    one = faces.drop_duplicates("frame").set_index("frame").reindex(frames)
    return one.ffill().bfill().reset_index()


#: A track counts as a person of a two-person video when it is seen in at least this share of the frames
#: (shorter tracks are passers-by or false detections).
PERSON_SHARE = 0.25


def people(table: pd.DataFrame) -> dict[str, int]:
    """``{"left": id, "right": id}`` when two people are tracked in a video (the two face_ids seen most,
    each in at least PERSON_SHARE of its frames), told apart by the mean horizontal centre of their
    boxes as Aff-Wild2 names them; ``{}`` otherwise."""
    faces = table[table["success"] == 1]
    counts = faces["face_id"].astype(int).value_counts()
    counts = counts[counts >= PERSON_SHARE * table["frame"].nunique()]
    if len(counts) < 2:
        return {}
    two = sorted(counts.index, key=lambda i: (-counts[i], i))[:2]
    centre = {i: float((faces.loc[faces["face_id"] == i, "x"] + faces.loc[faces["face_id"] == i, "width"] / 2).mean())
              for i in two}
    left, right = sorted(two, key=lambda i: (centre[i], i))
    return {"left": left, "right": right}


def write_abaw_task_files(table: pd.DataFrame, out_dir: str | os.PathLike[str], name: str,
                          schema: LabelSchema) -> list[Path]:
    """The uni-task submission files of one video: ``AU/<name>.txt``, ``EXPR/<name>.txt``,
    ``VA/<name>.txt``, each a header line and one row per frame, in the ABAW annotation format. With two
    people tracked (:func:`people`), ``<name>_left.txt`` and ``<name>_right.txt`` instead, each person's
    file filled on every frame as the main face's is."""
    two = people(table)
    if not two:
        return _write_task_files(main_face(table), Path(out_dir), name, schema)
    return [path for side, face_id in two.items()
            for path in _write_task_files(_one_face(table, face_id), Path(out_dir), f"{name}_{side}", schema)]


def _write_task_files(rows: pd.DataFrame, out: Path, name: str, schema: LabelSchema) -> list[Path]:
    """AU, EXPR and VA files of one person's rows (one per frame)."""
    decisions = rows[[f"{a}_c" for a in au_columns(schema)]].astype(int)
    expr = rows[list(schema.expr_names)].to_numpy(dtype=float).argmax(axis=1)
    files = {
        "AU": (",".join(schema.au_names), decisions.astype(str).agg(",".join, axis=1)),
        "EXPR": (",".join(schema.expr_names), pd.Series(expr).astype(str)),
        "VA": ("valence,arousal", rows["valence"].map(FLOAT_FORMAT.__mod__) + "," + rows["arousal"].map(FLOAT_FORMAT.__mod__)),
    }
    written = []
    for task, (header, lines) in files.items():
        path = out / task / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *lines]) + "\n")
        written.append(path)
    return written


def write_abaw_mtl(table: pd.DataFrame, path: str | os.PathLike[str], schema: LabelSchema,
                   images_root: str | os.PathLike[str] | None = None) -> Path:
    """The multi-task submission file: ``image,valence,arousal,expression,aus`` then one line per
    image of its main face. ``image`` is the path relative to ``images_root`` (default: the last two
    parts, ``<video>/<frame>.jpg``, as in ABAW's cropped_aligned layout)."""
    faces = table[table["success"] == 1].sort_values(["input", "face_id"]).drop_duplicates("input")
    if faces.empty:
        raise AffectlabError("no face was analysed; nothing to write for ABAW")
    if images_root is None:
        images = faces["input"].map(lambda p: "/".join(Path(p).parts[-2:]))
    else:
        images = faces["input"].map(lambda p: Path(os.path.relpath(p, images_root)).as_posix())
    expr = faces[list(schema.expr_names)].to_numpy(dtype=float).argmax(axis=1)
    aus = faces[[f"{a}_c" for a in au_columns(schema)]].astype(int).astype(str).agg(",".join, axis=1)
    lines = [f"{i},{v:.4f},{a:.4f},{e},{au}" for i, v, a, e, au in
             zip(images, faces["valence"], faces["arousal"], expr, aus)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["image,valence,arousal,expression,aus", *lines]) + "\n")
    return path


def describe(table: pd.DataFrame, schema: LabelSchema, top_aus: int = 3) -> str:
    """A short human summary: faces found, dominant expression, mean VA, most active AUs."""
    faces = table[table["success"] == 1]
    n_frames = table.drop_duplicates(["input", "frame"]).shape[0]
    with_face = faces.drop_duplicates(["input", "frame"]).shape[0]
    video = bool((table["frame"] > 0).any())
    parts = [f"faces in {with_face}/{n_frames} frames" if video else
             f"{len(faces)} face{'' if len(faces) == 1 else 's'} in {with_face}/{n_frames} images"]
    if not faces.empty:
        ids = faces.loc[faces["frame"] > 0, "face_id"].nunique()
        if ids:
            parts[0] += f" ({ids} {'person' if ids == 1 else 'people'} tracked)"
        dominant = faces["expression"].value_counts()
        parts.append(f"mostly {dominant.index[0]} ({dominant.iloc[0] / len(faces):.0%})")
        parts.append(f"mean valence {faces['valence'].mean():+.2f}, arousal {faces['arousal'].mean():+.2f}")
        rates = faces[[f"{a}_c" for a in au_columns(schema)]].astype(float).mean()
        active = rates.sort_values(ascending=False).head(top_aus)
        parts.append("most active " + ", ".join(f"{k[:-2]} {v:.0%}" for k, v in active.items()))
    return "; ".join(parts)
