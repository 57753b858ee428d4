"""tools/model_report.py: ensembles and the bootstrap of a difference between two models."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectlab.labels import DEFAULT_SCHEMA, EXPR_NAMES

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = str(ROOT / "src/affectlab/assets/default.safetensors")
spec = importlib.util.spec_from_file_location("model_report", ROOT / "tools/model_report.py")
model_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_report)


def predictions(expr: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({"expr": expr})
    table[list(EXPR_NAMES)] = np.eye(len(EXPR_NAMES))[expr]
    return table


def test_bootstrap_of_a_model_right_where_the_other_is_wrong():
    truth = np.array([0, 1, 2, 3] * 10)
    samples = pd.DataFrame({"path": [f"{i}.png" for i in range(40)], "subject": [f"s{i % 8}" for i in range(40)],
                            "expr": truth})
    wrong = (truth + 1) % 4
    half = np.where(np.arange(40) % 2 == 0, truth, wrong)
    d = model_report.bootstrap_difference(samples, predictions(truth), predictions(half), "expr_accuracy",
                                          DEFAULT_SCHEMA, resamples=50)
    assert d["difference"] == pytest.approx(0.5) and d["ahead"] == 1.0 and d["groups"] == 8
    assert 0 < d["low"] <= 0.5 <= d["high"] < 1
    same = model_report.bootstrap_difference(samples, predictions(half), predictions(half), "expr_accuracy",
                                             DEFAULT_SCHEMA, resamples=20)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0, "ahead": 0.0, "groups": 8}


def test_held_out_ckplus_scored_alone_as_an_ensemble_and_against_another_crop(shared_data):
    only_ckplus = [f"data_root={shared_data}", "validation.ferplus=null", "validation.affectnet=null",
                   "validation.sfew=null"]
    sets = model_report.validation("configs/default.yaml", only_ckplus)
    assert list(sets) == ["ckplus"] and sets["ckplus"]["subject"].nunique() == 17
    one = model_report.evaluations(sets, [BUNDLED], flip=False)
    twice = model_report.evaluations(sets, [BUNDLED, BUNDLED], flip=False)
    assert model_report.report(sets, twice)["ckplus"]["au_f1_mean"] == pytest.approx(
        model_report.report(sets, one)["ckplus"]["au_f1_mean"])
    zoomed = model_report.validation("configs/default.yaml", only_ckplus + ["validation.ckplus.framing=null"])
    d = model_report.against(sets, one, model_report.evaluations(zoomed, [BUNDLED], flip=False),
                             DEFAULT_SCHEMA, resamples=50)["ckplus/au_f1_mean"]
    assert d["groups"] == 17 and d["low"] <= d["difference"] <= d["high"] and d["difference"] != 0


def headline(value: float, **changed: float) -> dict:
    """A report with every HEADLINE number at ``value`` except ``changed`` (``source__key``)."""
    out: dict = {}
    for source, key in model_report.HEADLINE:
        out.setdefault(source, {})[key] = changed.get(f"{source}__{key}", value)
    return out


def interval(difference: float, low: float, high: float) -> dict:
    return {"difference": difference, "low": low, "high": high, "ahead": 0.5, "groups": 10}


def test_the_bundling_rule_wants_a_higher_mean_and_no_loss_beyond_noise():
    theirs = headline(0.5)
    noisy = {f"{s}/{k}": interval(0.01, -0.05, 0.07) for s, k in model_report.HEADLINE}
    ok, reason = model_report.bundle_verdict(headline(0.52), theirs, noisy)
    assert ok and reason.startswith("bundled: mean of 6 headline numbers 0.5200 against 0.5000")
    ok, reason = model_report.bundle_verdict(headline(0.5), theirs, noisy)
    assert not ok and "0.5000 against 0.5000" in reason
    worse = {**noisy, "ckplus/au_f1_mean": interval(-0.08, -0.15, -0.01)}
    ok, reason = model_report.bundle_verdict(headline(0.56, ckplus__au_f1_mean=0.42), theirs, worse)
    assert not ok and reason.endswith("worse beyond bootstrap noise on ckplus/au_f1_mean -0.080 [-0.150, -0.010]")
    lower_but_noisy = {**noisy, "ckplus/au_f1_mean": interval(-0.08, -0.15, 0.02)}
    assert model_report.bundle_verdict(headline(0.56, ckplus__au_f1_mean=0.42), theirs, lower_but_noisy)[0]


def test_bundle_to_keeps_the_bundled_model_when_the_candidate_is_no_better(shared_data, tmp_path, monkeypatch, capsys):
    """The bundled model against itself: equal means, so the target file is left as it was."""
    target = tmp_path / "bundled.safetensors"
    target.write_bytes(b"the old model")
    monkeypatch.setattr("sys.argv", ["model_report", "configs/default.yaml", f"data_root={shared_data}",
                                     "validation.ferplus=null", "validation.affectnet=null", "validation.sfew=null",
                                     "--model", BUNDLED, "--against", BUNDLED, "--resamples", "20",
                                     "--bundle-to", str(target), "--json", str(tmp_path / "r.json")])
    model_report.main()
    out = capsys.readouterr().out
    assert "not bundled: mean of 1 headline numbers" in out and target.read_bytes() == b"the old model"
    import json
    assert json.loads((tmp_path / "r.json").read_text())["bundled"]["bundled"] is False
