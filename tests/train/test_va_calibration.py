"""The affine valence/arousal calibration: CCC-optimal maps, cross-validated before they are kept."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr

from affectlab.metrics import ccc
from affectlab.train.va_calibration import apply_va_calibration, cross_validated_calibration, fit_affine


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
    calibrated = apply_va_calibration(pred, result.paying())
    keep = ~np.isnan(truth[:, 0])
    assert ccc(calibrated[keep, 0], truth[keep, 0]) > 0.95 and np.abs(calibrated).max() <= 1


def test_no_calibration_leaves_va_as_it_is():
    va = np.array([[0.5, -0.2]], dtype=np.float32)
    assert apply_va_calibration(va, None) is va and apply_va_calibration(va, {}) is va
    assert apply_va_calibration(va, {"arousal": [2.0, 0.0]})[0].tolist() == pytest.approx([0.5, -0.4])
