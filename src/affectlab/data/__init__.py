"""Readers: every supported source becomes a :class:`SampleTable` (one row per image, NaN / -1 = missing).

:func:`read_source` recognises a source from its layout or CSV header, so the CLI and configs can take
any path; the specific readers are there for code that knows what it reads.
"""
from __future__ import annotations

import os
from pathlib import Path

from affectlab.data.abaw import MTL_HEADER, TASK_FOLDERS, read_abaw, read_abaw_mtl
from affectlab.data.images import holds_images, read_images
from affectlab.data.manifest import read_manifest
from affectlab.data.public import FERPLUS_VOTES, read_affectnet, read_ckplus, read_ferplus
from affectlab.data.summary import format_summary, summarize
from affectlab.data.table import SampleTable, build_table, concat_tables, validate_table
from affectlab.errors import DataError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema

__all__ = [
    "SampleTable", "build_table", "validate_table", "concat_tables",
    "read_abaw", "read_abaw_mtl", "read_manifest", "read_ferplus", "read_affectnet", "read_ckplus", "read_images",
    "read_source", "source_kind", "summarize", "format_summary",
]

EXPECTED = ("an ABAW annotation folder (with " + ", ".join(f for fs in TASK_FOLDERS.values() for f in fs) + "), "
            "an ABAW multi-task file (header image,valence,arousal,expression,aus), a FER+ / AffectNet / CK+ "
            "labels.csv, a folder holding labels.csv, a CSV manifest with a 'path' column, or a folder of "
            "unlabelled images")


def source_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` is: ``abaw``, ``abaw-mtl``, ``ferplus``, ``affectnet``, ``ckplus``, ``manifest`` or
    ``images`` (a folder of unlabelled images).

    A folder holding ``labels.csv`` is recognised by that file. Anything else is a DataError that
    says what was expected.
    """
    path = Path(path)
    if path.is_dir():
        if any((path / f).is_dir() for fs in TASK_FOLDERS.values() for f in fs):
            return "abaw"
        if (path / "labels.csv").is_file():
            return source_kind(path / "labels.csv")
        if holds_images(path):
            return "images"
        raise DataError(path, f"not a recognised source folder; expected {EXPECTED}")
    if not path.is_file():
        raise DataError(path, "no such file or folder")
    columns = _header(path)
    if tuple(c.lower() for c in columns[:4]) == MTL_HEADER[:4]:
        return "abaw-mtl"
    if set(FERPLUS_VOTES) <= set(columns):
        return "ferplus"
    if {"expression_idx", "lnd_x0"} <= set(columns):
        return "affectnet"
    if {"subject", "au_source", "expression"} <= set(columns):  # a saved sample table has `expr` instead
        return "ckplus"
    if "path" in columns:
        return "manifest"
    raise DataError(path, f"not a recognised source; expected {EXPECTED}", line=1)


def read_source(path: str | os.PathLike[str], *, images: str | os.PathLike[str] | None = None,
                split: str | None = None, schema: LabelSchema = DEFAULT_SCHEMA) -> SampleTable:
    """Read any supported source (see :func:`source_kind`). ``images`` is the frame root of ABAW sources."""
    kind = source_kind(path)
    path = Path(path)
    if kind == "images":
        if images is not None or split is not None:
            raise DataError(path, "is a folder of unlabelled images; leave images and split out")
        return read_images(path, schema=schema)
    if path.is_dir() and kind != "abaw":
        path = path / "labels.csv"
    if images is not None and kind not in ("abaw", "abaw-mtl"):
        raise DataError(path, f"is a {kind} source whose image paths are relative to its folder; leave images out")
    if split is not None and kind not in ("abaw", "ferplus", "manifest"):
        raise DataError(path, f"is a {kind} source without splits; leave split out")
    if kind == "abaw":
        return read_abaw(path, images, split=split, schema=schema)
    if kind == "abaw-mtl":
        return read_abaw_mtl(path, images, schema=schema)
    if kind == "ferplus":
        return read_ferplus(path, split=split, schema=schema)
    if kind == "manifest":
        return read_manifest(path, split=split, schema=schema)
    return {"affectnet": read_affectnet, "ckplus": read_ckplus}[kind](path, schema=schema)


def _header(path: Path) -> list[str]:
    """The first line's comma-separated names."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read ({err})") from None
    return [c.strip().strip('"') for c in first.split(",")]
