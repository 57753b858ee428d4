"""--video-out: the analysed video with faces drawn, frame for frame."""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.analyze.media import iter_video
from affectlab.analyze.overlay import write_overlay_video
from affectlab.analyze.results import finalize, prediction_frame
from affectlab.labels import DEFAULT_SCHEMA


def results(frames: list[int]) -> pd.DataFrame:
    """A face at (20, 10, 40x40) on ``frames``; every other frame of a 20-frame video has no face."""
    rng = np.random.default_rng(0)
    n = len(frames)
    meta = pd.DataFrame({"input": "v.mp4", "frame": frames, "timestamp": np.array(frames) / 10, "face_id": 0,
                         "x": 20.0, "y": 10.0, "width": 40.0, "height": 40.0, "confidence": 0.99, "success": 1})
    predicted = prediction_frame(DEFAULT_SCHEMA, rng.uniform(size=(n, 12)), rng.dirichlet(np.ones(8), n),
                                 rng.uniform(-1, 1, size=(n, 2)), np.full(12, 0.5))
    empty = pd.DataFrame({"input": "v.mp4", "frame": [f for f in range(1, 21) if f not in frames], "face_id": -1,
                          "confidence": 0.0, "success": 0})
    return finalize(pd.concat([pd.concat([meta, predicted], axis=1), empty]).sort_values("frame"), DEFAULT_SCHEMA)


def test_overlay_draws_faces_and_keeps_the_rest(tmp_path, make_video):
    clip = make_video(tmp_path / "v.mp4", n=20, size=(96, 80), fps=10)
    out = write_overlay_video(clip, results(list(range(1, 21, 2))), tmp_path / "out.mp4")
    before = [f.image.astype(int) for f in iter_video(clip)]
    after = [f.image.astype(int) for f in iter_video(out)]
    assert len(after) == 20 and after[0].shape == before[0].shape
    box_edge = np.abs(after[0][10:50, 20:23] - before[0][10:50, 20:23]).mean()  # the box's left edge, frame 1
    assert box_edge > 30
    untouched = np.abs(after[1] - before[1]).mean()  # frame 2 has no face row: only codec noise
    assert untouched < 3


def test_overlay_with_stride_matches_the_analysed_frames(tmp_path, make_video):
    clip = make_video(tmp_path / "v.mp4", n=20, size=(96, 80), fps=10)
    out = write_overlay_video(clip, results(list(range(1, 21, 2))), tmp_path / "out.mp4", stride=2)
    assert len(list(iter_video(out))) == 10
