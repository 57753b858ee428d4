"""The affine valence/arousal calibration: CCC-optimal maps, cross-validated before they are kept."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from affectlab.metrics import ccc
from affectlab.inference.outputs import calibrated_va
from affectlab.train.va_calibration import cross_validated_calibration, fit_affine


def squeezed(n: int = 400, seed: int = 0):
    """Labels in [-0.9, 0.9] and predictions that follow them squeezed to a third and shifted up."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-0.9, 0.9, size=(n, 2))
    pred = truth / 3 + 0.2 + rng.normal(0, 0.05, size=(n, 2))
    return pred, truth


def test_the_fitted_map_turns_ccc_into_pearsons_correlation():
    pred, truth = squeezed()
    a, b = fit_affine(pred[:, 0], truth[:, 0])
    assert a == pytest.approx(np.std(truth[:, 0]) / np.std(pred[:, 0]))
    assert ccc(a * pred[:, 0] + b, truth[:, 0]) == pytest.approx(pearsonr(pred[:, 0], truth[:, 0])[0], abs=1e-9)
    for scale in (0.8, 1.25):  # any other spread does worse
        assert ccc(scale * a * pred[:, 0] + b, truth[:, 0]) < ccc(a * pred[:, 0] + b, truth[:, 0])
    assert fit_affine(np.full(5, 0.3), np.linspace(-1, 1, 5)) == (1.0, 0.0)


def test_a_squeezed_model_gains_cross_validated_and_only_paying_maps_are_kept():
    pred, truth = squeezed()
    pred[:, 1] = truth[:, 1] + np.random.default_rng(1).normal(0, 0.05, len(truth))  # arousal already right
    truth[::7, 0] = np.nan  # a missing valence label is left out of valence only
    keys = pd.Series([f"s{i % 40}" for i in range(len(truth))])
    result = cross_validated_calibration(pred, truth, keys, folds=5)
    assert result.ccc_plain["valence"] < 0.6 < 0.95 < result.ccc_cross_validated["valence"]
    assert set(result.paying()) == {"valence"} or result.ccc_cross_validated["arousal"] > result.ccc_plain["arousal"]
    calibrated = calibrated_va(pred, result.paying())
    keep = ~np.isnan(truth[:, 0])
    assert ccc(calibrated[keep, 0], truth[keep, 0]) > 0.95 and np.abs(calibrated).max() <= 1


def test_no_calibration_leaves_va_as_it_is():
    va = np.array([[0.5, -0.2]], dtype=np.float32)
    assert calibrated_va(va, None).tolist() == va.tolist() == calibrated_va(va, {}).tolist()
    assert calibrated_va(va, {"arousal": [2.0, 0.0]})[0].tolist() == pytest.approx([0.5, -0.4])


def test_calibrate_va_on_real_faces_stores_what_pays_and_every_backend_applies_it(shared_data, tmp_path, capsys):
    """The bundled model on 80 AffectNet faces: the stored maps are the paying ones, and the PyTorch
    backend, the evaluation and the ONNX export all return the mapped VA."""
    import json
    import shutil
    from dataclasses import replace

    from affectlab.cli import main
    from affectlab.inference.backends import OnnxBackend, TorchBackend
    from affectlab.models import load_model, read_checkpoint_meta
    from affectlab.models.meta import VA_CALIBRATION

    rows = pd.read_csv(shared_data / "affectnet" / "labels.csv").iloc[::30].head(80)
    manifest = tmp_path / "va.csv"
    pd.DataFrame({"path": [str(shared_data / "affectnet" / p) for p in rows["path"]], "valence": rows["valence"],
                  "arousal": rows["arousal"]}).to_csv(manifest, index=False)
    model, calibrated = tmp_path / "model.safetensors", tmp_path / "calibrated.safetensors"
    shutil.copyfile("src/affectlab/assets/default.safetensors", model)
    assert main(["calibrate", "va", "--model", str(model), "--data", str(manifest), "--output", str(calibrated),
                 "--json", str(tmp_path / "va.json"), "--folds", "4", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "va.json").read_text())
    stored = read_checkpoint_meta(calibrated).extra[VA_CALIBRATION]
    paying = [d for d in ("valence", "arousal")
              if report["ccc_calibrated_cross_validated"][d] > report["ccc"][d]]
    assert sorted(stored or {}) == sorted(paying) == sorted(report["stored"])
    assert "calibration pays cross-validated for" in capsys.readouterr().out
    crops = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    plain = TorchBackend(load_model(model))
    plain.meta = replace(plain.meta, extra={k: v for k, v in plain.meta.extra.items() if k != VA_CALIBRATION})
    raw = plain(crops).va  # the network's own VA, whatever calibration the copied model stores
    mapped = TorchBackend(load_model(calibrated))(crops).va
    np.testing.assert_allclose(mapped, calibrated_va(raw, stored), atol=1e-6)
    assert main(["export", str(calibrated), "--out", str(tmp_path / "m.onnx")]) == 0
    np.testing.assert_allclose(OnnxBackend(tmp_path / "m.onnx")(crops).va, mapped, atol=1e-4)
