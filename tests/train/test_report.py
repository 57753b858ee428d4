"""The validation report's numbers and ``affectlab calibrate flip``, on the held-out CK+ subjects."""
from __future__ import annotations

import json
import shutil

import pytest

from affectlab.cli import main
from affectlab.models import read_checkpoint_meta
from affectlab.models.meta import TEST_TIME_FLIP
import numpy as np
import pandas as pd

from affectlab.labels import EXPR_NAMES
from affectlab.train.report import confusion, format_confusion, headline_gain

BUNDLED = "src/affectlab/assets/default.safetensors"


def test_headline_gain_is_the_mean_change_of_the_numbers_both_reports_have():
    plain = {"ckplus": {"au_f1_mean": 0.5}, "ferplus": {"expr_accuracy": 0.7}, "sfew": {}}
    flipped = {"ckplus": {"au_f1_mean": 0.56}, "ferplus": {"expr_accuracy": 0.68}, "affectnet": {"ccc_valence": 0.9}}
    assert headline_gain(plain, flipped) == pytest.approx((0.06 - 0.02) / 2)


def predictions(expr: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({"expr": expr})
    table[list(EXPR_NAMES)] = np.eye(len(EXPR_NAMES))[expr]
    return table


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    truth = pd.DataFrame({"expr": [0, 0, 4, 4, 4, -1]})
    pred = predictions(np.array([0, 1, 4, 4, 6, 2]))
    c = confusion(pred, truth)
    matrix = np.array(c["matrix"])
    assert matrix.sum() == 5 and matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[4, 4] == 2 and matrix[4, 6] == 1
    assert c["f1"]["Happiness"] == pytest.approx(0.8) and c["f1"]["Neutral"] == pytest.approx(2 / 3)
    assert c["f1"]["Fear"] is None and c["f1"]["Anger"] == 0.0
    text = format_confusion(c)
    assert text.splitlines()[5].split()[:6] == ["Happiness", "0", "0", "0", "0", "2"] and "0.800" in text


def test_calibrate_flip_stores_the_choice_its_numbers_make(shared_data, tmp_path, capsys):
    copy, target = tmp_path / "model.safetensors", tmp_path / "chosen.safetensors"
    shutil.copyfile(BUNDLED, copy)
    only_ckplus = [f"data_root={shared_data}", "validation.ferplus=null", "validation.affectnet=null",
                   "validation.sfew=null"]
    code = main(["calibrate", "flip", "--model", str(copy), "--recipe", "configs/default.yaml", *only_ckplus,
                 "--output", str(target), "--json", str(tmp_path / "flip.json"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "-- without flip averaging" in out and "-- with flip averaging" in out
    result = json.loads((tmp_path / "flip.json").read_text())
    gain = result["with_flip"]["ckplus"]["au_f1_mean"] - result["without_flip"]["ckplus"]["au_f1_mean"]
    assert result["gain"] == pytest.approx(gain) and gain != 0
    assert read_checkpoint_meta(target).extra[TEST_TIME_FLIP] == (gain > 0)
    assert f"stored {TEST_TIME_FLIP}={gain > 0} in {target}" in out
    assert read_checkpoint_meta(copy).extra == read_checkpoint_meta(BUNDLED).extra  # --output leaves it alone
