"""Aff-Wild2 (ABAW) annotations: the uni-task challenge folders and the multi-task (s-Aff-Wild2) file.

Uni-task layout: ``<root>/<task folder>/{Train_Set,Validation_Set}/<video>.txt``, one header line, then
one line per frame (line n + 1 is frame n, image ``<video>/<n:05d>.jpg`` of the cropped_aligned set).
AU and EXPR write -1 for a missing label, VA writes -5. Folder names changed between challenge
editions, so both are accepted. Two-person videos are plain ``<name>_left`` / ``<name>_right`` videos.
"""
from __future__ import annotations

import os
import re
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.data._parse import (IMAGE_MISSING, check_field_counts, drop_rows, existing, existing_file, parse_numbers,
                                   read_text_rows)
from affectlab.data.table import SampleTable, build_table
from affectlab.errors import DataError
from affectlab.labels import AU_ABAW, AU_TEACHER_STUDENT, DEFAULT_SCHEMA, EXPR_NAMES, VA_NAMES, LabelSchema

SPLIT_FOLDERS: dict[str, str] = {"train": "Train_Set", "validation": "Validation_Set"}
AU_MISSING, EXPR_MISSING, VA_MISSING = -1, -1, -5
NO_LABELS = "frame has no labels (all -1 / -5)"
MTL_HEADER: tuple[str, ...] = ("image", "valence", "arousal", "expression", "aus")
_MTL_IMAGE = re.compile(r"^(?P<video>.+)/(?P<frame>\d+)\.[A-Za-z]+$")

#: Task folder names: ABAW2 (2021) first, then ABAW3+ (both EXPR spellings occur).
TASK_FOLDERS: dict[str, tuple[str, ...]] = {
    "AU": ("AU_Set", "AU_Detection_Challenge"),
    "EXPR": ("EXPR_Set", "EXPR_Classification_Challenge", "EXPR_Recognition_Challenge"),
    "VA": ("VA_Set", "VA_Estimation_Challenge"),
}
#: The AUs of the first release (ABAW 2020): eight, with AU20.
AU_ABAW2020: tuple[str, ...] = AU_TEACHER_STUDENT
#: Accepted header lines per task: ABAW 2020 annotated 8 AUs, 2021 onwards 12; ABAW 2020-2021 named
#: 7 expressions, ABAW3 (2022) onwards added "Other".
HEADERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "AU": (AU_ABAW, AU_ABAW2020), "EXPR": (EXPR_NAMES, EXPR_NAMES[:7]), "VA": (VA_NAMES,),
}
#: The fields of one EXPR and VA line, and the table columns they become (AU: the header's AUs).
_FIELDS: dict[str, tuple[str, ...]] = {"EXPR": ("expression",), "VA": VA_NAMES}
_COLUMNS: dict[str, tuple[str, ...]] = {"AU": AU_ABAW, "EXPR": ("expr",), "VA": VA_NAMES}


def read_abaw(annotation_root: str | os.PathLike[str], images: str | os.PathLike[str] | None = None, *,
              split: str | None = None, schema: LabelSchema = DEFAULT_SCHEMA, check_images: bool = True) -> SampleTable:
    """Read the uni-task annotation folders under ``annotation_root``; one row per annotated frame.

    A frame annotated in several tasks becomes one row (merged on video and frame within a split;
    a frame in one task's train set and another's validation set stays two rows, so validation labels
    never leak into training). With ``images`` (the cropped_aligned root) paths are absolute and
    frames without an image are skipped (kept with ``check_images=False``); without it paths are
    ``<video>/<n:05d>.jpg``.
    """
    root = Path(annotation_root)
    if not root.is_dir():
        raise DataError(root, "no such annotation folder")
    if split is not None and split not in SPLIT_FOLDERS:
        raise DataError(root, f"unknown split {split!r}; expected one of {', '.join(SPLIT_FOLDERS)}")
    splits = [split] if split else list(SPLIT_FOLDERS)
    per_task = [_read_task(task, folder, splits) for task, folder in _task_folders(root)]
    keys = ["split", "video", "frame"]
    frames = reduce(lambda a, b: a.merge(b, on=keys, how="outer"), per_task)
    frames = frames.sort_values(keys, ignore_index=True)
    name = frames["frame"].astype(str).str.zfill(5) + ".jpg"
    frames["path"] = frames["video"] + "/" + name
    frames["source"] = "abaw"
    return _finish(frames, images, schema, check_images)


def read_abaw_mtl(file: str | os.PathLike[str], images: str | os.PathLike[str] | None = None, *,
                  schema: LabelSchema = DEFAULT_SCHEMA, check_images: bool = True) -> SampleTable:
    """Read one split of the ABAW multi-task set (s-Aff-Wild2): ``image,valence,arousal,expression,aus``.

    Each row is ``<video>/<frame>.jpg,v,a,expr,au1,...,au12`` (-5 / -1 missing). Same image and
    error rules as :func:`read_abaw`; ``video`` and ``frame`` come from the image path.
    """
    path = existing_file(file)
    header, rows = read_text_rows(path)
    _check_header(path, header, (MTL_HEADER,))
    n_fields = 1 + len(VA_NAMES) + 1 + len(AU_ABAW)
    check_field_counts(path, rows, n_fields)
    parts = pd.Series(rows, dtype="str").str.partition(",")
    image = parts[0].str.strip()
    matched = image.str.extract(_MTL_IMAGE)
    bad = matched["frame"].isna().to_numpy() | (matched["frame"].fillna("0").astype("int64") < 1).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, f"image {image.iloc[i]!r} is not <video>/<frame number>.jpg", line=i + 2)
    values = parse_numbers(path, parts[2].tolist(), ["valence", "arousal", "expression", *AU_ABAW])
    frames = pd.DataFrame({"path": image, "source": "abaw-mtl", "video": matched["video"],
                           "frame": matched["frame"].astype("int64")})
    frames = frames.join([_labels("VA", values[:, 0:2], path, VA_NAMES),
                          _labels("EXPR", values[:, 2:3], path, ("expression",)),
                          _labels("AU", values[:, 3:], path, AU_ABAW)])
    return _finish(frames, images, schema, check_images)


def abaw_release(annotation_root: str | os.PathLike[str]) -> str:
    """Which ABAW release an annotation tree is, in one line, from its first file's header per task."""
    seen: dict[str, tuple[str, ...]] = {}
    for task, folder in _task_folders(Path(annotation_root)):
        first = next(iter(sorted(folder.glob("*/*.txt"))), None)
        if first is not None:
            seen[task] = _check_header(first, read_text_rows(first)[0], HEADERS[task])
    aus, expr = seen.get("AU"), seen.get("EXPR")
    if aus == AU_ABAW2020:
        name = "ABAW 2020"
    elif expr == EXPR_NAMES:
        name = "ABAW3 (2022) or later"
    elif expr is not None or aus is not None:
        name = "ABAW2 (2021)" if expr is not None else "ABAW2 (2021) or later"
    else:
        name = "an ABAW release (VA only)"
    found = [f"{len(aus)} AUs" + (" incl. AU20" if "AU20" in aus else "")] if aus else []
    found += [f"{len(expr)} expressions"] if expr else []
    found += ["valence/arousal"] if "VA" in seen else []
    return f"{name}: {', '.join(found)}"


def _task_folders(root: Path) -> list[tuple[str, Path]]:
    """The task folders present under ``root``: at least one, and one spelling per task."""
    found = []
    for task, folders in TASK_FOLDERS.items():
        present = [root / f for f in folders if (root / f).is_dir()]
        if len(present) > 1:
            raise DataError(root, f"holds both {' and '.join(p.name for p in present)}; keep one annotation release")
        found += [(task, p) for p in present]
    if not found:
        names = ", ".join(f for folders in TASK_FOLDERS.values() for f in folders)
        raise DataError(root, f"no ABAW task folder found; expected one or more of {names}")
    return found


def _read_task(task: str, folder: Path, splits: list[str]) -> pd.DataFrame:
    """All of a task's video files for the chosen splits: split, video, frame and label columns."""
    if not any((folder / name).is_dir() for name in SPLIT_FOLDERS.values()):
        raise DataError(folder, f"expected {' and/or '.join(SPLIT_FOLDERS.values())} inside")
    parts = [_read_video(task, file).assign(split=s)
             for s in splits if (folder / SPLIT_FOLDERS[s]).is_dir()
             for file in sorted((folder / SPLIT_FOLDERS[s]).glob("*.txt"))]
    if not parts:
        empty = {"split": "str", "video": "str", "frame": "int64", **{c: "float64" for c in _COLUMNS[task]}}
        return pd.DataFrame({c: pd.Series(dtype=dtype) for c, dtype in empty.items()})
    return pd.concat(parts, ignore_index=True)


def _read_video(task: str, file: Path) -> pd.DataFrame:
    """One ``<video>.txt``: header checked, values parsed and range-checked, missing codes masked."""
    header, rows = read_text_rows(file)
    names = _check_header(file, header, HEADERS[task])
    fields = names if task == "AU" else _FIELDS[task]
    labels = _labels(task, parse_numbers(file, rows, fields), file, fields, n_expr=len(names))
    frame = pd.DataFrame({"video": pd.Series([file.stem] * len(labels), dtype="str"),
                          "frame": np.arange(1, len(labels) + 1, dtype=np.int64)})
    return frame.join(labels)


def _check_header(path: Path, header: str, accepted: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    """The header's names when they are one of ``accepted`` (case and spaces ignored), else an error."""
    names = tuple(h.strip() for h in header.split(","))
    for option in accepted:
        if tuple(n.lower() for n in names) == tuple(n.lower() for n in option):
            return option
    expected = " or ".join(",".join(option) for option in accepted)
    raise DataError(path, f"wrong header {header.strip()!r}; expected {expected}", line=1)


def _labels(task: str, values: np.ndarray, path: Path, names: tuple[str, ...], *,
            n_expr: int = len(EXPR_NAMES)) -> pd.DataFrame:
    """Range-check one task's values (row i = line i + 2) and turn its missing codes into NaN / -1.

    ``n_expr`` is the number of classes the file's header names (7 in ABAW2, 8 since).
    """
    if task == "AU":
        _require(np.isin(values, (0, 1, AU_MISSING)), values, path, names, "0, 1 or -1 (missing)")
        return pd.DataFrame(np.where(values == AU_MISSING, np.nan, values), columns=list(names))
    if task == "EXPR":
        _require(np.isin(values, np.arange(EXPR_MISSING, n_expr)), values, path, names,
                 f"an expression id in 0..{n_expr - 1} or -1 (missing)")
        return pd.DataFrame({"expr": values[:, 0].astype(np.int64)})
    _require(((values >= -1) & (values <= 1)) | (values == VA_MISSING), values, path, names,
             "in [-1, 1] or -5 (missing)")
    return pd.DataFrame(np.where(values == VA_MISSING, np.nan, values), columns=list(VA_NAMES))


def _require(ok: np.ndarray, values: np.ndarray, path: Path, names: tuple[str, ...], expected: str) -> None:
    bad = np.argwhere(~ok)
    if len(bad):
        row, col = (int(x) for x in bad[0])
        raise DataError(path, f"{names[col]}: {values[row, col]:g} is not {expected}", line=row + 2)


def _finish(frames: pd.DataFrame, images: str | os.PathLike[str] | None, schema: LabelSchema,
            check_images: bool = True) -> SampleTable:
    """Drop frames with no label at all, point paths at ``images`` and (``check_images``) drop frames
    without an image."""
    skipped: dict[str, int] = {}
    au = frames.reindex(columns=sorted(set(AU_ABAW) | set(AU_ABAW2020))).notna().any(axis=1)
    va = frames.reindex(columns=list(VA_NAMES)).notna().any(axis=1)
    expr = frames["expr"].fillna(EXPR_MISSING) != EXPR_MISSING if "expr" in frames else False
    frames = drop_rows(frames, ~(au | va | expr).to_numpy(), NO_LABELS, skipped)
    if images is not None:
        root = Path(images)
        if check_images and not root.is_dir():
            raise DataError(root, "no such image folder")
        frames["path"] = os.path.abspath(root) + os.sep + frames["path"].str.replace("/", os.sep)
        if check_images:
            frames = drop_rows(frames, ~existing(frames["path"]), IMAGE_MISSING, skipped)
    return build_table(frames, schema, skipped)
