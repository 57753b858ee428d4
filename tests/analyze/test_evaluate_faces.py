"""affectlab.analyze.evaluate_faces: evaluate --faces detect agrees with analyze + score on whole images."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from affectlab.cli import main


def test_evaluate_detect_scores_what_analyze_and_score_score(sample_media, tmp_path, capsys):
    photos = ["single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "45-m7-di-ph.jpg", "free-mountain-vector-01.jpg"]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": [str(sample_media / p) for p in photos],
                  "expression": ["Happiness", "Surprise", "Happiness", "Disgust", "Neutral"],
                  "valence": [0.7, 0.2, 0.6, -0.5, 0.0], "arousal": [0.3, 0.7, 0.3, 0.4, 0.0]}).to_csv(labels, index=False)
    assert main(["analyze", *(str(sample_media / p) for p in photos), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert main(["score", str(tmp_path / "out" / "images.csv"), str(labels), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["evaluate", "--model", "default", "--faces", "detect", "--data", str(labels),
                 "--json", str(tmp_path / "e.json")]) == 0
    err = capsys.readouterr().err
    assert "no face found in 1 image(s); scored the 4 with one" in err  # the mountain
    analysed, evaluated = (flat(json.loads((tmp_path / f"{n}.json").read_text())) for n in ("a", "e"))
    assert evaluated.keys() == analysed.keys() and evaluated["n.expr"] == 4
    assert evaluated == pytest.approx(analysed, abs=1e-4)  # images.csv holds 4 decimals


def flat(scores: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in scores.items():
        out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def test_evaluate_detect_takes_one_model(tmp_path, capsys):
    assert main(["evaluate", "--model", "default", "--model", "default", "--faces", "detect",
                 "--data", str(tmp_path / "x.csv")]) == 2
    assert "--faces detect scores one model" in capsys.readouterr().err
