"""Input helpers shared by the readers: load text, convert and check values, find missing images.

Every check raises :class:`DataError` naming the file and the line of the first bad value, so a
user can open the file at that line. Checks are vectorised: the line is located only on failure.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.errors import DataError, first_line, not_there
from affectlab.data.table import add_skipped

IMAGE_MISSING = "image file missing"
#: Columns that hold identifiers: kept as text even when they look numeric ("001" stays "001").
TEXT_COLUMNS = ("video", "subject", "split", "path")
_PARSER_FIELDS = re.compile(r"Expected (?P<expected>\d+) fields in line (?P<line>\d+), saw (?P<saw>\d+)")


#: File suffixes read as images (by the readers and by analyze).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})


def existing_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or a DataError when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, not_there(path, "file"))
    return path


def read_csv_text(path: Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV with every cell as stripped text ('' = empty), indexed by line number for error messages."""
    try:
        with warnings.catch_warnings():  # a first row longer than the header would silently lose cells
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False,
                              encoding="utf-8-sig")
    except pd.errors.ParserWarning:
        raise DataError(path, "more fields than the header names", line=2) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        found = _PARSER_FIELDS.search(str(err))
        if found:
            raise DataError(path, f"expected {found['expected']} fields, found {found['saw']}",
                            line=int(found["line"])) from None
        raise DataError(path, f"not a readable CSV ({first_line(err, last=True)})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    absent = [c for c in required if c not in raw.columns]
    if absent:
        raise DataError(path, f"missing column(s) {', '.join(absent)}", line=1)
    raw.index = pd.RangeIndex(2, len(raw) + 2, name="line")
    return raw.apply(lambda s: s.str.strip())


def read_text_rows(path: Path) -> tuple[str, list[str]]:
    """A text file's header line and data lines (trailing blank lines ignored); data line i is line i + 2."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read ({err})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(path, "empty file (no header line)", line=1)
    return lines[0], lines[1:]


def check_field_counts(path: Path, rows: list[str], n_fields: int) -> None:
    """Every data row must have ``n_fields`` comma-separated fields."""
    counts = np.fromiter((r.count(",") for r in rows), dtype=np.int64, count=len(rows)) + 1
    wrong = np.flatnonzero(counts != n_fields)
    if wrong.size:
        i = int(wrong[0])
        raise DataError(path, f"expected {n_fields} comma-separated values, found {counts[i]}", line=i + 2)


def parse_numbers(path: Path, rows: list[str], names: Sequence[str]) -> np.ndarray:
    """Comma-separated numeric rows -> float array (n_rows, len(names)); wrong counts or text are errors.

    Parses in one C call (Aff-Wild2 has millions of frames); the bad cell is searched only on failure.
    """
    n = len(names)
    check_field_counts(path, rows, n)
    cells = ",".join(rows).split(",") if rows else []
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or np.isnan(values).any():
        i = next(i for i, cell in enumerate(cells) if not _is_number(cell))
        raise DataError(path, f"{names[i % n]}: {cells[i]!r} is not a number "
                              "(missing values are written as -1, or -5 for valence/arousal)", line=i // n + 2)
    return values.reshape(len(rows), n)


def _is_number(cell: str) -> bool:
    try:
        return not np.isnan(float(cell))
    except ValueError:
        return False


def to_float(cells: pd.Series, path: Path, column: str) -> np.ndarray:
    """CSV text cells -> floats, '' -> NaN (missing); anything else unparsable (even 'nan') is an error."""
    empty = (cells == "").to_numpy()
    values = pd.to_numeric(cells.mask(empty), errors="coerce").to_numpy(dtype=np.float64)
    require(~np.isnan(values) | empty, path, column, cells, "a number (leave the cell empty when missing)")
    return values


def to_int(cells: pd.Series, path: Path, column: str, *, missing: int | None = None) -> np.ndarray:
    """CSV text cells -> int64; '' -> ``missing`` where given, else an error."""
    values = to_float(cells, path, column)
    if missing is not None:
        values = np.where(np.isnan(values), missing, values)
    require(np.isfinite(values) & (values == np.round(values)), path, column, cells, "a whole number")
    return values.astype(np.int64)


def require(ok: np.ndarray, path: Path, column: str, cells: pd.Series, expected: str) -> None:
    """Raise for the first row where ``ok`` is False, quoting its cell; ``cells`` is indexed by line."""
    bad = np.flatnonzero(~np.asarray(ok, dtype=bool))
    if bad.size:
        i = int(bad[0])
        raise DataError(path, f"{column}: {cells.iloc[i]!r} is not {expected}", line=int(cells.index[i]))


def resolve_paths(folder: Path, relative: pd.Series) -> pd.Series:
    """Paths relative to ``folder`` (or already absolute) -> normalised absolute paths."""
    base = os.path.abspath(folder)
    return pd.Series([os.path.normpath(os.path.join(base, p)) for p in relative], index=relative.index, dtype="str")


def existing(paths: pd.Series) -> np.ndarray:
    """Which (absolute) paths exist, listing each folder once: fast for Aff-Wild2's millions of frames."""
    parts = paths.str.rpartition(os.sep)
    folders, names = parts[0], parts[2]
    found = np.zeros(len(paths), dtype=bool)
    for folder, rows in folders.groupby(folders, sort=False).indices.items():
        try:
            present = set(os.listdir(folder or os.sep))
        except OSError:
            continue
        found[rows] = names.iloc[rows].isin(present).to_numpy()
    return found


def drop_rows(frame: pd.DataFrame, drop: np.ndarray, reason: str, skipped: dict[str, int]) -> pd.DataFrame:
    """Remove the rows marked in ``drop``, counting them under ``reason``."""
    add_skipped(skipped, reason, int(np.count_nonzero(drop)))
    return frame[~np.asarray(drop, dtype=bool)]


def drop_missing_images(frame: pd.DataFrame, skipped: dict[str, int]) -> pd.DataFrame:
    """Rows whose image file does not exist are dropped and counted."""
    return drop_rows(frame, ~existing(frame["path"]), IMAGE_MISSING, skipped)


def typed_extras(raw: pd.DataFrame) -> pd.DataFrame:
    """Extra text columns -> numbers where every non-empty cell is one; identifiers stay text."""
    out = {}
    for col in raw.columns:
        cells = raw[col]
        if col in TEXT_COLUMNS:
            out[col] = cells
            continue
        try:
            out[col] = pd.to_numeric(cells.mask(cells == ""))
        except ValueError:
            out[col] = cells
    return pd.DataFrame(out, index=raw.index)
