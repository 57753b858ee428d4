"""Figures of a results table (PNG): valence/arousal over time, the VA circumplex, an AU heatmap and the
expression probabilities over time.

    from affectlab.analyze.plots import plot_all
    plot_all(table, "out", "clip")  # out/clip_va.png, clip_circumplex.png, clip_aus.png, clip_expressions.png

Figures are plain :class:`matplotlib.figure.Figure` objects drawn on an Agg canvas, so nothing touches
pyplot's global state or the user's backend. The over-time figures put one column per analysed frame
(x = timestamp in seconds, else frame number, else row order) and leave gaps where the face is missing.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from affectlab.analyze.results import main_face_id
from affectlab.labels import EXPR_NAMES

PathLike = str | os.PathLike[str]

DPI = 100
WIDE = (8.0, 4.0)  # inches: the over-time figures
SQUARE = (7.0, 5.6)  # inches: the circumplex (equal axes plus a legend on the right)
MAX_LABELLED_FACES = 40  # a circumplex of still images names each face up to this many (more would clutter)

#: One fixed colour per expression class (Okabe-Ito, safe for colour-blind readers), shared by the
#: circumplex, the expression plot and the overlay video.
EXPR_COLOURS: dict[str, str] = {
    "Neutral": "#999999", "Anger": "#D55E00", "Disgust": "#009E73", "Fear": "#CC79A7",
    "Happiness": "#E69F00", "Sadness": "#0072B2", "Surprise": "#56B4E9", "Other": "#F0E442",
}
#: Line colours for face 1, 2, ... of the valence/arousal plot.
FACE_COLOURS: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_MISSING = "#e6e6e6"  # where a face is missing in the AU heatmap

#: FACS names, shown beside the AU codes of the heatmap.
FACS_NAMES: dict[str, str] = {
    "AU01": "inner brow raiser", "AU02": "outer brow raiser", "AU04": "brow lowerer", "AU05": "upper lid raiser",
    "AU06": "cheek raiser", "AU07": "lid tightener", "AU09": "nose wrinkler", "AU10": "upper lip raiser",
    "AU11": "nasolabial deepener", "AU12": "lip corner puller", "AU14": "dimpler", "AU15": "lip corner depressor",
    "AU16": "lower lip depressor", "AU17": "chin raiser", "AU18": "lip pucker", "AU20": "lip stretcher",
    "AU22": "lip funneler", "AU23": "lip tightener", "AU24": "lip pressor", "AU25": "lips part",
    "AU26": "jaw drop", "AU27": "mouth stretch", "AU28": "lip suck", "AU43": "eyes closed", "AU45": "blink",
}
_AU_COLUMN = re.compile(r"^AU\d{2}$")
_STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False}

P = ParamSpec("P")
R = TypeVar("R")


def _styled(plot: Callable[P, R]) -> Callable[P, R]:
    """Draw under the module's font sizes without changing the caller's rcParams."""
    @functools.wraps(plot)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(_STYLE):
            return plot(*args, **kwargs)
    return wrapper


# --- public API -----------------------------------------------------------------------------------

@_styled
def plot_va_over_time(table: pd.DataFrame, path: PathLike, *, face_id: int | None = None) -> Path:
    """Valence (top) and arousal (bottom) over time, one line per face (or only ``face_id``)."""
    faces = _faces(table)
    ids = sorted(int(i) for i in faces["face_id"].unique()) if face_id is None else [_check_face(faces, face_id)]
    title = _title(table, "Valence and arousal", face_id)
    if faces.empty:
        return _save_empty(path, WIDE, title)
    slots, xlabel = _timeline(table)
    fig = _figure(WIDE)
    ax_v, ax_a = fig.subplots(2, 1, sharex=True)
    for k, fid in enumerate(ids):
        series = _face_series(faces, fid, ["valence", "arousal"], slots)
        for ax, column in ((ax_v, "valence"), (ax_a, "arousal")):
            _line(ax, slots["x"].to_numpy(), series[column].to_numpy(float), FACE_COLOURS[k % len(FACE_COLOURS)],
                  f"face {fid}")
    for ax, name in ((ax_v, "valence"), (ax_a, "arousal")):
        ax.set_ylim(-1.05, 1.05)
        ax.set_yticks([-1, -0.5, 0, 0.5, 1])
        ax.axhline(0, color="0.6", lw=0.8, zorder=0)
        ax.set_ylabel(name)
        ax.grid(axis="y", color="0.92", lw=0.6)
    ax_a.set_xlim(*_edges(slots["x"].to_numpy())[[0, -1]])
    ax_a.set_xlabel(xlabel)
    ax_v.set_title(title)
    if len(ids) > 1:
        ax_v.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


@_styled
def plot_circumplex(table: pd.DataFrame, path: PathLike) -> Path:
    """Every face in the valence × arousal plane, coloured by its predicted expression."""
    faces = _faces(table).dropna(subset=["valence", "arousal"])
    title = _title(table, "Valence–arousal circumplex", None)
    if faces.empty:
        return _save_empty(path, SQUARE, title)
    fig = _figure(SQUARE)
    ax = fig.subplots()
    _circumplex_guides(ax)
    size, alpha = _marker_style(len(faces))
    expression = faces["expression"]
    for name in _expr_columns(faces):
        chosen = faces[expression == name]
        if len(chosen):
            ax.scatter(chosen["valence"], chosen["arousal"], s=size, color=EXPR_COLOURS[name], alpha=alpha,
                       edgecolors="0.25", linewidths=0.3, label=f"{name} ({len(chosen)})", zorder=3)
    unknown = faces[expression.isna()]
    if len(unknown):
        ax.scatter(unknown["valence"], unknown["arousal"], s=size, facecolors="none", edgecolors="0.4",
                   linewidths=0.6, label=f"no expression ({len(unknown)})", zorder=3)
    if not _is_video_sequence(table) and len(faces) <= MAX_LABELLED_FACES:
        _label_faces(ax, faces)
    ax.set_title(title)
    legend = ax.legend(title="expression", loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    return _save(fig, path)


@_styled
def plot_au_heatmap(table: pd.DataFrame, path: PathLike, *, face_id: int | None = None) -> Path:
    """AU probabilities of one face (default: the face seen most) over time: one row per AU, grey gaps."""
    faces = _faces(table)
    aus = _au_columns(table)
    face = _check_face(faces, face_id) if face_id is not None else main_face_id(faces)
    title = _title(table, "Action units", face, several=faces["face_id"].nunique() > 1)
    size = (WIDE[0], max(WIDE[1], 1.0 + 0.25 * len(aus)))
    if face is None or not aus:
        return _save_empty(path, size, title)
    slots, xlabel = _timeline(table)
    values = _face_series(faces, face, aus, slots)[aus].to_numpy(float).T
    fig = _figure(size)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=_MISSING)
    mesh = ax.pcolormesh(_edges(slots["x"].to_numpy()), np.arange(len(aus) + 1), np.ma.masked_invalid(values),
                         cmap=cmap, vmin=0, vmax=1, shading="flat")
    ax.set_yticks(np.arange(len(aus)) + 0.5, [f"{a} {FACS_NAMES.get(a, '')}".rstrip() for a in aus])
    ax.invert_yaxis()
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, label="probability", pad=0.015, fraction=0.04, ticks=[0, 0.25, 0.5, 0.75, 1])
    return _save(fig, path)


@_styled
def plot_expression_over_time(table: pd.DataFrame, path: PathLike, *, face_id: int | None = None) -> Path:
    """The expression probabilities of one face (default: the face seen most) as stacked areas over time."""
    faces = _faces(table)
    names = _expr_columns(table)
    face = _check_face(faces, face_id) if face_id is not None else main_face_id(faces)
    title = _title(table, "Expressions", face, several=faces["face_id"].nunique() > 1)
    if face is None or not names:
        return _save_empty(path, WIDE, title)
    slots, xlabel = _timeline(table)
    probs = _face_series(faces, face, names, slots)[names].to_numpy(float)
    edges = _edges(slots["x"].to_numpy())
    x = np.column_stack([edges[:-1], edges[1:]]).ravel()  # each frame a flat step as wide as its cell
    tops = np.repeat(np.cumsum(probs, axis=1), 2, axis=0)
    fig = _figure(WIDE)
    ax = fig.subplots()
    bottom = np.where(np.isnan(tops[:, 0]), np.nan, 0.0)
    for k, name in enumerate(names):
        ax.fill_between(x, bottom, tops[:, k], color=EXPR_COLOURS[name], lw=0, label=name)
        bottom = tops[:, k]
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)


def plot_all(table: pd.DataFrame, out_dir: PathLike, stem: str) -> list[Path]:
    """Write the figures that apply to ``table`` as ``<out_dir>/<stem>_{va,circumplex,aus,expressions}.png``.

    The over-time figures need one video with more than one analysed frame; the AU and expression
    figures show the face seen in most frames. A table without any face gets no figures."""
    faces = _faces(table)
    if faces.empty:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not _is_video_sequence(table):
        return [plot_circumplex(table, out / f"{stem}_circumplex.png")]
    return [plot_va_over_time(table, out / f"{stem}_va.png"),
            plot_circumplex(table, out / f"{stem}_circumplex.png"),
            plot_au_heatmap(table, out / f"{stem}_aus.png"),
            plot_expression_over_time(table, out / f"{stem}_expressions.png")]


# --- the table ------------------------------------------------------------------------------------

def _faces(table: pd.DataFrame) -> pd.DataFrame:
    """The rows where a face was analysed."""
    return table[pd.to_numeric(table["success"], errors="coerce").fillna(0).to_numpy() > 0]


def _au_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if _AU_COLUMN.match(c)]


def _expr_columns(table: pd.DataFrame) -> list[str]:
    return [name for name in EXPR_NAMES if name in table.columns]


def _check_face(faces: pd.DataFrame, face_id: int) -> int:
    known = sorted(int(i) for i in faces["face_id"].unique())
    if int(face_id) not in known:
        raise ValueError(f"face_id {face_id} has no analysed rows; faces in this table: {known}")
    return int(face_id)


def _is_video_sequence(table: pd.DataFrame) -> bool:
    """One video with more than one analysed frame."""
    frames = pd.to_numeric(table["frame"], errors="coerce")
    return table["input"].nunique() == 1 and (frames > 0).all() and frames.nunique() > 1


def _timeline(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """One row per analysed frame or image (keys ``input``, ``frame``) with its x position, and the x label."""
    slots = table[["input", "frame", "timestamp"]].drop_duplicates(["input", "frame"])
    frames = pd.to_numeric(slots["frame"], errors="coerce").to_numpy(float)
    times = pd.to_numeric(slots["timestamp"], errors="coerce").to_numpy(float)
    if _is_video_sequence(table) or (len(slots) == 1 and frames[0] > 0):
        order = np.argsort(frames, kind="stable")
        slots, frames, times = slots.iloc[order], frames[order], times[order]
        x, label = (times, "time (s)") if np.isfinite(times).all() else (frames, "frame")
    else:
        x, label = np.arange(len(slots), dtype=float), "image" if (frames < 0).all() else "row"
    return slots[["input", "frame"]].assign(x=x).reset_index(drop=True), label


def _face_series(faces: pd.DataFrame, face_id: int, columns: Sequence[str], slots: pd.DataFrame) -> pd.DataFrame:
    """``columns`` of one face aligned to ``slots``: NaN where the face was not seen."""
    rows = faces.loc[faces["face_id"] == face_id, ["input", "frame", *columns]].drop_duplicates(["input", "frame"])
    rows = rows.astype({c: float for c in columns})
    return slots.merge(rows, on=["input", "frame"], how="left")


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges around sorted positions: halfway between neighbours, half a step beyond the ends."""
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mids = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mids[0] - x[0])], mids, [x[-1] + (x[-1] - mids[-1])]])


def _title(table: pd.DataFrame, what: str, face: int | None, *, several: bool = True) -> str:
    inputs = table["input"].unique()
    images = (pd.to_numeric(table["frame"], errors="coerce") < 0).all()
    source = Path(str(inputs[0])).name if len(inputs) == 1 else f"{len(inputs)} {'images' if images else 'files'}"
    return f"{what}: {drawable(source)}" + (f", face {face}" if face is not None and several else "")


@functools.lru_cache(maxsize=1)
def _font_characters() -> frozenset[int]:
    """The code points the plots' font can draw (matplotlib's default, DejaVu Sans, has no CJK, for one)."""
    from matplotlib import font_manager, ft2font

    path = font_manager.findfont(font_manager.FontProperties())
    return frozenset(ft2font.FT2Font(path).get_charmap())


def drawable(text: str) -> str:
    """``text`` with each character the font cannot draw as ``?``: a file name in any script titles its
    plot without matplotlib's missing-glyph warnings (the full name is in the table)."""
    known = _font_characters()
    return "".join(c if ord(c) in known or c.isspace() else "?" for c in text)


# --- drawing --------------------------------------------------------------------------------------

def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _save_empty(path: PathLike, size: tuple[float, float], title: str) -> Path:
    """A figure that says there is nothing to draw, so a requested file always exists."""
    fig = _figure(size)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no face was analysed in this table", ha="center", va="center", color="0.4", fontsize=11)
    return _save(fig, path)


def _line(ax: Axes, x: np.ndarray, y: np.ndarray, colour: str, label: str) -> None:
    """A line broken where ``y`` is NaN; samples with no neighbour get a dot so they stay visible."""
    ax.plot(x, y, color=colour, lw=1.4, label=label)
    present = np.isfinite(y)
    alone = present & ~np.r_[False, present[:-1]] & ~np.r_[present[1:], False]
    ax.plot(x[alone], y[alone], "o", color=colour, ms=3)


def _circumplex_guides(ax: Axes) -> None:
    """Unit circle, the two axes through the origin, and the quadrants named."""
    ax.add_patch(Circle((0, 0), 1, fill=False, color="0.55", lw=1, zorder=1))
    ax.axhline(0, color="0.75", lw=0.8, zorder=1)
    ax.axvline(0, color="0.75", lw=0.8, zorder=1)
    for (x, y), text in {(-1.1, 1.1): "tense, angry", (1.1, 1.1): "excited, happy",
                         (-1.1, -1.1): "sad, tired", (1.1, -1.1): "calm, content"}.items():
        ax.text(x, y, text, ha="left" if x < 0 else "right", va="top" if y > 0 else "bottom",
                color="0.5", fontsize=8, style="italic")
    ax.set_xlim(-1.12, 1.12)
    ax.set_ylim(-1.12, 1.12)
    ax.set_aspect("equal")
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_xlabel("valence (negative → positive)")
    ax.set_ylabel("arousal (calm → excited)")


def face_labels(faces: pd.DataFrame) -> list[str]:
    """``#<face_id>`` per face (the id drawn on the annotated image), prefixed with the image's name
    where the faces come from several images."""
    several = faces["input"].nunique() > 1
    return [f"{Path(str(i)).stem} #{int(f)}" if several else f"#{int(f)}"
            for i, f in zip(faces["input"], faces["face_id"])]


LABEL_POINTS = 7  # font size of the circumplex's face labels


def _label_faces(ax: Axes, faces: pd.DataFrame) -> None:
    """Name each point of a circumplex of still images, so each face can be found on its image; a label
    that would overlap one already placed (faces with nearly the same valence and arousal) moves down or
    up a line at a time, with a thin line to its point."""
    points = faces[["valence", "arousal"]].to_numpy(dtype=float)
    offsets = label_offsets(points, face_labels(faces), ax.transData.transform, ax.figure.dpi)
    for (v, a), text, (dx, dy) in zip(points, face_labels(faces), offsets):
        moved = dy != LABEL_POINTS / 2 + 2
        ax.annotate(text, (v, a), xytext=(dx, dy), textcoords="offset points", fontsize=LABEL_POINTS, color="0.2",
                    zorder=4, va="center", arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if moved else None)


def label_offsets(points: np.ndarray, texts: Sequence[str], to_pixels: Callable[[np.ndarray], np.ndarray],
                  dpi: float) -> list[tuple[float, float]]:
    """Each label's offset from its point in typographic points: right of and a little above it, or the
    nearest line below or above where its box overlaps no label placed before it (highest points first)."""
    line = LABEL_POINTS * 1.3
    width = [0.62 * LABEL_POINTS * len(t) for t in texts]  # DejaVu Sans' mean advance is about 0.6 em
    at = to_pixels(points) * 72.0 / dpi  # the points' places, in typographic points
    placed: list[tuple[float, float, float, float]] = []
    offsets: list[tuple[float, float]] = [(0.0, 0.0)] * len(texts)
    for i in sorted(range(len(texts)), key=lambda i: -at[i][1]):
        for k in (0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5):
            dx, dy = 4.0, LABEL_POINTS / 2 + 2 + k * line
            x, y = at[i][0] + dx, at[i][1] + dy
            box = (x, y - line / 2, x + width[i], y + line / 2)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        offsets[i] = (dx, dy)
    return offsets


def _marker_style(n: int) -> tuple[float, float]:
    """Marker area and opacity for ``n`` points: smaller and more transparent as points crowd."""
    if n > 2000:
        return 8.0, 0.35
    if n > 300:
        return 14.0, 0.5
    return 36.0, 0.85
