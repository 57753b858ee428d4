"""The validation report's numbers and ``affectlab calibrate flip``, on the held-out CK+ subjects."""
from __future__ import annotations

import json
import shutil

import pytest

from affectlab.cli import main
from affectlab.models import read_checkpoint_meta
from affectlab.models.meta import TEST_TIME_FLIP
from affectlab.train.report import headline_gain

BUNDLED = "src/affectlab/assets/default.safetensors"


def test_headline_gain_is_the_mean_change_of_the_numbers_both_reports_have():
    plain = {"ckplus": {"au_f1_mean": 0.5}, "ferplus": {"expr_accuracy": 0.7}, "sfew": {}}
    flipped = {"ckplus": {"au_f1_mean": 0.56}, "ferplus": {"expr_accuracy": 0.68}, "affectnet": {"ccc_valence": 0.9}}
    assert headline_gain(plain, flipped) == pytest.approx((0.06 - 0.02) / 2)


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
