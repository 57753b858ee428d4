"""Results tables as a Parquet dataset: ``OUT/parquet/<name>.parquet``, one file per output table.

The files hold the same columns as the CSV tables (in the run's ``--format``) and the same values (the
table as written, read back), with types a reader need not guess: whole numbers as nullable int64 (a
frame without a face leaves its AU decisions empty, not 0.0), ``input`` and ``expression`` as strings, the
rest float64. Every file of a run has one schema, even a video without any face (whose prediction columns
are all empty), so pandas, polars, DuckDB or Spark read the folder as one table.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from affectlab.analyze.results import finalize
from affectlab.analyze.formats import to_format
from affectlab.errors import AffectlabError
from affectlab.faces.geometry import GEOMETRY_COLUMNS, MESH_COLUMNS
from affectlab.labels import LabelSchema

PARQUET_FOLDER = "parquet"


def parquet_path(out: str | os.PathLike[str], name: str) -> Path:
    return Path(out) / PARQUET_FOLDER / f"{name}.parquet"


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise AffectlabError("--parquet needs pyarrow, part of an optional extra: pip install 'affectlab[ray]'") from None
    return pyarrow


def arrow_table(table: pd.DataFrame, fmt: str, schema: LabelSchema):
    """A native results table (as read back from its CSV) as a ``pyarrow.Table`` in ``fmt``'s columns."""
    pa = _pyarrow()

    columns = set(table.columns)
    # Every geometry column, not just one: py-feat's and OpenFace's tables carry their own landmark (and
    # OpenFace's pose) columns empty without --landmarks, which a face-less video's read-back keeps, while
    # the rest (e.g. gaze_angle_x in a py-feat table) are written only with --landmarks.
    geometry = set(GEOMETRY_COLUMNS) <= columns
    typed = finalize(table, schema, geometry=geometry, mesh=MESH_COLUMNS[0] in columns)
    out = to_format(typed, fmt)
    kinds = {name: pa.int64() if isinstance(dtype, pd.Int64Dtype) or pd.api.types.is_integer_dtype(dtype)
             else pa.float64() if pd.api.types.is_float_dtype(dtype) else pa.string()
             for name, dtype in out.dtypes.items()}
    return pa.Table.from_pandas(out, schema=pa.schema(list(kinds.items())), preserve_index=False)


def write_parquet(table: pd.DataFrame, path: str | os.PathLike[str], fmt: str, schema: LabelSchema) -> Path:
    """Write a native results table as one Parquet file, through a hidden temporary name (readers skip
    names starting with a dot), so a reader of the folder never sees half a file."""
    pq = _pyarrow().parquet
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(arrow_table(table, fmt, schema), partial)
    os.replace(partial, path)
    return path
