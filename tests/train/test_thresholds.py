"""Per-AU thresholds: tuned on real CK+ faces, cross-validated F1, stored where analyze reads them."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from affectlab.cli import main
from affectlab.models import load_model, read_checkpoint_meta
from affectlab.train.thresholds import cross_validated_f1, fold_keys

BUNDLED = "src/affectlab/assets/default.safetensors"


def test_cross_validation_scores_each_fold_with_thresholds_it_did_not_tune_on():
    """An AU whose positives score 0.3 in half the subjects and 0.7 in the other half: tuned on one half,
    a threshold scores the other; the pooled F1 is what thresholds tuned elsewhere give."""
    keys = pd.Series([f"s{i // 4}" for i in range(16)])
    truth = np.array([[1.0], [0.0]] * 8)
    probs = np.where(truth == 1, 0.6, 0.2)
    assert cross_validated_f1(truth, probs, keys, 2)[0] == pytest.approx(1.0)
    noisy = probs.copy()
    noisy[truth[:, 0] == 0] = np.linspace(0.0, 0.9, 8)[:, None]
    assert cross_validated_f1(truth, noisy, keys, 2)[0] < 1.0


def test_tune_thresholds_on_ckplus_and_analyze_decides_by_them(shared_data, tmp_path, capsys):
    copy = tmp_path / "model.safetensors"
    shutil.copyfile(BUNDLED, copy)
    code = main(["calibrate", "thresholds", "--model", str(copy), "--data", str(shared_data / "ckplus"), "--write",
                 "--json", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    assert code == 0 and "F1 tuned" in out and "AU thresholds stored" in out
    stored = read_checkpoint_meta(copy).extra["au_thresholds"]
    assert set(stored) == set(load_model(copy).schema.au_names) and all(0 < t < 1 for t in stored.values())

    from affectlab import Analyzer
    from affectlab.models.checkpoint import update_extra

    model = load_model(copy)
    extreme = {a: (0.02 if i % 2 else 0.98) for i, a in enumerate(model.schema.au_names)}
    update_extra(model, copy, au_thresholds=extreme)
    face = sorted((shared_data / "ckplus" / "images").rglob("*.png"))[0]
    rows = Analyzer(model=copy, faces="crops").analyze(face)
    for name, threshold in extreme.items():
        column = f"AU{int(name[2:]):02d}"
        assert rows[f"{column}_c"].iloc[0] == int(rows[column].iloc[0] >= threshold), name


def test_a_recipe_source_is_read_with_its_subset_and_framing(shared_data, tmp_path, capsys):
    copy = tmp_path / "model.safetensors"
    shutil.copyfile(BUNDLED, copy)
    recipe = "configs/default.yaml"
    assert main(["calibrate", "thresholds", "--model", str(copy), "--recipe", recipe, "--data", "ckplus",
                 "--json", str(tmp_path / "t.json")]) == 0
    assert main(["calibrate", "thresholds", "--model", str(copy), "--recipe", recipe, "--data", "nope"]) == 2
    assert "no source 'nope'" in capsys.readouterr().err


def test_if_better_stores_no_thresholds_that_lose_under_cross_validation(shared_data, tmp_path, capsys):
    """The bundled model on the recipe's 17 held-out CK+ subjects: tuned 0.673 against 0.690 at 0.5."""
    copy = tmp_path / "model.safetensors"
    shutil.copyfile(BUNDLED, copy)
    assert main(["calibrate", "thresholds", "--model", str(copy), "--recipe", "configs/default.yaml", "--data", "ckplus",
                 "--write", "--if-better"]) == 0
    assert "not stored (--if-better)" in capsys.readouterr().out
    assert "au_thresholds" not in read_checkpoint_meta(copy).extra


def test_folds_keep_subjects_else_films_else_videos_else_images_together():
    """CK+ by subject, SFEW by film ("split by movie, never by image"), Aff-Wild2 by video."""
    frame = pd.DataFrame({"path": ["a", "b"], "subject": ["s", "s"], "movie": ["m", "n"]})
    assert fold_keys(frame).tolist() == ["s", "s"]
    assert fold_keys(frame.drop(columns="subject")).tolist() == ["m", "n"]
    assert fold_keys(pd.DataFrame({"path": ["a", "b"], "video": ["", "v"]})).tolist() == ["a", "b"]
