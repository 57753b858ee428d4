"""The pure functions behind the feature-space figures, on inputs whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from affectlab.interpret.embedding import (angle_between, balanced_sample, covariance_ellipse, gaussian_fit, linear_fit,
                                         tsne_2d)


def test_balanced_sample_caps_each_class_and_keeps_small_ones_whole():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 20)
    rows = balanced_sample(labels, per_class=10, seed=1)
    counts = {k: int((labels[rows] == k).sum()) for k in (0, 1, 2)}
    assert counts == {0: 10, 1: 3, 2: 10}
    assert np.all(np.diff(rows) > 0)  # sorted, no repeats
    assert np.array_equal(rows, balanced_sample(labels, per_class=10, seed=1))
    assert not np.array_equal(rows, balanced_sample(labels, per_class=10, seed=2))


def test_steepest_ascent_of_a_known_plane():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 2)) * 5
    values = 2.0 * points[:, 0] - 3.0 * points[:, 1] + 1.0
    fit = linear_fit(points, values)
    np.testing.assert_allclose(fit.gradient, [2.0, -3.0], atol=1e-10)
    assert fit.intercept == pytest.approx(1.0)
    assert fit.r2 == pytest.approx(1.0)
    noisy = linear_fit(points, values + rng.normal(scale=0.5, size=200))
    np.testing.assert_allclose(noisy.gradient, [2.0, -3.0], atol=0.05)
    assert 0.95 < noisy.r2 < 1.0


def test_angle_between_known_vectors():
    assert angle_between([1, 0], [0, 1]) == pytest.approx(90.0)
    assert angle_between([1, 0], [1, 1]) == pytest.approx(45.0)
    assert angle_between([2, 0], [-1, 0]) == pytest.approx(180.0)
    assert angle_between([1, 1], [3, 3]) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(angle_between([0, 0], [1, 0]))


def test_covariance_ellipse_of_known_gaussian_samples():
    theta = np.radians(30)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rotation @ np.diag([9.0, 1.0]) @ rotation.T  # std 3 along 30°, 1 across
    exact = covariance_ellipse([4.0, -2.0], cov)
    assert exact.center == (4.0, -2.0)
    assert (exact.width, exact.height) == pytest.approx((6.0, 2.0))
    assert exact.angle % 180 == pytest.approx(30.0)
    assert covariance_ellipse([0, 0], cov, n_std=2).width == pytest.approx(12.0)

    samples = np.random.default_rng(0).multivariate_normal([4.0, -2.0], cov, size=20000)
    mean, fitted_cov = gaussian_fit(samples)
    fitted = covariance_ellipse(mean, fitted_cov)
    np.testing.assert_allclose(fitted.center, (4.0, -2.0), atol=0.05)
    assert (fitted.width, fitted.height) == pytest.approx((6.0, 2.0), rel=0.03)
    assert fitted.angle % 180 == pytest.approx(30.0, abs=1.0)


def test_tsne_keeps_separate_clusters_apart_and_is_seeded():
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(0, 1, (15, 16)), rng.normal(20, 1, (15, 16))]) * 1e-6  # any scale works
    xy = tsne_2d(features, seed=0, perplexity=5)
    assert xy.shape == (30, 2)
    a, b = xy[:15], xy[15:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max())
    assert gap > spread
    np.testing.assert_allclose(xy, tsne_2d(features, seed=0, perplexity=5))


def test_tsne_refuses_a_collapsed_space():
    with pytest.raises(ValueError, match="identical"):
        tsne_2d(np.ones((10, 4)))
