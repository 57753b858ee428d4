"""affectlab.analyze.overlay: faces drawn onto a re-encoded video, frame for frame."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.overlay import _Face, _overlap, draw_faces, write_overlay_video
from affectlab.analyze.results import finalize, prediction_frame
from affectlab.labels import DEFAULT_SCHEMA

BOX = (20, 12, 36, 40)  # x, y, width, height of face 0
SECOND = (100, 40, 30, 30)  # face 1, frames 4-6 only
UNCHANGED = 3  # mean |difference| of a re-encoded frame without drawing (colour conversion rounding)


def write_video(path: Path, n: int = 20, size: tuple[int, int] = (160, 96), fps: int = 10) -> Path:
    """A small video of flat gray frames (level 60 + 4·i), MPEG-4 so it works for odd sizes too."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n):
            image = np.full((size[1], size[0], 3), 60 + 4 * i, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def results(video: Path, faces: dict[int, list[tuple[int, tuple[int, int, int, int]]]], n: int) -> pd.DataFrame:
    """A results table for frames 1..n of ``video``: ``faces[frame]`` = [(face_id, box)], other frames face-less."""
    meta, rows = [], 0
    for frame in range(1, n + 1):
        base = {"input": str(video), "frame": frame, "timestamp": (frame - 1) / 10}
        if frame not in faces:
            meta.append(base | {"face_id": -1, "confidence": 0.0, "success": 0})
        for face_id, (x, y, w, h) in faces.get(frame, []):
            meta.append(base | {"face_id": face_id, "x": x, "y": y, "width": w, "height": h, "confidence": 0.9,
                                "success": 1})
            rows += 1
    meta = pd.DataFrame(meta)
    expr = np.tile(np.eye(DEFAULT_SCHEMA.n_expr)[4] * 0.8 + 0.025, (rows, 1))  # Happiness 82.5 %
    va = np.tile([0.7, -0.4], (rows, 1))
    preds = prediction_frame(DEFAULT_SCHEMA, np.full((rows, DEFAULT_SCHEMA.n_au), 0.3), expr, va,
                             np.full(DEFAULT_SCHEMA.n_au, 0.5))
    faced = meta[meta["success"] == 1].reset_index(drop=True)
    table = pd.concat([pd.concat([faced, preds], axis=1), meta[meta["success"] == 0]], ignore_index=True)
    return finalize(table.sort_values(["frame", "face_id"], ignore_index=True), DEFAULT_SCHEMA)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def diff(a: np.ndarray, b: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    return float(np.abs(a[y:y + h, x:x + w].astype(int) - b[y:y + h, x:x + w].astype(int)).mean())


@pytest.fixture
def clip(tmp_path) -> tuple[Path, pd.DataFrame]:
    video = write_video(tmp_path / "clip.mp4")
    faces = {f: [(0, BOX)] for f in range(1, 11)} | {f: [(0, BOX), (1, SECOND)] for f in (4, 5, 6)}
    return video, results(video, faces, 20)


def test_overlay_draws_faces_and_leaves_other_frames_alone(clip, tmp_path):
    video, table = clip
    out = write_overlay_video(video, table, tmp_path / "out" / "overlay.mp4")
    original, drawn = decode(video), decode(out)
    assert out.is_file() and len(drawn) == len(original) == 20
    assert drawn[0].shape == original[0].shape == (96, 160, 3)
    x, y, w, h = BOX
    assert diff(drawn[4], original[4], x - 1, y, 4, h) > 20  # the box's left edge
    assert diff(drawn[4], original[4], *SECOND) > 5  # the second face, only where it is
    assert diff(drawn[8], original[8], *SECOND) < UNCHANGED
    assert diff(drawn[4], original[4], x + w + 2, y, 20, h) > 20  # the VA bars right of the box
    for i in range(11, 20):  # frames without a face
        assert diff(drawn[i], original[i], 0, 0, 160, 96) < UNCHANGED


def test_overlay_encodes_h264_when_available(clip, tmp_path):
    video, table = clip
    out = write_overlay_video(video, table, tmp_path / "overlay.mp4")
    with av.open(str(out)) as container:
        codec = container.streams.video[0].codec_context.name
    assert codec == ("h264" if "libx264" in av.codecs_available else "mpeg4")


def test_overlay_with_stride_keeps_the_duration(clip, tmp_path):
    video, table = clip
    out = write_overlay_video(video, table[table["frame"] % 3 == 1], tmp_path / "s.mp4", stride=3)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(10 / 3, rel=1e-3)
        assert len(list(container.decode(stream))) == 7  # frames 1, 4, ..., 19


def test_odd_sized_video_is_padded_to_h264s_even_size(tmp_path):
    """Browsers play H.264 (not MPEG-4 part 2), whose 4:2:0 needs even sides: one black column and row more."""
    video = write_video(tmp_path / "odd.mp4", n=5, size=(65, 47))
    table = results(video, {2: [(0, (5, 5, 20, 20))]}, 5)
    out = write_overlay_video(video, table, tmp_path / "odd_overlay.mp4")
    drawn, original = decode(out), decode(video)
    if "libx264" not in av.codecs_available:
        assert len(drawn) == 5 and drawn[0].shape == (47, 65, 3)
        return
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(drawn) == 5 and drawn[0].shape == (48, 66, 3)
    assert diff(drawn[4], original[4], 0, 0, 64, 46) < UNCHANGED  # the picture where it was
    assert drawn[4][47, :64].mean() < 20 and drawn[4][:46, 65].mean() < 20  # black padding (level 76 inside)


def test_only_the_videos_own_rows_are_drawn(clip, tmp_path):
    video, table = clip
    other = table.assign(input=str(tmp_path / "other.mp4"), x=120.0)  # another video's faces, elsewhere
    out = write_overlay_video(video, pd.concat([table[table["frame"] > 10], other]), tmp_path / "mine.mp4")
    original, drawn = decode(video), decode(out)
    assert all(diff(d, o, 0, 0, 160, 96) < UNCHANGED for d, o in zip(drawn, original))


def test_boxes_at_the_frame_edge_and_missing_values(clip, tmp_path):
    video, table = clip
    table.loc[table["frame"] == 2, ["x", "y", "width", "height"]] = [140, -10, 40, 120]  # sticks out right and top
    table.loc[table["frame"] == 3, ["valence", "arousal", "expression"]] = [np.nan, np.nan, None]
    table.loc[table["frame"] == 7, ["x"]] = np.nan  # no box: nothing drawn
    original, drawn = decode(video), decode(write_overlay_video(video, table, tmp_path / "edge.mp4"))
    assert diff(drawn[1], original[1], 100, 0, 40, 96) > 5  # bars moved left of the box
    assert diff(drawn[2], original[2], BOX[0] - 1, BOX[1], 4, BOX[3]) > 20
    assert diff(drawn[6], original[6], 0, 0, 160, 96) < UNCHANGED


def test_real_video(shared_data, tmp_path):
    video = shared_data / "media" / "WolfgangLanger_Pexels.mp4"
    table = results(video, {f: [(0, (330, 60, 200, 240))] for f in range(1, 473, 4)}, 472)
    out = write_overlay_video(video, table[table["frame"] % 4 == 1], tmp_path / "wolf.mp4", stride=4)
    drawn = decode(out)
    assert len(drawn) == 118 and drawn[0].shape == (360, 640, 3)


def test_labels_of_faces_side_by_side_do_not_overlap():
    """A group photo's faces at nearly the same height: each label finds a place of its own."""
    image = np.zeros((400, 600, 3), dtype=np.uint8)
    faces = [_Face(i, (40 + 90 * i, 150 + 6 * (i % 2), 160 + 90 * i, 270), "Happiness", 0.9, 0.5, 0.1)
             for i in range(5)]
    chips = draw_faces(image, faces)
    assert len(chips) == 5
    assert not any(_overlap(a, b) for i, a in enumerate(chips) for b in chips[i + 1:])
    assert all(0 <= c[1] and c[3] <= 400 for c in chips)
