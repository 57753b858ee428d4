"""``affectlab visualize`` on a small checkpoint and a tiny sample of the real data, and the choice of spaces."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlab.cli import main
from affectlab.errors import AffectlabError
from affectlab.interpret.features import Spaces, feature_spaces
from affectlab.interpret.visualize import COORDINATE_COLUMNS, visualize
from affectlab.labels import AU_ABAW
from affectlab.models import create_model, load_model

FIGURES = ("sign_vehicle_spaces.png", "message_space_expr.png", "message_space_va.png")


def test_spaces_of_each_model_family():
    assert feature_spaces(["sign", "message", "roi", "attention"]) == Spaces("sign", "message", "message")
    assert feature_spaces(["sign", "message_expr", "message_va", "roi"]) == Spaces("sign", "message_expr", "message_va")
    assert feature_spaces(["sign", "embedding", "roi"]) == Spaces("sign", "embedding", "embedding")  # context
    assert feature_spaces(["emb", "au_features", "expr_features", "va_features"]) == Spaces(
        "au_features", "expr_features", "va_features")  # streaming
    assert feature_spaces(["embedding"]) == Spaces(None, "embedding", "embedding")  # mtl-baseline
    with pytest.raises(AffectlabError, match="no message or penultimate"):
        feature_spaces(["attention"])


def test_visualize_command_on_real_faces(checkpoints, tiny_data, tmp_path, capsys):
    out = tmp_path / "figures"
    code = main(["visualize", "--model", str(checkpoints["smm"]), "--data", str(tiny_data["affectnet"]),
                 str(tiny_data["ckplus"]), "--out", str(out), "--per-class", "6", "--perplexity", "4", "--quiet"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "80 faces" in stdout and "angle between the valence and arousal arrows" in stdout
    for name in FIGURES:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 200

    coords = pd.read_csv(out / "coordinates.csv")
    assert tuple(coords.columns) == COORDINATE_COLUMNS
    summary = json.loads((out / "summary.json").read_text())
    assert set(coords["panel"]) <= {*AU_ABAW, "expr", "va"} and {"expr", "va"} <= set(coords["panel"])
    assert coords.groupby("panel").size().to_dict() == summary["points"]
    au1 = coords[coords["panel"] == "AU1"]
    assert (au1["feature"] == "sign[AU1]").all() and set(au1["au"]) <= {0.0, 1.0}
    assert (au1["source"] == "ckplus").all()  # only CK+ rows carry AUs
    expr = coords[coords["panel"] == "expr"]
    assert expr.groupby("expr").size().max() <= 6 and (expr["feature"] == "message").all() and expr["au"].isna().all()
    va = coords[coords["panel"] == "va"]
    assert va[["valence", "arousal"]].notna().all().all() and (va["source"] == "affectnet").all()

    # the F1 in each panel title is the model's F1 on the extracted rows, as `score` would compute it
    assert summary["au_f1"] == {k: v for k, v in summary["scores"]["au"]["f1"].items() if k in summary["au_f1"]}
    assert summary["va"]["angle_deg"] == pytest.approx(np.degrees(np.arccos(
        np.dot(summary["va"]["valence_gradient"], summary["va"]["arousal_gradient"])
        / np.linalg.norm(summary["va"]["valence_gradient"]) / np.linalg.norm(summary["va"]["arousal_gradient"]))))


def test_separate_message_spaces_of_mss(checkpoints, tiny_data, tmp_path):
    samples = pd.read_csv(tiny_data["affectnet"])
    report = visualize(load_model(checkpoints["mss"]), samples, tmp_path, per_class=4, perplexity=3)
    assert report.summary["spaces"] == {"sign": "sign", "expr": "message_expr", "va": "message_va"}
    assert report.skipped == ["sign-vehicle spaces: no row is labelled for any AU"]
    assert not (tmp_path / "sign_vehicle_spaces.png").exists()
    assert (tmp_path / "message_space_va.png").exists()


def test_model_without_sign_vehicles_draws_its_penultimate_features(checkpoints, tiny_data, tmp_path):
    samples = pd.read_csv(tiny_data["ckplus"])
    report = visualize(load_model(checkpoints["mtl-baseline"]), samples, tmp_path, per_class=4, perplexity=3)
    assert report.summary["spaces"]["expr"] == "embedding"
    assert "sign-vehicle spaces: the model has no per-AU features" in report.skipped
    assert [p.name for p in report.written] == ["message_space_expr.png", "coordinates.csv", "summary.json"]


def test_two_view_models_are_refused(tmp_path):
    model = create_model("context-ensemble", backbone="mobilenet_v2")
    with pytest.raises(AffectlabError, match="BVCHW"):
        visualize(model, pd.DataFrame(), tmp_path)


def test_user_errors_are_one_line(checkpoints, tmp_path, capsys):
    assert main(["visualize", "--model", str(tmp_path / "missing.safetensors"), "--data", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["visualize", "--model", str(checkpoints["smm"]), "--data", str(tmp_path / "nothing.csv"),
                 "--out", str(tmp_path / "o")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("affectlab: error:") for e in errors)
