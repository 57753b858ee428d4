"""affectlab.scoring and ``affectlab score``: analyze tables as predictions, every source as labels."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.results import finalize, prediction_frame
from affectlab.cli import main
from affectlab.errors import DataError
from affectlab.labels import AU_ABAW, DEFAULT_SCHEMA
from affectlab.scoring import read_predictions


def analyze_table(rows: list[tuple[str, int, float, int]]) -> pd.DataFrame:
    """An ``affectlab analyze`` images table: (input, face_id, confidence, expression id) per face;
    face_id -1 is an image without a face."""
    meta = pd.DataFrame([{"input": i, "frame": -1, "timestamp": math.nan, "face_id": f, "x": 1.0, "y": 1.0,
                          "width": 9.0, "height": 9.0, "confidence": c, "success": int(f >= 0)} for i, f, c, _ in rows])
    faces = meta["success"] == 1
    n = int(faces.sum())
    expr = np.full((n, 8), 0.01)
    expr[np.arange(n), [e for _, f, _, e in rows if f >= 0]] = 0.93
    au = np.full((n, len(AU_ABAW)), 0.2)
    va = np.tile([0.5, -0.25], (n, 1))
    preds = prediction_frame(DEFAULT_SCHEMA, au, expr, va, np.full(len(AU_ABAW), 0.5))
    preds.index = np.flatnonzero(faces)
    return finalize(meta.join(preds), DEFAULT_SCHEMA)


@pytest.fixture
def photos(tmp_path, monkeypatch, image) -> Path:
    """Three photos in ``tmp_path/photos`` analysed from ``tmp_path``, as a user would (relative inputs)."""
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b", "c"):
        image(tmp_path / "photos" / f"{name}.png")
    table = analyze_table([("photos/a.png", 0, 0.7, 1), ("photos/a.png", 1, 0.99, 4),  # two faces in a
                           ("photos/b.png", 0, 0.9, 4), ("photos/c.png", -1, 0.0, 0)])  # no face in c
    (tmp_path / "results").mkdir()
    table.to_csv(tmp_path / "results" / "images.csv", index=False)
    return tmp_path / "results" / "images.csv"


def test_analyze_table_scores_as_written(photos, tmp_path, capsys):
    """``score results/images.csv labels`` works: the most confident face of each image counts."""
    pd.DataFrame({"path": ["a.png", "b.png", "c.png"], "expression": ["Happiness", "Happiness", "Anger"]}).to_csv(
        tmp_path / "photos" / "labels.csv", index=False)
    code = main(["score", str(photos), str(tmp_path / "photos" / "labels.csv"), "--json", str(tmp_path / "s.json")])
    out, err = capsys.readouterr()
    assert code == 0, err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["n"]["expr"] == 2 and scores["expr"]["accuracy"] == 1.0  # a: face 1 (Happiness); c: no face
    assert "1 labelled images have no prediction" in err
    code = main(["score", str(photos), str(tmp_path / "photos" / "labels.csv"), "--face-id", "0",
                 "--json", str(tmp_path / "s0.json")])
    assert code == 0 and json.loads((tmp_path / "s0.json").read_text())["expr"]["accuracy"] == 0.5  # a: Anger


def test_analyze_table_predictions(photos):
    table = read_predictions(photos, DEFAULT_SCHEMA)
    assert [Path(p).name for p in table["path"]] == ["a.png", "b.png"] and table["expr"].tolist() == [4, 4]
    assert table["AU12"].tolist() == pytest.approx([0.2, 0.2]) and table["valence"].tolist() == [0.5, 0.5]
    with pytest.raises(DataError, match="no image has an analysed face 7"):
        read_predictions(photos, DEFAULT_SCHEMA, face_id=7)


def test_a_video_table_is_refused_in_one_line(tmp_path):
    table = analyze_table([("clip.mp4", 0, 0.9, 1)]).assign(frame=3)
    table.to_csv(tmp_path / "clip.csv", index=False)
    with pytest.raises(DataError, match=r"clip.csv:2: is a video's table"):
        read_predictions(tmp_path / "clip.csv", DEFAULT_SCHEMA)


@pytest.mark.parametrize("dataset", ["ckplus", "affectnet"])
def test_score_takes_the_datasets_own_label_files(tmp_path, capsys, image, dataset):
    """CK+ (with contempt, which maps to Other) and AffectNet labels, as a folder, as evaluate
    reads them."""
    folder = tmp_path / dataset
    for i in range(3):
        image(folder / "images" / f"{i}.png")
    if dataset == "ckplus":
        labels = pd.DataFrame({"path": [f"images/{i}.png" for i in range(3)], "subject": "S1", "sequence": "S1_1",
                               "frame": [1, 2, 3], "expression": ["contempt", "happy", "contempt"],
                               "au_source": "test", "AU12": [0, 1, 0]})
    else:
        labels = pd.DataFrame({"path": [f"images/{i}.png" for i in range(3)], "id": range(3),
                               "expression_idx": [7, 1, 7], "expression": ["contempt", "happy", "contempt"],
                               "valence": [0.1, 0.5, -0.1], "arousal": [0.0, 0.2, 0.1],
                               **{f"lnd_{a}{k}": 1.0 for k in range(68) for a in "xy"}})
    labels.to_csv(folder / "labels.csv", index=False)
    predictions = pd.DataFrame({"path": [str(folder / "images" / f"{i}.png") for i in range(3)],
                                "expression": ["Other", "Happiness", "Other"]})
    predictions.to_csv(tmp_path / "p.csv", index=False)
    code = main(["score", str(tmp_path / "p.csv"), str(folder), "--json", str(tmp_path / "s.json")])
    assert code == 0, capsys.readouterr().err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["n"]["expr"] == 3 and scores["expr"]["accuracy"] == 1.0
