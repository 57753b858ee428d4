"""affectlab.analyze.results: the numbers that sum up a table, and the summary line made of them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.results import describe, finalize, prediction_frame, summary
from affectlab.labels import DEFAULT_SCHEMA


def table() -> pd.DataFrame:
    """Frames 1-4 of a video: face 0 in frames 1-3 (Happiness, Happiness, Anger), face 1 in frame 2, frame 4 empty."""
    schema = DEFAULT_SCHEMA
    meta = pd.DataFrame({"input": "v.mp4", "frame": [1, 2, 2, 3], "timestamp": [0.0, 0.1, 0.1, 0.2],
                         "face_id": [0, 0, 1, 0], "x": 1.0, "y": 1.0, "width": 5.0, "height": 5.0,
                         "confidence": 0.9, "success": 1})
    expr = np.zeros((4, schema.n_expr))
    expr[[0, 1, 3], 4], expr[2, 1] = 1.0, 1.0
    aus = np.zeros((4, schema.n_au))
    aus[:, 6], aus[:3, 10] = 0.9, 0.9  # AU12 in every row, AU25 in three of four
    va = np.array([[0.5, 0.1], [0.3, 0.1], [-0.4, 0.5], [0.0, 0.1]])
    rows = pd.concat([meta, prediction_frame(schema, aus, expr, va, np.full(schema.n_au, 0.5))], axis=1)
    empty = pd.DataFrame({"input": ["v.mp4"], "frame": [4], "timestamp": [0.3], "face_id": [-1], "success": [0]})
    return finalize(pd.concat([rows, empty], ignore_index=True), schema)


def test_summary_counts_frames_faces_people_and_the_most_active_aus():
    whole = table()
    faces = whole[whole["success"] == 1]
    numbers = summary(faces, 4, top_aus=2)
    assert {k: numbers[k] for k in ("frames", "with_face", "faces", "people", "dominant")} == {
        "frames": 4, "with_face": 3, "faces": 4, "people": 2, "dominant": "Happiness"}
    assert numbers["dominant_share"] == 0.75
    assert numbers["valence"] == pytest.approx(0.1) and numbers["arousal"] == pytest.approx(0.2)
    assert numbers["top_aus"] == [("AU12", 1.0), ("AU25", 0.75)]
    one = summary(faces[faces["face_id"] == 1], 4)
    assert one["with_face"] == 1 and one["people"] == 1 and one["dominant"] == "Anger"


def test_summary_leaves_out_what_the_table_lacks():
    faces = table().query("success == 1").drop(columns=["valence", "expression"])
    numbers = summary(faces, 4)
    assert "valence" not in numbers and "dominant" not in numbers and numbers["arousal"] == pytest.approx(0.2)
    assert summary(faces.iloc[:0], 4) == {"frames": 4, "with_face": 0, "faces": 0, "people": 0}


def test_describe_is_the_summary_in_words():
    assert describe(table(), DEFAULT_SCHEMA) == ("faces in 3/4 frames (2 people tracked); mostly Happiness (75%); "
                                                 "mean valence +0.10, arousal +0.20; most active AU12 100%, "
                                                 "AU25 75%, AU01 0%")
