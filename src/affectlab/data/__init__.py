"""Readers: every supported source becomes a :class:`SampleTable` (one row per image, NaN / -1 = missing).

:func:`read_source` recognises a source from its layout or CSV header, so the CLI and configs can take
any path; the specific readers are there for code that knows what it reads.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from affectlab.data.abaw import MTL_HEADER, TASK_FOLDERS, read_abaw, read_abaw_mtl
from affectlab.data.images import holds_images, read_images
from affectlab.data.manifest import read_manifest
from affectlab.data.public import (FERPLUS_VOTES, LFW_EXPRESSIONS_COLUMNS, read_affectnet, read_ckplus, read_ferplus,
                                   read_lfw_expressions)
from affectlab.data.summary import format_summary, summarize
from affectlab.data.table import SampleTable, build_table, concat_tables, validate_table
from affectlab.errors import DataError, not_there
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema

__all__ = [
    "SampleTable", "build_table", "validate_table", "concat_tables",
    "read_abaw", "read_abaw_mtl", "read_manifest", "read_ferplus", "read_affectnet", "read_ckplus",
    "read_lfw_expressions", "read_images", "read_labelled", "read_source", "source_kind", "summarize", "format_summary",
]

@dataclass(frozen=True)
class Reader:
    """How one kind of source is recognised and read.

    ``folder``: recognises a folder (``path``) instead of a file's header (``columns``); ``read``
    takes the path and the keyword arguments it ``accepts`` (images, split) plus the schema;
    ``checks_images``: it drops rows whose image is missing unless told ``check_images=False``.
    A folder that is not itself a source may hold ``labels.csv``, read as the file it is.
    """

    kind: str
    describe: str
    recognises: Callable[[Path, list[str]], bool]
    read: Callable[..., SampleTable]
    accepts: tuple[str, ...] = ()
    folder: bool = False
    checks_images: bool = False


def _is_abaw(path: Path, columns: list[str]) -> bool:
    return any((path / f).is_dir() for fs in TASK_FOLDERS.values() for f in fs)


#: Every supported source, in the order they are tried (a manifest last among files: it only needs `path`).
READERS: tuple[Reader, ...] = (
    Reader("abaw", "an ABAW annotation folder (with " + ", ".join(f for fs in TASK_FOLDERS.values() for f in fs) + ")",
           _is_abaw, lambda p, images=None, split=None, **kw: read_abaw(p, images, split=split, **kw),
           accepts=("images", "split"), folder=True, checks_images=True),
    Reader("abaw-mtl", "an ABAW multi-task file (header image,valence,arousal,expression,aus)",
           lambda p, c: tuple(x.lower() for x in c[:4]) == MTL_HEADER[:4],
           lambda p, images=None, **kw: read_abaw_mtl(p, images, **kw), accepts=("images",), checks_images=True),
    Reader("ferplus", "a FER+ labels.csv", lambda p, c: set(FERPLUS_VOTES) <= set(c), read_ferplus, accepts=("split",),
           checks_images=True),
    Reader("affectnet", "an AffectNet labels.csv", lambda p, c: {"expression_idx", "lnd_x0"} <= set(c), read_affectnet,
           checks_images=True),
    # a saved sample table has `expr` instead of CK+'s `expression`
    Reader("ckplus", "a CK+ labels.csv", lambda p, c: {"subject", "au_source", "expression"} <= set(c), read_ckplus,
           checks_images=True),
    Reader("lfw_expressions", "an lfw_expressions labels.csv (header " + ",".join(LFW_EXPRESSIONS_COLUMNS) + ")",
           lambda p, c: set(LFW_EXPRESSIONS_COLUMNS) <= set(c), read_lfw_expressions, accepts=("split",),
           checks_images=True),
    Reader("manifest", "a CSV manifest with a 'path' column", lambda p, c: "path" in c, read_manifest,
           accepts=("split",), checks_images=True),
    Reader("images", "a folder of unlabelled images", lambda p, c: holds_images(p), read_images, folder=True),
)
EXPECTED = ", ".join(r.describe for r in READERS) + ", or a folder holding labels.csv"


def _reader(path: Path) -> tuple[Reader, Path]:
    """The reader of ``path`` and the file (or folder) it reads."""
    if path.is_dir():
        if (path / "labels.csv").is_file() and not _is_abaw(path, []):
            return _reader(path / "labels.csv")
        for reader in (r for r in READERS if r.folder):
            if reader.recognises(path, []):
                return reader, path
        raise DataError(path, f"not a recognised source folder; expected {EXPECTED}")
    if not path.is_file():
        raise DataError(path, not_there(path))
    columns = _header(path)
    for reader in (r for r in READERS if not r.folder):
        if reader.recognises(path, columns):
            return reader, path
    separator = _other_separator(columns)
    if separator:
        raise DataError(path, f"its header is separated by {separator}; labels files are comma-separated "
                              "(save it as CSV with ',' between cells)", line=1)
    raise DataError(path, f"not a recognised source; expected {EXPECTED}", line=1)


def _other_separator(columns: list[str]) -> str | None:
    """The separator a one-name header line uses instead of commas (';' as spreadsheets in many locales
    write CSV, or a tab), if any."""
    if len(columns) != 1:
        return None
    return next((name for sep, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")) if sep in columns[0]), None)


def source_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` is: the ``kind`` of the first of :data:`READERS` that recognises it (a folder
    holding ``labels.csv`` by that file). Anything else is a DataError that says what was expected."""
    return _reader(Path(path))[0].kind


def read_source(path: str | os.PathLike[str], *, images: str | os.PathLike[str] | None = None,
                split: str | None = None, schema: LabelSchema = DEFAULT_SCHEMA, check_images: bool = True) -> SampleTable:
    """Read any supported source (see :func:`source_kind`). ``images`` is the frame root of ABAW sources.
    ``check_images=False`` keeps rows whose image file is absent (scoring pairs rows by path only); ABAW
    sources look for their frames only where ``images`` is given."""
    reader, target = _reader(Path(path))
    given = {"images": images, "split": split}
    for name, value in given.items():
        if value is not None and name not in reader.accepts:
            why = {"images": "whose image paths are relative to its folder", "split": "without splits"}[name]
            raise DataError(target, f"is a {reader.kind} source {why}; leave {name} out")
    options = {k: v for k, v in given.items() if k in reader.accepts}
    if reader.checks_images and not check_images:
        options["check_images"] = False
    return reader.read(target, **options, schema=schema)



def read_labelled(path: str | os.PathLike[str], *, images: str | os.PathLike[str] | None = None,
                  split: str | None = None, schema: LabelSchema = DEFAULT_SCHEMA,
                  check_images: bool = True) -> SampleTable:
    """:func:`read_source` for a command that needs labelled rows: a source without a usable row is
    one DataError saying why (its skipped rows by reason), not a failure deep inside evaluation."""
    table = read_source(path, images=images, split=split, schema=schema, check_images=check_images)
    if not len(table):
        why = ", ".join(f"{n} {reason}" for reason, n in table.skipped.items()) or "no rows"
        raise DataError(path, f"no labelled image to use ({why})")
    return table

def _header(path: Path) -> list[str]:
    """The first line's comma-separated names."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read ({err})") from None
    return [c.strip().strip('"') for c in first.split(",")]
