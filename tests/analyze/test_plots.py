"""affectlab.analyze.plots: every figure from video, image, sparse and empty results tables."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlab.analyze.plots import (
    DPI,
    SQUARE,
    WIDE,
    plot_all,
    plot_au_heatmap,
    plot_circumplex,
    plot_expression_over_time,
    plot_va_over_time,
    label_offsets,
)
from affectlab.analyze.results import finalize, prediction_frame
from affectlab.labels import DEFAULT_SCHEMA, schema

FPS = 25.0


def face_rows(meta: pd.DataFrame, rng: np.random.Generator, phase: float = 0.0, sch=DEFAULT_SCHEMA) -> pd.DataFrame:
    """Successful rows for ``meta`` (one per face) with smooth, plausible predictions."""
    t = np.arange(len(meta)) / 10 + phase
    au = 1 / (1 + np.exp(-3 * np.sin(t[:, None] + np.arange(sch.n_au)[None] * 0.7)))
    logits = np.stack([np.sin(t * (1 + k / 4) + k) * 2 for k in range(sch.n_expr)], axis=1)
    expr = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    va = np.stack([0.8 * np.sin(t), 0.6 * np.cos(1.3 * t)], axis=1) + rng.normal(0, 0.03, (len(meta), 2))
    preds = prediction_frame(sch, au, expr, va.clip(-1, 1), np.full(sch.n_au, 0.5))
    return pd.concat([meta.reset_index(drop=True), preds], axis=1)


def video_table(n: int = 50, gap: range = range(20, 26), sch=DEFAULT_SCHEMA) -> pd.DataFrame:
    """Two faces over ``n`` frames of clip.mp4; no face during ``gap`` (success 0 rows); face 1 leaves at 2/3."""
    rng = np.random.default_rng(0)
    parts = []
    for frame in range(1, n + 1):
        meta = {"input": "clip.mp4", "frame": frame, "timestamp": (frame - 1) / FPS, "confidence": 0.99}
        if frame in gap:
            parts.append(pd.DataFrame([meta | {"face_id": -1, "success": 0, "confidence": 0.0}]))
            continue
        ids = [0, 1] if frame < 2 * n // 3 else [0]
        parts += [pd.DataFrame([meta | {"face_id": i, "success": 1, "x": 10 + 60 * i, "y": 8, "width": 40,
                                        "height": 50}]) for i in ids]
    meta = pd.concat(parts, ignore_index=True)
    faces = meta[meta["success"] == 1]
    rows = [face_rows(faces[faces["face_id"] == i], rng, phase=2.0 * i, sch=sch) for i in (0, 1)]
    table = pd.concat([*rows, meta[meta["success"] == 0]], ignore_index=True).sort_values(["frame", "face_id"])
    return finalize(table.reset_index(drop=True), sch)


def images_table(n: int = 12) -> pd.DataFrame:
    """Still images, one face each, plus one image without a face."""
    meta = pd.DataFrame({"input": [f"img{i:02d}.jpg" for i in range(n)], "frame": -1, "timestamp": math.nan,
                         "face_id": 0, "x": 0.0, "y": 0.0, "width": 50.0, "height": 50.0, "confidence": 1.0,
                         "success": 1})
    empty = pd.DataFrame([{"input": "blank.jpg", "frame": -1, "timestamp": math.nan, "face_id": -1,
                           "confidence": 0.0, "success": 0}])
    rows = face_rows(meta, np.random.default_rng(1), phase=0.3)
    rows["valence"], rows["arousal"] = np.linspace(-0.9, 0.9, n), np.linspace(0.8, -0.7, n)  # spread over the plane
    return finalize(pd.concat([rows, empty], ignore_index=True), DEFAULT_SCHEMA)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


def px(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * DPI), round(size[1] * DPI)


@pytest.fixture(scope="module")
def video() -> pd.DataFrame:
    return video_table()


def test_plot_all_for_a_video_writes_the_four_figures(video, tmp_path):
    paths = plot_all(video, tmp_path / "plots", "clip")
    assert [p.name for p in paths] == ["clip_va.png", "clip_circumplex.png", "clip_aus.png", "clip_expressions.png"]
    sizes = [png_size(p) for p in paths]
    assert sizes[0] == sizes[2] == sizes[3] == px(WIDE) and sizes[1] == px(SQUARE)


def test_plot_all_for_images_draws_only_the_circumplex(tmp_path):
    paths = plot_all(images_table(), tmp_path, "photos")
    assert [p.name for p in paths] == ["photos_circumplex.png"]
    assert png_size(paths[0]) == px(SQUARE)


def test_plot_all_without_faces_writes_nothing(tmp_path):
    table = video_table(n=6, gap=range(1, 7))
    assert plot_all(table, tmp_path / "none", "clip") == [] and not (tmp_path / "none").exists()


@pytest.mark.parametrize("plot", [plot_va_over_time, plot_circumplex, plot_au_heatmap, plot_expression_over_time])
def test_each_figure_survives_empty_single_row_and_nan_tables(plot, tmp_path):
    empty = video_table(n=4, gap=range(1, 5))
    one = video_table(n=1, gap=range(0))
    holes = video_table(n=12, gap=range(0))
    holes.loc[3, ["valence", "AU12", "Happiness"]] = np.nan
    holes.loc[5, "expression"] = None
    for name, table in {"empty": empty, "one": one, "holes": holes}.items():
        assert png_size(plot(table, tmp_path / f"{name}.png")) in (px(WIDE), px(SQUARE))


def test_face_choice_and_unknown_faces(video, tmp_path):
    assert plot_va_over_time(video, tmp_path / "va1.png", face_id=1).is_file()
    assert plot_au_heatmap(video, tmp_path / "aus1.png", face_id=1).is_file()
    with pytest.raises(ValueError, match="face_id 7 has no analysed rows; faces in this table: \\[0, 1\\]"):
        plot_expression_over_time(video, tmp_path / "x.png", face_id=7)


def test_heatmap_grows_with_many_aus_and_tables_read_back_from_csv(tmp_path):
    sch = schema(("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17", "AU20",
                  "AU23", "AU25", "AU26"))
    table = video_table(n=30, gap=range(10, 13), sch=sch)
    table.to_csv(tmp_path / "t.csv", index=False)
    read_back = pd.read_csv(tmp_path / "t.csv")
    width, height = png_size(plot_au_heatmap(read_back, tmp_path / "aus.png"))
    assert width == px(WIDE)[0] and height > px(WIDE)[1]
    assert len(plot_all(read_back, tmp_path, "csv")) == 4


def test_plots_leave_pyplot_and_rcparams_alone(video, tmp_path):
    backend, size = matplotlib.get_backend(), matplotlib.rcParams["font.size"]
    plot_circumplex(video, tmp_path / "c.png")
    assert matplotlib.get_backend() == backend and matplotlib.rcParams["font.size"] == size


def test_figures_show_the_data(video, tmp_path):
    """The heatmap's gap columns are the 'missing' grey, and the plotted columns are not."""
    with Image.open(plot_au_heatmap(video, tmp_path / "aus.png")) as im:
        rgb = np.asarray(im.convert("RGB"))
    grey = (np.abs(rgb.astype(int) - 0xE6).max(axis=2) <= 2)
    columns = grey.sum(axis=0)
    assert columns.max() > 0.5 * rgb.shape[0]  # full-height grey band: the frames without a face
    assert (columns > 0.5 * rgb.shape[0]).sum() < 0.25 * rgb.shape[1]  # ... but only over the 6-frame gap


def test_images_circumplex_names_each_face(monkeypatch, tmp_path):
    """Several faces of still images are told apart: each point carries its image and face id."""
    from affectlab.analyze import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig) or Path(path))
    table = images_table(3)
    plot_circumplex(table, tmp_path / "c.png")
    texts = {t.get_text() for t in drawn[0].axes[0].texts}
    assert {"img00 #0", "img01 #0", "img02 #0"} <= texts
    plot_circumplex(video_table(), tmp_path / "v.png")  # a video's hundred points stay unlabelled
    assert not any("#" in t.get_text() for t in drawn[1].axes[0].texts)


def test_va_over_time_draws_valence_on_top_and_arousal_below(video, tmp_path, monkeypatch):
    """Each panel plots its own column of face 0 (NaN where the face is missing)."""
    import affectlab.analyze.plots as plots

    drawn = {}
    save = plots._save

    def keep(fig, path):
        top, bottom = fig.axes[:2]
        drawn["valence"], drawn["arousal"] = (np.asarray(ax.lines[0].get_ydata(), float) for ax in (top, bottom))
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    plot_va_over_time(video, tmp_path / "va.png", face_id=0)
    face = video[(video["face_id"] == 0) & (video["success"] == 1)]
    for column in ("valence", "arousal"):
        values = drawn[column][~np.isnan(drawn[column])]
        assert np.allclose(np.sort(values), np.sort(face[column].to_numpy(float))), column


def test_circumplex_labels_of_close_faces_do_not_overlap():
    """Five faces of one photo at nearly the same valence and arousal: five labels, no two overlapping."""
    points = np.array([[0.60, 0.20], [0.61, 0.21], [0.59, 0.19], [0.605, 0.2], [-0.4, 0.45]])
    texts = ["#0", "#1", "#2", "#3", "#4"]
    per_unit = 150.0  # pixels per valence unit, about the circumplex's at DPI
    offsets = label_offsets(points, texts, lambda p: p * per_unit, 72.0)
    boxes = [(v * per_unit + dx, a * per_unit + dy - 4.5, v * per_unit + dx + 8, a * per_unit + dy + 4.5)
             for (v, a), (dx, dy) in zip(points, offsets)]  # each "#k" about 8 x 9 points
    assert not any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
                   for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert offsets[4] == (4.0, 5.5) and len(set(offsets[:4])) == 4  # a lone face keeps its place


def test_a_name_in_any_script_titles_a_plot_without_glyph_warnings(tmp_path):
    import warnings

    table = images_table(3).assign(input=["视频 a.jpg", "Zoë.jpg", "b.jpg", "blank.jpg"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_circumplex(table[table["input"] == "视频 a.jpg"], tmp_path / "one.png")
    assert png_size(tmp_path / "one.png") == px(SQUARE)
