"""A folder of images without labels: frames or photos for pseudo labels (streaming §3.4).

Every image under the folder (recursively) becomes a row with all labels missing; an image in a
subfolder belongs to the video named by that subfolder, and a numeric file name is its frame
number (Aff-Wild2's ``cropped_aligned/<video>/<n:05d>.jpg``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from affectlab.data._parse import IMAGE_SUFFIXES
from affectlab.data.table import SampleTable, build_table
from affectlab.errors import DataError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema


def holds_images(folder: Path) -> bool:
    """Whether ``folder`` has an image file anywhere below it."""
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*") if p.is_file())


def read_images(folder: str | os.PathLike[str], *, schema: LabelSchema = DEFAULT_SCHEMA) -> SampleTable:
    """Every image below ``folder`` as an unlabelled row (``source`` images)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(root, "holds no image files")
    video = [str(p.parent.relative_to(root)) if p.parent != root else "" for p in files]
    frame = [int(p.stem) if p.stem.isdigit() and int(p.stem) >= 1 and v else -1 for p, v in zip(files, video)]
    table = pd.DataFrame({"path": [str(p.resolve()) for p in files], "source": "images", "video": video,
                          "frame": frame, "expr": -1})
    return build_table(table, schema)
