"""``affectlab compare``: evaluated runs side by side, in the form of the SMM paper's Tables 1, 3 and 4.

A run is the scores dict of :func:`affectlab.metrics.multitask_scores` (the JSON of ``affectlab
evaluate --json`` and ``affectlab score --json``), a checkpoint evaluated on labelled data here
through :func:`affectlab.inference.batch.evaluate`, the function behind ``affectlab evaluate``, so
the numbers are the same, or a training run (its folder or results.json): the validation scores of
its final model, or that model evaluated on the labelled data given. Rows: labelled counts, per-AU
F1 and their mean (F1-AU), per-class F1, macro F1 (F1-EXPR) and accuracy, CCC of valence and arousal
(CCC-V, CCC-A), and the P scores (SMM eq. 8); a score row's best value is starred when no other run
ties it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.errors import AffectlabError, DataError
from affectlab.inference.batch import evaluate
from affectlab.jsonfile import read_json
from affectlab.models import load_model


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


def evaluate_checkpoint(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], samples: pd.DataFrame, *,
                        au_thresholds: np.ndarray | None = None, batch_size: int = 128, device: str = "cpu") -> dict:
    """A checkpoint's (or an ensemble's) scores on a labelled table, exactly as ``affectlab evaluate`` computes them."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    models = [load_model(p, device=device) for p in paths]
    return evaluate(models, samples, au_thresholds=au_thresholds, batch_size=batch_size, device=device).scores



@dataclass
class LabelledData:
    """Where checkpoints are evaluated (``compare --data``): a labelled source, read once per label schema."""

    path: str | os.PathLike[str]
    images: str | os.PathLike[str] | None = None
    split: str | None = None
    thresholds: str | os.PathLike[str] | None = None
    batch_size: int = 128
    device: str = "cpu"
    tables: dict = field(default_factory=dict, repr=False)

    def scores(self, checkpoints: Sequence[str | os.PathLike[str]]) -> dict:
        """The scores of a checkpoint (or an ensemble) on the source, labelled for its schema."""
        from affectlab.data import read_labelled
        from affectlab.models import read_checkpoint_meta
        from affectlab.scoring import load_thresholds

        schema = read_checkpoint_meta(checkpoints[0]).schema
        if schema not in self.tables:
            self.tables[schema] = read_labelled(self.path, images=self.images, split=self.split, schema=schema).samples
        thresholds = load_thresholds(self.thresholds, schema) if self.thresholds else None
        return evaluate_checkpoint(checkpoints, self.tables[schema], au_thresholds=thresholds,
                                   batch_size=self.batch_size, device=self.device)


def run_scores(path: str | os.PathLike[str], data: LabelledData | None = None) -> dict:
    """One column of the comparison: an evaluation JSON, a checkpoint on ``data``, or a training run
    (its final model on ``data``, else its validation scores)."""
    if is_training_run(path):
        results, folder = read_run(path)
        if data is not None:
            return data.scores(final_checkpoints(results, folder))
        return final_scores(results, folder)
    if Path(path).suffix.lower() == ".json":
        return read_scores(path)
    if data is None:
        raise AffectlabError(f"{path}: a checkpoint is evaluated on labelled data: give --data SOURCE")
    return data.scores([path])


def compare_runs(paths: Sequence[str | os.PathLike[str]], data: LabelledData | None = None) -> list[Run]:
    """The runs named by ``paths``, each with its scores; every path and the need for ``data`` is checked
    before the first model loads."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise DataError(missing[0], "no such file or folder")
    checkpoints = [p for p in paths if Path(p).suffix.lower() != ".json" and not is_training_run(p)]
    if checkpoints and data is None:
        raise AffectlabError(f"{checkpoints[0]}: a checkpoint is evaluated on labelled data: give --data SOURCE")
    return [Run(name, run_scores(path, data)) for name, path in zip(run_names(paths), paths)]

def is_training_run(path: str | os.PathLike[str]) -> bool:
    """A run folder, or a JSON file holding the ``members`` of results.json."""
    p = Path(path)
    if p.is_dir():
        return True
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    content = read_json(p)
    return isinstance(content, dict) and "members" in content


def read_run(path: str | os.PathLike[str]) -> tuple[dict, Path]:
    """(results.json of a training run, its folder), given the folder or the file."""
    p = Path(path)
    file = p / "results.json" if p.is_dir() else p
    if not file.is_file():
        raise DataError(p, "a folder without results.json: not a finished training run (a stopped one finishes "
                           "with affectlab train ... --resume)")
    results = read_json(file)
    if not isinstance(results, dict) or not isinstance(results.get("members"), dict):
        raise DataError(file, "not the results.json of a training run (no members)")
    return results, file.parent


def final_checkpoints(results: dict, folder: Path) -> list[Path]:
    """The run's final model(s), found where the run wrote them or, if the run folder moved, inside it."""
    final = results.get("final") or [m["path"] for m in list(results["members"].values())[-1:] if "path" in m]
    if not final:
        raise DataError(folder, "the run names no final model")
    return [Path(p) if Path(p).is_file() else folder / Path(p).name for p in final]


def final_scores(results: dict, folder: Path) -> dict:
    """The validation scores of the run's final model: its ensemble's or its member's, all sources together."""
    final = [Path(p).name for p in results.get("final") or []]
    chosen = next((e for e in results.get("ensembles", {}).values()
                   if [Path(m).name for m in e.get("members", [])] == final), None)
    if chosen is None:
        chosen = _final_member(results, final, folder)
    validation = chosen.get("validation") or {}
    if not validation:
        raise DataError(folder, "the run's final model has no validation scores; give --data SOURCE to evaluate it")
    key = "all" if "all" in validation else next(iter(validation))
    if len(validation) > 1 and key != "all":
        raise DataError(folder, f"the final model was validated on several sources ({', '.join(validation)})")
    return validation[key]


def _final_member(results: dict, final: list[str], folder: Path) -> dict:
    """The member behind the final model: by its path, or for ``model.safetensors`` (a copy) by its metadata."""
    members = results["members"]
    by_path = [m for m in members.values() if Path(m.get("path", "")).name in final]
    if len(by_path) == 1:
        return by_path[0]
    if final:
        from affectlab.models import read_checkpoint_meta

        (path,) = final_checkpoints(results, folder)[:1]
        name = read_checkpoint_meta(path).extra.get("member") if path.is_file() else None
        if name in members:
            return members[name]
    return list(members.values())[-1]


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
