"""The sample table: the one shape every reader returns and every dataset consumes.

One row per image. ``path``, ``source``, ``video`` (``""`` for stills), ``frame`` (1-based, -1 for
stills), one float column per schema AU (0/1, NaN = missing), ``expr`` (ABAW id, -1 = missing),
optional ``expr_soft_<Name>`` distributions, ``valence`` and ``arousal`` (NaN = missing), then any
extra columns the source carries. Missing labels are masked, never zero-filled, so a row labelled
for one task only still trains the other heads' masks correctly.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from affectlab.errors import DataError
from affectlab.labels import DEFAULT_SCHEMA, EXPR_NAMES, LabelSchema

SOFT_PREFIX = "expr_soft_"
SOFT_COLUMNS: tuple[str, ...] = tuple(SOFT_PREFIX + n for n in EXPR_NAMES)
EXPR_NOT_IN_SCHEMA = "expression not in schema (label dropped)"
SOFT_NOT_IN_SCHEMA = "soft expression target not in schema (label dropped)"
#: An AU column name (``AU1``, ``AU01``); readers canonicalise it with :func:`~affectlab.labels.canonical_au`.
AU_COLUMN = re.compile(r"^AU\d+$", re.IGNORECASE)
_SOFT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SampleTable:
    """A reader's result: the samples, and what it dropped and why (reason -> count)."""

    samples: pd.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)


def soft_columns(schema: LabelSchema = DEFAULT_SCHEMA) -> list[str]:
    """The ``expr_soft_<Name>`` columns a table under ``schema`` may hold."""
    return [SOFT_PREFIX + n for n in schema.expr_names]


def label_columns(schema: LabelSchema = DEFAULT_SCHEMA) -> list[str]:
    """AU, expression and VA columns, in table order (soft columns excluded: they are optional)."""
    return [*schema.au_names, "expr", *schema.va_names]


def add_skipped(skipped: dict[str, int], reason: str, count: int) -> None:
    """Count ``count`` dropped rows (or labels) under ``reason``; zero counts are not recorded."""
    if count:
        skipped[reason] = skipped.get(reason, 0) + int(count)


def build_table(frame: pd.DataFrame, schema: LabelSchema = DEFAULT_SCHEMA,
                skipped: Mapping[str, int] | None = None) -> SampleTable:
    """Bring a reader's frame (ABAW expression ids, any AUs) to the contract under ``schema``.

    Fills absent label columns as missing, drops AU columns the schema does not know, masks
    expressions outside the schema (counted, the row stays), restricts soft targets to the schema's
    classes and renormalises them, fixes dtypes and column order, then validates.
    """
    counts = dict(skipped or {})
    df = frame.drop(columns=[c for c in frame.columns if AU_COLUMN.match(c) and c not in schema.au_names])
    df = df.assign(**_defaults(df, schema))
    expr = df["expr"].fillna(-1).astype("int64")
    outside = expr >= schema.n_expr
    add_skipped(counts, EXPR_NOT_IN_SCHEMA, outside.sum())
    df["expr"] = expr.mask(outside, -1)
    df, lost = _restrict_soft(df, schema)
    add_skipped(counts, SOFT_NOT_IN_SCHEMA, lost)
    df = df.astype({"path": "str", "source": "str", "video": "str", "frame": "int64",
                    **{c: "float64" for c in [*schema.au_names, *schema.va_names, *_soft_in(df)]}})
    core = ["path", "source", "video", "frame", *schema.au_names, "expr", *_soft_in(df), *schema.va_names]
    df = df[core + [c for c in df.columns if c not in core]].reset_index(drop=True)
    validate_table(df, schema)
    return SampleTable(df, counts)


def validate_table(samples: pd.DataFrame, schema: LabelSchema = DEFAULT_SCHEMA) -> None:
    """Raise ValueError where ``samples`` breaks the contract (a reader bug, not a user error)."""
    missing = [c for c in ["path", "source", "video", "frame", *label_columns(schema)] if c not in samples]
    if missing:
        raise ValueError(f"sample table lacks columns {missing}")
    for col in ("path", "source", "video"):
        if not pd.api.types.is_string_dtype(samples[col]) or samples[col].isna().any():
            raise ValueError(f"column {col!r} must hold strings")
    for col in ("frame", "expr"):
        if samples[col].dtype != np.int64:
            raise ValueError(f"column {col!r} must be int64, is {samples[col].dtype}")
    if (samples["path"] == "").any():
        raise ValueError("empty path")
    frame = samples["frame"]
    if not ((frame >= 1) | (frame == -1)).all():
        raise ValueError("frame must be >= 1, or -1 for still images")
    if not samples["expr"].between(-1, schema.n_expr - 1).all():
        raise ValueError(f"expr outside -1..{schema.n_expr - 1}")
    _check_range(samples, list(schema.au_names), 0.0, 1.0)
    _check_range(samples, list(schema.va_names), -1.0, 1.0)
    soft = _soft_in(samples)
    if soft:
        if soft != soft_columns(schema):
            raise ValueError(f"soft columns {soft} do not match the schema's {soft_columns(schema)}")
        _check_range(samples, soft, 0.0, 1.0)
        values = samples[soft].to_numpy()
        present = ~np.isnan(values)
        if not (present.all(axis=1) | ~present.any(axis=1)).all():
            raise ValueError("a soft target is partly missing")
        sums = values[present.all(axis=1)].sum(axis=1)
        if not np.allclose(sums, 1.0, atol=_SOFT_TOLERANCE):
            raise ValueError("soft targets must sum to 1")


def concat_tables(tables: Iterable[SampleTable], schema: LabelSchema = DEFAULT_SCHEMA) -> SampleTable:
    """Stack tables from several sources (multi-database training); skipped counts add up."""
    tables = list(tables)
    if not tables:
        raise ValueError("no tables to concatenate")
    skipped: dict[str, int] = {}
    for t in tables:
        for reason, n in t.skipped.items():
            add_skipped(skipped, reason, n)
    return build_table(pd.concat([t.samples for t in tables], ignore_index=True), schema, skipped)


def select_split(frame: pd.DataFrame, split: str | None, where: str | os.PathLike[str]) -> pd.DataFrame:
    """One split's rows of a frame with a ``split`` column; asking for an absent split names ``where``."""
    if split is None:
        return frame
    if "split" not in frame:
        raise DataError(where, f"has no 'split' column, so split {split!r} cannot be selected")
    present = sorted(str(s) for s in frame["split"].dropna().unique())
    if split not in present:
        raise DataError(where, f"no split {split!r}; it has {', '.join(map(repr, present)) or 'none'}")
    return frame[frame["split"] == split]


def _defaults(df: pd.DataFrame, schema: LabelSchema) -> dict[str, object]:
    """Contract columns a source did not provide, filled as missing (and gaps in video/frame)."""
    out: dict[str, object] = {c: np.nan for c in [*schema.au_names, *schema.va_names] if c not in df}
    out["video"] = df["video"].fillna("") if "video" in df else ""
    out["frame"] = df["frame"].fillna(-1) if "frame" in df else -1
    if "expr" not in df:
        out["expr"] = -1
    return out


def _soft_in(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(SOFT_PREFIX)]


def _restrict_soft(df: pd.DataFrame, schema: LabelSchema) -> tuple[pd.DataFrame, int]:
    """Keep the schema's soft columns, renormalised; returns the frame and how many targets lost all mass."""
    soft = _soft_in(df)
    if not soft:
        return df, 0
    unknown = [c for c in soft if c not in SOFT_COLUMNS]
    if unknown:
        raise ValueError(f"soft columns {unknown} name no ABAW expression")
    keep = soft_columns(schema)
    present = df[soft].notna().any(axis=1).to_numpy()
    values = np.nan_to_num(df.reindex(columns=keep).to_numpy(dtype=np.float64), nan=0.0)
    total = values.sum(axis=1, keepdims=True)
    ok = present[:, None] & (total > 0)
    normalised = np.divide(values, total, out=np.full_like(values, np.nan), where=ok)
    lost = int((present & ~ok[:, 0]).sum())
    return df.drop(columns=soft).assign(**{c: normalised[:, i] for i, c in enumerate(keep)}), lost


def _check_range(samples: pd.DataFrame, columns: list[str], low: float, high: float) -> None:
    values = samples[columns].to_numpy(dtype=np.float64)
    bad = ~np.isnan(values) & ((values < low) | (values > high))
    if bad.any():
        col = columns[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise ValueError(f"column {col!r} outside [{low}, {high}]")
