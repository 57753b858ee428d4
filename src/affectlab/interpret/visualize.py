"""``affectlab visualize``: the SMM paper's look inside a model (§7, Figures 5-6), for any model and data.

1. A pool of up to ``max_rows`` rows (drawn at random, seeded) goes through the model once: predictions and
   every named feature (:mod:`affectlab.interpret.features`). The per-AU F1 in Figure 5's titles is the
   model's F1 on this pool, scored by :func:`affectlab.scoring.score_tables` like ``evaluate``.
2. Each panel draws up to ``per_class`` points of each class from the pool (AU absent/present;
   expression; for VA the expression classes too, unlabelled ones as a class of their own) and embeds
   its feature space in 2-D with t-SNE. Panels of the same space and rows share one embedding, so in
   SMM's shared message space Figure 6(a), (c) and (d) show the same points, as in the paper.
3. Written to the output folder: ``sign_vehicle_spaces.png`` (Fig. 5), ``message_space_expr.png``
   (Fig. 6a), ``message_space_va.png`` (Fig. 6c-d), ``coordinates.csv`` (every panel's 2-D points
   with their labels, to redraw elsewhere) and ``summary.json`` (F1s, fits, the V-A angle, scores).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from affectlab.errors import AffectlabError
from affectlab.interpret.embedding import (Ellipse, angle_between, balanced_sample, covariance_ellipse, gaussian_fit,
                                         linear_fit, tsne_2d)
from affectlab.interpret.features import Extraction, Spaces, extract, feature_spaces, require_single_face
from affectlab.interpret.figures import (AUPanel, expression_figure, save_png, sign_vehicle_figure,
                                       valence_arousal_figure)
from affectlab.jsonfile import write_json
from affectlab.models import AffectModel
from affectlab.scoring import score_tables
from affectlab.models.meta import InputSpec

COORDINATE_COLUMNS: tuple[str, ...] = ("panel", "feature", "path", "source", "x", "y", "au", "expr", "valence",
                                       "arousal")
MIN_POINTS = 4  # t-SNE's minimum; fewer points make no panel


@dataclass
class Panel:
    """One drawn embedding: its name (an AU, ``expr`` or ``va``), the feature it embeds (``sign[AU1]``,
    ``message``), the pool rows it shows and their 2-D coordinates."""

    name: str
    feature: str
    rows: np.ndarray
    xy: np.ndarray


@dataclass
class VisualizeReport:
    """What was written, what could not be drawn and why, and the numbers behind the figures."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def model_spaces(model: AffectModel) -> Spaces:
    """The model's spaces, from one forward pass on a blank face (fails fast, before any extraction)."""
    require_single_face(model)
    blank = model.example_input(InputSpec.of(model).size).to(next(model.parameters()).device)
    with torch.no_grad():
        return feature_spaces(model(blank).features)


def sample_pool(samples: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """Up to ``max_rows`` rows drawn at random (seeded), in their table order."""
    if len(samples) <= max_rows:
        return samples.reset_index(drop=True)
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), max_rows, replace=False))
    return samples.iloc[keep].reset_index(drop=True)


def panel_rows(labelled: np.ndarray, classes: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Pool rows of a panel: among ``labelled`` rows, up to ``per_class`` of each class."""
    candidates = np.flatnonzero(labelled)
    return candidates[balanced_sample(classes[candidates], per_class, seed)]


def plan_panels(extraction: Extraction, spaces: Spaces, schema_aus: tuple[str, ...], per_class: int,
                seed: int) -> tuple[list[tuple[str, str, np.ndarray, np.ndarray]], list[str]]:
    """Every panel to embed as (name, feature label, pool rows, feature vectors), and the skipped ones."""
    s = extraction.samples
    jobs, skipped = [], []

    def add(name: str, feature: str, rows: np.ndarray, vectors: np.ndarray, what: str) -> None:
        if len(rows) >= MIN_POINTS:
            jobs.append((name, feature, rows, vectors[rows]))
        else:
            skipped.append(f"{name}: {len(rows)} rows {what}; t-SNE needs at least {MIN_POINTS}")

    if spaces.sign is None:
        skipped.append("sign-vehicle spaces: the model has no per-AU features")
    elif s[list(schema_aus)].isna().all(axis=None):
        skipped.append("sign-vehicle spaces: no row is labelled for any AU")
    else:
        sign = extraction.features[spaces.sign]
        for h, au in enumerate(schema_aus):
            values = s[au].to_numpy(dtype=float)
            rows = panel_rows(~np.isnan(values), np.nan_to_num(values), per_class, seed)
            add(au, f"{spaces.sign}[{au}]", rows, sign[:, h], f"labelled for {au}")
    expr = s["expr"].to_numpy()
    add("expr", spaces.expr, panel_rows(expr >= 0, expr, per_class, seed), extraction.features[spaces.expr],
        "labelled with an expression")
    va = s[["valence", "arousal"]].to_numpy(dtype=float)
    add("va", spaces.va, panel_rows(~np.isnan(va).any(axis=1), expr, per_class, seed),
        extraction.features[spaces.va], "labelled with valence and arousal")
    return jobs, skipped


def embed_panels(jobs: list[tuple[str, str, np.ndarray, np.ndarray]], seed: int, perplexity: float,
                 progress: bool, skipped: list[str]) -> dict[str, Panel]:
    """t-SNE of every panel; panels of the same feature and rows reuse one embedding. A panel whose
    points all coincide (a collapsed space) is added to ``skipped``."""
    cache: dict[tuple[str, bytes], np.ndarray] = {}
    panels = {}
    for name, feature, rows, vectors in tqdm(jobs, desc="t-SNE", unit="panel", disable=not progress):
        key = (feature, rows.tobytes())
        if key not in cache:
            try:
                cache[key] = tsne_2d(vectors.reshape(len(vectors), -1), seed=seed, perplexity=perplexity)
            except ValueError as e:
                skipped.append(f"{name}: {e}")
                continue
        panels[name] = Panel(name, feature, rows, cache[key])
    return panels


def coordinates_table(panels: dict[str, Panel], samples: pd.DataFrame, au_names: tuple[str, ...]) -> pd.DataFrame:
    """Long table, one row per point per panel: ``au`` is an AU panel's presence (empty elsewhere)."""
    parts = []
    for p in panels.values():
        rows = samples.iloc[p.rows]
        parts.append(pd.DataFrame({
            "panel": p.name, "feature": p.feature, "path": rows["path"].to_numpy(),
            "source": rows["source"].to_numpy(), "x": p.xy[:, 0], "y": p.xy[:, 1],
            "au": rows[p.name].to_numpy(dtype=float) if p.name in au_names else np.nan,
            "expr": rows["expr"].to_numpy(), "valence": rows["valence"].to_numpy(),
            "arousal": rows["arousal"].to_numpy(),
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COORDINATE_COLUMNS))


def class_ellipses(xy: np.ndarray, expr: np.ndarray, n_std: float = 1.0) -> dict[int, Ellipse]:
    """Figure 6(a): each class's covariance ellipse (classes with at least 3 points)."""
    return {int(k): covariance_ellipse(*gaussian_fit(xy[expr == k]), n_std=n_std)
            for k in np.unique(expr) if (expr == k).sum() >= 3}


def visualize(model: AffectModel, samples: pd.DataFrame, out: str | Path, *, per_class: int = 200,
              max_rows: int = 4000, seed: int = 0, perplexity: float = 30.0, au_thresholds: np.ndarray | None = None,
              batch_size: int = 64, device: str = "cpu", progress: bool = False) -> VisualizeReport:
    """Draw the feature-space figures of a loaded checkpoint on a labelled sample table into ``out``.

    ``au_thresholds`` (n_au,) decide AU presence for the F1 titles, 0.5 by default, as in ``evaluate``."""
    if per_class < 1 or max_rows < 1:
        raise AffectlabError("per_class and max_rows must be at least 1")
    spaces = model_spaces(model)
    schema = model.schema
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    extraction = extract(model, sample_pool(samples, max_rows, seed), batch_size=batch_size, device=device,
                         progress=progress)
    scores = score_tables(extraction.predictions, extraction.samples, schema, au_thresholds=au_thresholds)
    jobs, skipped = plan_panels(extraction, spaces, schema.au_names, per_class, seed)
    panels = embed_panels(jobs, seed, perplexity, progress, skipped)
    if not panels:
        raise AffectlabError("nothing to draw: " + "; ".join(skipped))
    report = VisualizeReport(skipped=skipped)
    report.summary = {"rows": len(extraction.samples), "unreadable": len(extraction.unreadable),
                      "spaces": {"sign": spaces.sign, "expr": spaces.expr, "va": spaces.va},
                      "points": {name: len(p.rows) for name, p in panels.items()}, "scores": scores}
    s = extraction.samples

    au_panels = [AUPanel(au, panels[au].xy, s[au].to_numpy()[panels[au].rows].astype(int),
                         scores.get("au", {}).get("f1", {}).get(au, float("nan")))
                 for au in schema.au_names if au in panels]
    if au_panels:
        report.written.append(save_png(sign_vehicle_figure(au_panels), out / "sign_vehicle_spaces.png"))
        report.summary["au_f1"] = {p.name: p.f1 for p in au_panels}
    if "expr" in panels:
        p = panels["expr"]
        expr = s["expr"].to_numpy()[p.rows]
        fig = expression_figure(p.xy, expr, schema.expr_names, class_ellipses(p.xy, expr),
                                f"{p.feature} space by expression (SMM Fig. 6a)")
        report.written.append(save_png(fig, out / "message_space_expr.png"))
    if "va" in panels:
        p = panels["va"]
        va = s[["valence", "arousal"]].to_numpy(dtype=float)[p.rows]
        fits = {"valence": linear_fit(p.xy, va[:, 0]), "arousal": linear_fit(p.xy, va[:, 1])}
        angle = angle_between(fits["valence"].gradient, fits["arousal"].gradient)
        fig = valence_arousal_figure(p.xy, va[:, 0], va[:, 1], fits, angle,
                                     f"{p.feature} space (SMM Fig. 6c-d)")
        report.written.append(save_png(fig, out / "message_space_va.png"))
        report.summary["va"] = {**{f"{k}_gradient": f.gradient.tolist() for k, f in fits.items()},
                                **{f"{k}_r2": f.r2 for k, f in fits.items()}, "angle_deg": angle}
    coordinates_table(panels, s, schema.au_names).to_csv(out / "coordinates.csv", index=False)
    report.written.append(out / "coordinates.csv")
    summary_path = out / "summary.json"
    write_json(summary_path, report.summary)
    report.written.append(summary_path)
    return report

