"""The SMM paper's feature-space figures (§7), drawn with matplotlib's object API (no pyplot state).

- :func:`sign_vehicle_figure`: Figure 5, one t-SNE panel per AU coloured by presence, titled with its F1.
- :func:`expression_figure`: Figure 6(a), the message space by ground-truth expression, with each
  class's covariance ellipse.
- :func:`valence_arousal_figure`: Figure 6(c-d), the message space by valence and by arousal
  (lighter = higher) with the arrow of steepest ascent of each linear fit and the angle between them.

Each function takes plain arrays and returns a :class:`~matplotlib.figure.Figure`; :func:`save_png`
writes it. The numbers come from :mod:`affectlab.interpret.embedding`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse as EllipsePatch

from affectlab.interpret.embedding import Ellipse, LinearFit

#: One colour per ABAW expression id (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other).
EXPR_COLORS: tuple[str, ...] = ("#7f7f7f", "#d62728", "#8c564b", "#9467bd", "#ff7f0e", "#1f77b4", "#2ca02c", "#e377c2")
PRESENCE_COLORS: tuple[str, str] = ("#9ecae1", "#d62728")  # absent, present
_POINT = dict(s=6, linewidths=0, alpha=0.75)


@dataclass(frozen=True)
class AUPanel:
    """One AU's 2-D sign-vehicle embedding: coordinates (N, 2), presence (N,) 0/1, and its F1."""

    name: str
    xy: np.ndarray
    presence: np.ndarray
    f1: float


def _bare(ax, adjustable: str = "datalim") -> None:
    """t-SNE axes carry no meaning: hide the ticks, keep the frame. Equal scales, so the angles drawn
    are the angles computed."""
    ax.set_aspect("equal", adjustable=adjustable)
    ax.set_xticks([])
    ax.set_yticks([])


def _panel_height(xy: np.ndarray, width: float) -> float:
    """Height in inches of a panel ``width`` inches wide that shows ``xy`` at equal scales (kept to a
    sensible range, so a long, thin embedding still gets a readable panel)."""
    extent = xy.max(axis=0) - xy.min(axis=0)
    aspect = extent[1] / extent[0] if extent[0] > 0 else 1.0
    return width * float(np.clip(aspect, 0.4, 1.4))


def sign_vehicle_figure(panels: Sequence[AUPanel], columns: int = 4) -> Figure:
    """Figure 5: the sign-vehicle space of each AU, presence (1) and absence (0) in two colours; each
    title gives the AU's F1 and how many of the points shown are positives."""
    rows = max(1, math.ceil(len(panels) / columns))
    fig = Figure(figsize=(2.3 * columns, 2.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        for value in (0, 1):
            pick = panel.presence == value
            ax.scatter(*panel.xy[pick].T, c=PRESENCE_COLORS[value], label=str(value), **_POINT)
        f1 = "-" if math.isnan(panel.f1) else f"{panel.f1:.2f}"
        ax.set_title(f"{panel.name}  F1 {f1}  ({int(panel.presence.sum())}/{len(panel.presence)} present)", fontsize=8)
        _bare(ax)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, ["absent (0)", "present (1)"][: len(labels)], loc="outside lower center", ncols=2,
               fontsize=8, markerscale=2.5, frameon=False)
    fig.suptitle("Sign-vehicle spaces (t-SNE), one per AU (SMM Fig. 5)", fontsize=10)
    return fig


def expression_figure(xy: np.ndarray, expr: np.ndarray, names: Sequence[str], ellipses: dict[int, Ellipse],
                      title: str) -> Figure:
    """Figure 6(a): points coloured by expression id, each class's covariance ellipse in its colour."""
    fig = Figure(figsize=(6.2, _panel_height(xy, 4.6) + 0.6), layout="constrained")
    ax = fig.subplots()
    for k, name in enumerate(names):
        pick = expr == k
        if pick.any():
            ax.scatter(*xy[pick].T, c=EXPR_COLORS[k % len(EXPR_COLORS)], label=name, **_POINT)
    for k, e in ellipses.items():
        ax.add_patch(EllipsePatch(e.center, e.width, e.height, angle=e.angle, fill=False, lw=1.8,
                                  ec=EXPR_COLORS[k % len(EXPR_COLORS)]))
    ax.legend(fontsize=7, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title, fontsize=10)
    _bare(ax, adjustable="box")
    return fig


def arrow_scale(xy: np.ndarray, gradients: Sequence[np.ndarray], fraction: float = 0.45) -> float:
    """One factor for every arrow of a figure, so the longest spans ``fraction`` of the smaller extent
    and the lengths stay comparable (the paper: "the length of the arrow indicates the gradient magnitude")."""
    extent = float(np.min(xy.max(axis=0) - xy.min(axis=0)))
    longest = max(float(np.linalg.norm(g)) for g in gradients)
    return fraction * extent / longest if longest > 0 else 0.0


def valence_arousal_figure(xy: np.ndarray, valence: np.ndarray, arousal: np.ndarray, fits: dict[str, LinearFit],
                           angle: float, title: str) -> Figure:
    """Figure 6(c-d): valence and arousal side by side, lighter = higher, each with its ascent arrow
    from the points' centre; the angle between the two arrows in the title."""
    fig = Figure(figsize=(9.0, _panel_height(xy, 3.7) + 0.8), layout="constrained")
    axes = fig.subplots(1, 2)
    scale = arrow_scale(xy, [f.gradient for f in fits.values()])
    centre = xy.mean(axis=0)
    for ax, (name, values) in zip(axes, (("valence", valence), ("arousal", arousal))):
        points = ax.scatter(*xy.T, c=values, cmap="viridis", vmin=-1, vmax=1, s=6, linewidths=0)
        fit = fits[name]
        dx, dy = fit.gradient * scale
        ax.annotate("", xy=(centre[0] + dx, centre[1] + dy), xytext=tuple(centre),
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=2.2, mutation_scale=16))
        ax.set_title(f"{name}: gradient {np.linalg.norm(fit.gradient):.3g}/unit, R² {fit.r2:.2f}", fontsize=9)
        fig.colorbar(points, ax=ax, shrink=0.8)
        _bare(ax, adjustable="box")
    angle_text = "-" if math.isnan(angle) else f"{angle:.1f}°"
    fig.suptitle(f"{title}: angle between the valence and arousal arrows {angle_text}", fontsize=10)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG through the Agg canvas (thread-safe; no display needed)."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return Path(path)
