"""The numbers behind the SMM paper's feature-space figures (§7, Figures 5-6), as small pure functions.

- :func:`balanced_sample`: a fixed number of points per class, so rare classes show and t-SNE stays fast.
- :func:`tsne_2d`: the 2-D t-SNE embedding of one feature space (scikit-learn, seeded).
- :func:`gaussian_fit` and :func:`covariance_ellipse`: Figure 6(a)'s "covariance ellipse estimated
  assuming the features follow Gaussian class conditional densities".
- :func:`linear_fit` and :func:`angle_between`: Figure 6(c-d)'s "bi-variate linear model" fitted to
  the 2-D embedding, whose gradient is the arrow of steepest ascent of valence or arousal, and the
  angle between the two arrows (the paper finds V and A "not orthogonal, but correlated").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.manifold import TSNE


def balanced_sample(labels: ArrayLike, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices: up to ``per_class`` rows of each distinct label, drawn without replacement.

    ``labels`` is any 1-D array of hashable class values (AU presence 0/1, expression ids); a class
    with fewer rows keeps them all. The draw depends only on ``seed`` and the labels.
    """
    labels = np.asarray(labels)
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    picked = []
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        picked.append(rows if len(rows) <= per_class else rng.choice(rows, per_class, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def tsne_2d(features: ArrayLike, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, 2) t-SNE embedding of (N, D) features (van der Maaten & Hinton 2008; SMM §7).

    The perplexity is lowered to ``(N - 1) / 3`` when there are few points (t-SNE needs it below N).
    The points are centred and scaled by one number (their RMS distance from the centre), which leaves
    t-SNE's result unchanged but keeps it well-conditioned for spaces of any scale; identical points
    (a collapsed space) are a ValueError.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 4:
        raise ValueError(f"t-SNE needs an (N, D) array with N >= 4 points, got shape {x.shape}")
    x = x - x.mean(axis=0)
    scale = float(np.sqrt((x**2).sum(axis=1).mean()))
    if not np.isfinite(scale) or scale == 0:
        raise ValueError("all points are identical (or not finite); t-SNE cannot spread them")
    x /= scale
    perplexity = min(perplexity, (len(x) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def gaussian_fit(points: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (2,) and covariance (2, 2) of one class's 2-D points: its Gaussian class-conditional density."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
        raise ValueError(f"need at least 2 points of shape (N, 2), got {p.shape}")
    return p.mean(axis=0), np.cov(p, rowvar=False)


@dataclass(frozen=True)
class Ellipse:
    """An ellipse as matplotlib draws it: centre, full width and height, rotation in degrees."""

    center: tuple[float, float]
    width: float
    height: float
    angle: float


def covariance_ellipse(mean: ArrayLike, cov: ArrayLike, n_std: float = 1.0) -> Ellipse:
    """The contour ``(x - μ)ᵀ Σ⁻¹ (x - μ) = n_std²`` of a 2-D Gaussian (Figure 6a).

    Its axes lie along Σ's eigenvectors with half-lengths ``n_std · sqrt(eigenvalue)``; ``width`` is
    along the major axis and ``angle`` is the major axis's direction from +x, counter-clockwise.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    eigenvalues = np.clip(eigenvalues, 0, None)
    major = eigenvectors[:, 1]  # eigh sorts ascending
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    cx, cy = np.asarray(mean, dtype=np.float64)
    return Ellipse(center=(float(cx), float(cy)), width=float(2 * n_std * np.sqrt(eigenvalues[1])),
                   height=float(2 * n_std * np.sqrt(eigenvalues[0])), angle=angle)


@dataclass(frozen=True)
class LinearFit:
    """``value ≈ gradient · (x, y) + intercept``; ``gradient`` is the direction of steepest ascent."""

    gradient: np.ndarray
    intercept: float
    r2: float


def linear_fit(points: ArrayLike, values: ArrayLike) -> LinearFit:
    """Least-squares bi-variate linear model of ``values`` (N,) on 2-D ``points`` (N, 2) (Figure 6c-d).

    The gradient (∂v/∂x, ∂v/∂y) points where the value rises fastest; its length is the rise per unit.
    """
    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) != len(v) or len(p) < 3:
        raise ValueError(f"need (N, 2) points and N values with N >= 3, got {p.shape} and {v.shape}")
    design = np.column_stack([p, np.ones(len(p))])
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    residual = v - design @ coef
    total = ((v - v.mean()) ** 2).sum()
    r2 = float(1 - (residual**2).sum() / total) if total > 0 else float("nan")
    return LinearFit(gradient=coef[:2], intercept=float(coef[2]), r2=r2)


def angle_between(u: ArrayLike, v: ArrayLike) -> float:
    """The angle between two vectors in degrees, in [0, 180]; NaN when either is zero."""
    a, b = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(a @ b / norms, -1.0, 1.0))))
