"""CSV manifests: the format users write for their own data, and for prediction files to score.

A ``path`` column (relative to the CSV's folder, or absolute) plus any subset of label columns:
``AU1``/``AU01`` ... (0/1), ``expression`` (ABAW name in any case, or id), ``valence``, ``arousal``,
``expr_soft_<Name>`` distributions; empty cells are missing labels. ``video``, ``frame``, ``subject``,
``split`` and any other columns are kept. A written sample table reads back as itself (``expr`` is
accepted for ``expression`` and a ``source`` column is kept), so tables can be saved as CSV.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from affectlab.data._parse import (drop_missing_images, existing_file, read_csv_text, require, resolve_paths, to_float,
                                   to_int, typed_extras)
from affectlab.data.table import AU_COLUMN, SOFT_COLUMNS, SOFT_PREFIX, SampleTable, build_table, select_split
from affectlab.errors import DataError
from affectlab.labels import DEFAULT_SCHEMA, EXPR_IDS, EXPR_NAMES, LabelSchema, canonical_au

_SOFT_SUM_TOLERANCE = 1e-3


def read_manifest(csv: str | os.PathLike[str], *, split: str | None = None, schema: LabelSchema = DEFAULT_SCHEMA,
                  predictions: bool = False, check_images: bool = True) -> SampleTable:
    """Read a CSV manifest; rows whose image is missing are skipped and counted (``check_images=False``:
    kept, as scoring labels needs only their paths).

    With ``predictions=True`` (a predictions file to score) AU values may be probabilities in [0, 1],
    the expression may be given as one probability column per schema class (named as the classes;
    the argmax is taken), and image files are not checked.
    """
    path = existing_file(csv)
    raw = select_split(read_csv_text(path, ["path"]), split, path)
    require((raw["path"] != "").to_numpy(), path, "path", raw["path"], "an image path")
    expr_column = _expression_column(raw, path)
    aus = _au_columns(raw, path)
    soft = [c for c in raw.columns if c.startswith(SOFT_PREFIX)]
    va = [c for c in schema.va_names if c in raw.columns]
    frame = pd.DataFrame({"path": resolve_paths(path.parent, raw["path"]), "source": _sources(raw, path)})
    frame = frame.assign(
        **{au: _au_values(raw[col], path, col, predictions) for au, col in aus.items()},
        **{c: _va_values(raw[c], path, c) for c in va},
        **_soft_values(raw, soft, path),
        **_video_frame(raw, path),
    )
    if expr_column:
        frame["expr"] = _expr_ids(raw[expr_column], path, expr_column)
    elif predictions and all(n in raw.columns for n in schema.expr_names):
        frame["expr"] = _argmax_expr(raw, list(schema.expr_names), path)
    expr_columns = [expr_column] if expr_column else []
    translated = ["path", "source", "video", "frame", *expr_columns, *aus.values(), *soft, *va]
    frame = frame.join(typed_extras(raw.drop(columns=translated, errors="ignore")))
    skipped: dict[str, int] = {}
    if check_images and not predictions:
        frame = drop_missing_images(frame, skipped)
    return build_table(frame, schema, skipped)


def _expression_column(raw: pd.DataFrame, path: os.PathLike[str]) -> str | None:
    """``expression`` (or ``expr``, as a written sample table names it); both at once is ambiguous."""
    present = [c for c in ("expression", "expr") if c in raw.columns]
    if len(present) > 1:
        raise DataError(path, "has both 'expression' and 'expr' columns; keep one", line=1)
    return present[0] if present else None


def _au_columns(raw: pd.DataFrame, path: os.PathLike[str]) -> dict[str, str]:
    """Canonical AU name -> the file's column (``AU01`` -> ``AU1``); two spellings of one AU clash."""
    found: dict[str, str] = {}
    for col in raw.columns:
        if AU_COLUMN.match(col):
            au = canonical_au(col)
            if au in found:
                raise DataError(path, f"columns {found[au]!r} and {col!r} both name {au}", line=1)
            found[au] = col
    return found


def _sources(raw: pd.DataFrame, path: os.PathLike[str]) -> pd.Series | str:
    """A written table's own ``source`` where given, else ``manifest:<file stem>``."""
    default = f"manifest:{os.path.splitext(os.path.basename(path))[0]}"
    if "source" not in raw.columns:
        return default
    return raw["source"].mask(raw["source"] == "", default)


def _au_values(cells: pd.Series, path: os.PathLike[str], column: str, probabilities: bool) -> np.ndarray:
    values = to_float(cells, path, column)
    if probabilities:
        require(np.isnan(values) | ((values >= 0) & (values <= 1)), path, column, cells, "a probability in [0, 1]")
    else:
        require(np.isnan(values) | np.isin(values, (0, 1)), path, column, cells, "0 or 1 (empty = missing)")
    return values


def _va_values(cells: pd.Series, path: os.PathLike[str], column: str) -> np.ndarray:
    values = to_float(cells, path, column)
    require(np.isnan(values) | ((values >= -1) & (values <= 1)), path, column, cells, "in [-1, 1] (empty = missing)")
    return values


def _expr_ids(cells: pd.Series, path: os.PathLike[str], column: str) -> np.ndarray:
    """ABAW names (any case; contempt is Other) or ids -> ids; '' and -1 are missing. Ids outside the schema
    are the table's job."""
    by_name = cells.str.lower().map(EXPR_IDS)
    by_id = pd.to_numeric(cells.mask(cells == ""), errors="coerce")
    ids = by_name.fillna(by_id).fillna(-1)
    ok = (cells == "") | by_name.notna() | by_id.isin(range(-1, len(EXPR_NAMES)))
    require(ok.to_numpy(), path, column, cells,
            f"an ABAW expression ({', '.join(EXPR_NAMES)}) or id 0..{len(EXPR_NAMES) - 1} (empty = missing)")
    return ids.to_numpy(dtype=np.int64)


def _argmax_expr(raw: pd.DataFrame, names: list[str], path: os.PathLike[str]) -> np.ndarray:
    """Per-class probability columns -> the most probable class; rows with no values stay -1."""
    probs = np.column_stack([to_float(raw[n], path, n) for n in names])
    empty = np.isnan(probs).all(axis=1)
    return np.where(empty, -1, np.argmax(np.nan_to_num(probs, nan=-np.inf), axis=1))


def _soft_values(raw: pd.DataFrame, columns: list[str], path: os.PathLike[str]) -> dict[str, np.ndarray]:
    """``expr_soft_<Name>`` columns: each row all empty, or probabilities summing to 1."""
    unknown = [c for c in columns if c not in SOFT_COLUMNS]
    if unknown:
        raise DataError(path, f"unknown soft-label column(s) {', '.join(unknown)}; expected {', '.join(SOFT_COLUMNS)}",
                        line=1)
    if not columns:
        return {}
    values = {c: to_float(raw[c], path, c) for c in columns}
    for c, v in values.items():
        require(np.isnan(v) | ((v >= 0) & (v <= 1)), path, c, raw[c], "a probability in [0, 1] (empty = missing)")
    stacked = np.column_stack(list(values.values()))
    present = ~np.isnan(stacked)
    whole = present.all(axis=1) | ~present.any(axis=1)
    sums_ok = ~present.all(axis=1) | (np.abs(stacked.sum(axis=1) - 1) <= _SOFT_SUM_TOLERANCE)
    first = raw[columns[0]]
    require(whole, path, SOFT_PREFIX + "*", first, "part of a complete soft target (fill every class or none)")
    require(sums_ok, path, SOFT_PREFIX + "*", first, "part of a soft target summing to 1")
    return values


def _video_frame(raw: pd.DataFrame, path: os.PathLike[str]) -> dict[str, object]:
    """Optional ``video`` (text) and ``frame`` (1-based; empty or -1 for stills)."""
    out: dict[str, object] = {}
    if "video" in raw.columns:
        out["video"] = raw["video"]
    if "frame" in raw.columns:
        frames = to_int(raw["frame"], path, "frame", missing=-1)
        require((frames >= 1) | (frames == -1), path, "frame", raw["frame"], "a frame number >= 1 (or empty)")
        out["frame"] = frames
    return out
