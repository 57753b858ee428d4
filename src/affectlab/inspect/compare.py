"""``affectlab compare``: evaluated runs side by side, in the form of the SMM paper's Tables 1, 3 and 4.

A run is the scores dict of :func:`affectlab.metrics.multitask_scores` (the JSON of ``affectlab
evaluate --json`` and ``affectlab score --json``), or a checkpoint evaluated on labelled data here
through :func:`affectlab.train.evaluate.evaluate`, the function behind ``affectlab evaluate``, so
the numbers are the same. Rows: labelled counts, per-AU F1 and their mean (F1-AU), per-class F1,
macro F1 (F1-EXPR) and accuracy, CCC of valence and arousal (CCC-V, CCC-A), and the P scores
(SMM eq. 8); a score row's best value is starred when no other run ties it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.errors import DataError
from affectlab.jsonfile import read_json
from affectlab.models import load_model
from affectlab.train.evaluate import evaluate


@dataclass(frozen=True)
class Run:
    """One column of the comparison: a short name and its scores."""

    name: str
    scores: dict


@dataclass(frozen=True)
class Row:
    """One metric across runs (None where a run lacks it); ``rank``: whether higher is better is meaningful."""

    section: str
    metric: str
    values: list[float | None]
    rank: bool = True


def read_scores(path: str | os.PathLike[str]) -> dict:
    """The scores of an evaluation JSON (``evaluate --json``, ``score --json``); DataError if it is not one."""
    scores = read_json(path)
    if not isinstance(scores, dict) or not isinstance(scores.get("n"), dict):
        raise DataError(path, 'not an evaluation JSON (expected the scores of "affectlab evaluate --json" '
                              'or "affectlab score --json", with an "n" object)')
    return scores


def evaluate_checkpoint(path: str | os.PathLike[str], samples: pd.DataFrame, *,
                        au_thresholds: np.ndarray | None = None, batch_size: int = 128, device: str = "cpu") -> dict:
    """A checkpoint's scores on a labelled table, exactly as ``affectlab evaluate`` computes them."""
    model = load_model(path, device=device)
    return evaluate([model], samples, au_thresholds=au_thresholds, batch_size=batch_size, device=device).scores


def run_names(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Short distinct column names: each path's stem, with as many parent folders as it takes to tell
    the paths apart (``runs/smm/eval.json`` and ``runs/mss/eval.json`` become ``smm/eval``, ``mss/eval``);
    the suffix stays where only it differs (``smm.json``, ``smm.safetensors``)."""
    for parts in ([Path(p).with_suffix("").parts for p in paths], [Path(p).parts for p in paths]):
        for depth in range(1, max(len(p) for p in parts) + 1):
            names = ["/".join(p[-depth:]) for p in parts]
            if len(set(names)) == len(names):
                return names
    return [str(p) for p in paths]


def _get(scores: dict, *keys: str) -> float | None:
    value: object = scores
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, int) else float(value)


def _names(runs: Sequence[Run], task: str) -> list[str]:
    """Per-AU or per-class names across runs, in first-seen order."""
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.scores.get(task, {}).get("f1", {})))
    return list(seen)


def comparison_rows(runs: Sequence[Run]) -> list[Row]:
    """Every metric that at least one run has, in table order."""
    spec: list[tuple[str, str, tuple[str, ...], bool]] = [
        ("labelled rows", task.upper(), ("n", task), False) for task in ("au", "expr", "va")]
    spec += [("AU", f"F1 {name}", ("au", "f1", name), True) for name in _names(runs, "au")]
    spec += [("AU", "F1-AU (mean)", ("au", "f1_mean"), True), ("AU", "accuracy", ("au", "accuracy"), True)]
    spec += [("EXPR", f"F1 {name}", ("expr", "f1", name), True) for name in _names(runs, "expr")]
    spec += [("EXPR", "F1-EXPR (macro)", ("expr", "f1_macro"), True),
             ("EXPR", "accuracy", ("expr", "accuracy"), True),
             ("VA", "CCC-V", ("va", "ccc_valence"), True), ("VA", "CCC-A", ("va", "ccc_arousal"), True)]
    spec += [("P (eq. 8)", key, (key,), True) for key in ("P_AU", "P_EXPR", "P_VA", "P_MTL")]
    rows = [Row(section, metric, [_get(r.scores, *keys) for r in runs], rank) for section, metric, keys, rank in spec]
    return [row for row in rows if any(v is not None for v in row.values)]


def _cell(value: float | None, metric_is_count: bool, best: bool) -> str:
    if value is None:
        return "- "
    text = str(int(value)) if metric_is_count else f"{value:.4f}"
    return text + ("*" if best else " ")


def format_comparison(runs: Sequence[Run]) -> str:
    """A plain-text table: one column per run, one row per metric, grouped by task; a unique best starred."""
    rows = comparison_rows(runs)
    if not rows:
        return "no scores to compare"
    cells = []
    for row in rows:
        present = [v for v in row.values if v is not None]
        top = max(present) if row.rank and len(present) > 1 and present.count(max(present)) == 1 else None
        cells.append([_cell(v, not row.rank, v is not None and v == top) for v in row.values])
    label_width = max(len(r.metric) for r in rows) + 2
    widths = [max(len(runs[i].name), *(len(c[i]) for c in cells)) for i in range(len(runs))]
    lines = [" " * label_width + "  ".join(r.name.rjust(w + 1) for r, w in zip(runs, widths))]
    section = None
    for row, cell in zip(rows, cells):
        if row.section != section:
            section = row.section
            lines.append(section)
        lines.append(f"  {row.metric}".ljust(label_width) + "  ".join(c.rjust(w + 1) for c, w in zip(cell, widths)))
    return "\n".join(lines)


def comparison_json(runs: Sequence[Run]) -> dict:
    """``{"runs": [names], "rows": [{"section", "metric", "values": [...]}]}``; null where a run lacks a metric."""
    return {"runs": [r.name for r in runs],
            "rows": [{"section": r.section, "metric": r.metric, "values": r.values} for r in comparison_rows(runs)]}
