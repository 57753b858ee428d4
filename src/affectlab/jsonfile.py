"""JSON files every reader accepts, written so that a crash never leaves half a file.

An undefined metric (an F1 without positives, a CCC of constant values) is NaN in Python and
``null`` in the file; numpy numbers become plain numbers.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file's content; a missing or malformed file is a one-line DataError naming it."""
    from affectlab.errors import DataError

    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not a JSON file: {e}") from None


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN as None and numpy scalars as Python numbers, recursively."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Write through ``<path>.partial`` and rename it into place; a path that cannot be written is a
    DataError naming it (not the hidden ``.partial``)."""
    from affectlab.errors import DataError

    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder; give a file name to write")
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise DataError(path, f"cannot write ({e.strerror or e})") from None


def check_writable(path: str | os.PathLike[str]) -> Path:
    """``path`` can be written (not a folder; its folder, created if missing, takes a new file): checked
    before minutes of work whose result goes there. A DataError naming it otherwise."""
    from affectlab.errors import DataError

    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a folder; give a file name to write")
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise DataError(path, f"cannot write ({e.strerror or e})") from None
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_atomic(path, lambda p: p.write_text(json.dumps(json_ready(obj), indent=2, allow_nan=False) + "\n"))
