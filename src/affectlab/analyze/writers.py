"""Results to disk: CSV written row chunk by row chunk, and the ABAW submission formats.

CSV rows are appended and flushed as they are produced, so an interrupted run keeps what it did.
ABAW files need one prediction per frame of one person: the face seen in most frames is taken,
and frames where it was not found get the prediction of the nearest frame where it was.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import pandas as pd

from affectlab.analyze.results import au_columns
from affectlab.errors import AffectlabError
from affectlab.labels import LabelSchema

FLOAT_FORMAT = "%.4f"


class CsvRows:
    """A CSV file that grows by DataFrame chunks; the header is written once."""

    def __init__(self, path: str | os.PathLike[str], append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._header = not (append and self.path.is_file() and self.path.stat().st_size > 0)
        self._file: TextIO = open(self.path, "a" if append else "w", newline="")

    def write(self, rows: pd.DataFrame) -> None:
        rows.to_csv(self._file, header=self._header, index=False, float_format=FLOAT_FORMAT)
        self._header = False
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "CsvRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main_face(table: pd.DataFrame) -> pd.DataFrame:
    """One row per frame for the face seen most often (ties: the lowest face_id), in frame order,
    with frames where it was not found filled from the nearest frame where it was."""
    faces = table[table["success"] == 1]
    frames = pd.Index(sorted(table["frame"].unique()), name="frame")
    if faces.empty:
        raise AffectlabError(f"no face was found in {table['input'].iloc[0]}; nothing to write for ABAW")
    counts = faces["face_id"].value_counts()
    chosen = counts[counts == counts.max()].index.min()
    one = faces[faces["face_id"] == chosen].drop_duplicates("frame").set_index("frame").reindex(frames)
    return one.ffill().bfill().reset_index()


def write_abaw_task_files(table: pd.DataFrame, out_dir: str | os.PathLike[str], name: str,
                          schema: LabelSchema) -> list[Path]:
    """The uni-task submission files of one video: ``AU/<name>.txt``, ``EXPR/<name>.txt``,
    ``VA/<name>.txt``, each a header line and one row per frame, in the ABAW annotation format."""
    rows = main_face(table)
    out = Path(out_dir)
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
