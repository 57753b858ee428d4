"""affectlab.inference.outputs: logits to probabilities, checked against scipy's own sigmoid and softmax."""
from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit, softmax

from affectlab.inference.outputs import au_probabilities, expr_probabilities, probabilities


def test_probabilities_are_scipys_sigmoid_and_softmax_and_va_is_clipped():
    rng = np.random.default_rng(0)
    au, expr = rng.normal(0, 4, (5, 12)).astype(np.float32), rng.normal(0, 4, (5, 8)).astype(np.float32)
    out = probabilities(au, expr, np.array([[1.5, -0.2]] * 5))
    np.testing.assert_allclose(out.au, expit(au), rtol=1e-6)
    np.testing.assert_allclose(out.expr, softmax(expr, axis=1), rtol=1e-5)
    assert out.va[0].tolist() == [1.0, -0.2] and out.features is None


def test_extreme_logits_give_0_and_1_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        au = au_probabilities(np.array([[-1000.0, 1000.0]], dtype=np.float32))
        expr = expr_probabilities(np.array([[1000.0, -1000.0, 0.0]]))
    assert au.tolist() == [[0.0, 1.0]] and expr.tolist() == [[1.0, 0.0, 0.0]]


def test_a_stored_va_calibration_maps_each_dimension_before_the_clip():
    va = np.array([[0.2, -0.1], [0.9, 0.5]], dtype=np.float32)
    out = probabilities(np.zeros((2, 1)), np.zeros((2, 8)), va, va_calibration={"valence": [2.0, 0.1]})
    np.testing.assert_allclose(out.va, [[0.5, -0.1], [1.0, 0.5]], rtol=1e-6)  # 0.9 * 2 + 0.1 clipped to 1
    both = probabilities(np.zeros((2, 1)), np.zeros((2, 8)), va,
                         va_calibration={"valence": [1.0, 0.0], "arousal": [1.5, -0.2]})
    np.testing.assert_allclose(both.va[:, 1], [-0.35, 0.55], rtol=1e-6)
    assert probabilities(np.zeros((2, 1)), np.zeros((2, 8)), va, va_calibration=None).va.tolist() == va.tolist()
