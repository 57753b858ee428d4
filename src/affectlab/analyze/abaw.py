"""ABAW submission files from results tables, in the formats affectlab.data.abaw reads.

Uni-task files (``AU/``, ``EXPR/``, ``VA/<video>.txt``: a header line, then one line per frame) and
the multi-task file (``image,valence,arousal,expression,aus``) share their headers with the readers,
so a written file reads back as labels. ABAW files need one prediction per frame of one person
(:func:`main_face`, or with two people tracked the left and the right one); frames where that person
was not found get the prediction of the nearest frame where it was.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from affectlab.analyze.formats import FLOAT_FORMAT
from affectlab.analyze.results import au_columns, main_face_id
from affectlab.data.abaw import MTL_HEADER
from affectlab.errors import AffectlabError
from affectlab.labels import LabelSchema


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
    one = faces.drop_duplicates("frame").set_index("frame").reindex(frames).copy()  # one block: no fragmentation
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
        "VA": (",".join(schema.va_names), rows["valence"].map(FLOAT_FORMAT.__mod__) + "," + rows["arousal"].map(FLOAT_FORMAT.__mod__)),
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
    path.write_text("\n".join([",".join(MTL_HEADER), *lines]) + "\n")
    return path
