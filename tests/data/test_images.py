"""A folder of unlabelled images as a source (streaming §3.4's frames without labels)."""
from __future__ import annotations

import pytest

from affectlab.data import read_source, source_kind
from affectlab.errors import DataError


def test_a_frame_folder_reads_as_unlabelled_rows(tmp_path, image):
    for n in (1, 2):
        image(tmp_path / "frames" / "v1" / f"{n:05d}.jpg")
    image(tmp_path / "frames" / "still.png")
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    assert source_kind(tmp_path / "frames") == "images"
    df = read_source(tmp_path / "frames").samples
    assert sorted(zip(df["video"], df["frame"])) == [("", -1), ("v1", 1), ("v1", 2)]
    assert (df["expr"] == -1).all() and df["AU1"].isna().all() and df["valence"].isna().all()


def test_a_folder_without_images_is_not_a_source(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a recognised source folder"):
        source_kind(tmp_path / "empty")
