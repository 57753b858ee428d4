"""A recipe's sources as training and validation tables, and its sampler groups as pools.

Every source is read with :func:`affectlab.data.read_source` (once per path, images and split),
narrowed to a subset of folds, downsampled by frame and stripped of the labels it is not used for.
The training sources are stacked into one table (one dataset for all), and each row remembers the
recipe name of its source, which is how sampler groups find their rows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.data import SampleTable, concat_tables, read_source
from affectlab.data.dataset import CONTEXT_PATH, FRAMING_COLUMNS
from affectlab.data.sampling import GroupPool, assign_folds, downsample_frames
from affectlab.data.table import add_skipped, soft_columns
from affectlab.errors import AffectlabError, DataError, not_there
from affectlab.labels import LabelSchema
from affectlab.log import logger
from affectlab.train.config import TASKS, Folds, Group, Source

TableCache = dict[tuple, SampleTable]


@dataclass
class SourceTables:
    """Stacked rows of several sources: ``samples`` and each row's recipe source name."""

    samples: pd.DataFrame
    names: np.ndarray
    skipped: dict[str, int]


def read_one(source: Source, schema: LabelSchema, cache: TableCache) -> SampleTable:
    """One source as the recipe uses it: subset, downsampling and task selection applied."""
    table = _table(source.path, source.images, source.split, schema, cache)
    df = table.samples
    skipped = dict(table.skipped)
    if source.subset is not None:
        sub = source.subset
        like = None
        if sub.like is not None:
            like = group_keys(_table(sub.like, None, None, schema, cache).samples, sub.by, sub.like)
        df = df[np.isin(assign_folds(group_keys(df, sub.by, source.path), sub.folds, sub.seed, like), sub.keep)]
    if source.downsample > 1:
        keep = downsample_frames(df["video"].to_numpy(), df["frame"].to_numpy(), source.downsample)
        add_skipped(skipped, f"downsampled by {source.downsample}", int((~keep).sum()))
        df = df[keep]
    df = without_tasks(df, schema, [t for t in TASKS if t not in source.tasks])
    if source.va_range is not None:
        df = within_va_range(df, schema, *source.va_range)
    if source.framing is not None:
        df = df.assign(**dict(zip(FRAMING_COLUMNS, np.asarray(source.framing, dtype=float).reshape(-1))))
    if source.context_images is not None:
        df = df.assign(**{CONTEXT_PATH: context_paths(df["path"], source)})
    return SampleTable(df.reset_index(drop=True), skipped)


def context_paths(paths: pd.Series, source: Source) -> list[str | None]:
    """Each frame's image with context (``source.context_images``, e.g. Aff-Wild2's ``cropped``) at its
    path relative to ``source.images``; None where there is none, said in one warning per source."""
    if source.images is None:
        raise AffectlabError(f"{source.path}: context_images mirrors images: give images too")
    root, context = Path(source.images).resolve(), Path(source.context_images)
    out: list[str | None] = []
    for path in paths:
        try:
            other = context / Path(path).resolve().relative_to(root)
        except ValueError:
            other = None
        out.append(str(other) if other is not None and other.is_file() else None)
    missing = sum(p is None for p in out)
    if missing:
        logger.warning(f"{context}: {missing} of {len(out)} frames have no image with context there; "
                       f"their context view is cut from the crop by margin")
    return out


def _table(path: str, images: str | None, split: str | None, schema: LabelSchema, cache: TableCache) -> SampleTable:
    """A dataset read once per recipe however many sources (or ``like`` subsets) use it."""
    key = (path, images, split)
    if not os.path.exists(path):
        raise DataError(path, f"{not_there(path)}; a recipe's source paths are read under its data_root (relative: "
                              "from the recipe's folder): give --data-root DIR where your copy of the data is")
    if key not in cache:
        cache[key] = read_source(path, images=images, split=split, schema=schema)
    return cache[key]


def group_keys(df: pd.DataFrame, by: str, where: str) -> pd.Series:
    """The grouping key of each row; a still image (empty video) is its own group."""
    if by not in df.columns:
        raise AffectlabError(f"{where}: cannot split by {by!r}: no such column")
    keys = df[by].astype(str)
    if by == "video":
        keys = keys.where(keys != "", df["path"]).str.replace(TWO_PERSON_SUFFIX, "", regex=True)
    return keys


#: Aff-Wild2 names the two people of one video ``<name>_left`` and ``<name>_right``: one source video.
TWO_PERSON_SUFFIX = r"_(left|right)$"


def fold_of_rows(tables: SourceTables, folds: Folds) -> np.ndarray:
    """Each training row's k-fold (streaming §4.3.1), -1 for rows of sources the recipe does not split.

    Folds keep ``by`` keys together (a video, both people of a two-person video, a subject), and
    only the sources ``folds.sources`` names are split: external data trains every member."""
    fold = np.full(len(tables.samples), -1, dtype=np.int64)
    split = np.isin(tables.names, folds.sources)
    if split.any():
        keys = group_keys(tables.samples[split], folds.by, "training data")
        fold[split] = assign_folds(keys, folds.k, folds.seed)
    return fold


def without_tasks(samples: pd.DataFrame, schema: LabelSchema, tasks: list[str]) -> pd.DataFrame:
    """``samples`` with the labels of ``tasks`` marked missing."""
    if not tasks:
        return samples
    out = samples.copy()
    if "au" in tasks:
        out[list(schema.au_names)] = np.nan
    if "expr" in tasks:
        out["expr"] = -1
        out[[c for c in soft_columns(schema) if c in out]] = np.nan
    if "va" in tasks:
        out[list(schema.va_names)] = np.nan
    return out


def within_va_range(samples: pd.DataFrame, schema: LabelSchema, low: float, high: float) -> pd.DataFrame:
    """``samples`` with VA labels kept only where valence and arousal both lie in [low, high]."""
    va = samples[list(schema.va_names)]
    outside = ~((va >= low) & (va <= high)).all(axis=1)
    out = samples.copy()
    out.loc[outside, list(schema.va_names)] = np.nan
    return out


def read_sources(sources: dict[str, Source], schema: LabelSchema, cache: TableCache) -> SourceTables:
    """All ``sources`` stacked into one table."""
    tables = {name: read_one(src, schema, cache) for name, src in sources.items()}
    empty = [n for n, t in tables.items() if len(t) == 0]
    if empty:
        raise AffectlabError(f"source {empty[0]!r} ({sources[empty[0]].path}) has no rows left to train on")
    stacked = concat_tables(tables.values(), schema)
    names = np.concatenate([np.full(len(t), n, dtype=object) for n, t in tables.items()])
    return SourceTables(stacked.samples, names, stacked.skipped)


def labelled(samples: pd.DataFrame, schema: LabelSchema, task: str) -> np.ndarray:
    """Rows with at least one label of ``task`` (an expression counts as a class id or a vote distribution)."""
    if task == "au":
        return samples[list(schema.au_names)].notna().any(axis=1).to_numpy()
    if task == "va":
        return samples[list(schema.va_names)].notna().any(axis=1).to_numpy()
    soft = [c for c in soft_columns(schema) if c in samples]
    has_soft = samples[soft].notna().all(axis=1).to_numpy() if soft else False
    return (samples["expr"].to_numpy() >= 0) | has_soft


def expression_classes(samples: pd.DataFrame, schema: LabelSchema) -> np.ndarray:
    """The class a row counts as when balancing: its label, else the top of its vote distribution."""
    expr = samples["expr"].to_numpy()
    soft = [c for c in soft_columns(schema) if c in samples]
    if not soft:
        return expr
    votes = np.nan_to_num(samples[soft].to_numpy(dtype=np.float64), nan=-1.0)
    return np.where(expr >= 0, expr, votes.argmax(axis=1))


def group_pools(groups: dict[str, Group], tables: SourceTables, schema: LabelSchema) -> list[GroupPool]:
    """One pool per sampler group: its rows and the labels it balances on."""
    samples = tables.samples
    pools = []
    for name, group in groups.items():
        mask = np.isin(tables.names, group.sources)
        for task in group.require:
            mask &= labelled(samples, schema, task)
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            raise AffectlabError(f"sampler group {name!r}: no row of {', '.join(group.sources)} is labelled for "
                                 f"{' and '.join(group.require) or 'anything'}")
        sub = samples.iloc[rows]
        labels = {"none": None, "ml-ros": lambda: sub[list(schema.au_names)].to_numpy(dtype=np.float64),
                  "classes": lambda: expression_classes(sub, schema),
                  "va-bins": lambda: sub[list(schema.va_names)].to_numpy(dtype=np.float64)}[group.balance]
        pools.append(GroupPool(name, rows, group.quota, group.balance, labels() if labels else None,
                               group.ml_ros_percentage))
    return pools


def group_tasks(groups: dict[str, Group]) -> np.ndarray:
    """(G, 3) bool: which of au, expr, va each group supervises."""
    return np.array([[t in (g.tasks if g.tasks is not None else TASKS) for t in TASKS] for g in groups.values()])
