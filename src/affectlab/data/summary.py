"""What a sample table holds, per task: a JSON-ready dict for tools and a plain-text report for people.

Counts are what a user checks first after pointing affectlab at a dataset: how many images survived,
what was skipped and why, and how balanced each task's labels are.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.data.table import SampleTable, soft_columns
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema


def summarize(table: SampleTable, schema: LabelSchema = DEFAULT_SCHEMA) -> dict:
    """Counts per task (plain ints/floats, None where undefined); "labelled" = rows with any label of the task.

    AU positives count values >= 0.5, i.e. the 1s of a label table (and confident positives of a
    probability table); rates are positives over the rows labelled for that AU.
    """
    df = table.samples
    return {
        "images": len(df),
        "videos": int(df["video"][df["video"] != ""].nunique()),
        "sources": {str(k): int(v) for k, v in df["source"].value_counts(sort=False).items()},
        "skipped": {str(k): int(v) for k, v in table.skipped.items()},
        "au": _au(df, schema),
        "expr": _expr(df, schema),
        "va": _va(df, schema),
    }


def format_summary(summary: dict) -> str:
    """The summary as a readable report: counts, skipped reasons, per-AU, per-class and VA statistics."""
    n = summary["images"]
    lines = [f"images: {n}   videos: {summary['videos']}"]
    lines += [f"  from {source}: {count}" for source, count in summary.get("sources", {}).items()]
    skipped = summary["skipped"]
    lines.append(f"skipped: {sum(skipped.values())}" + ("" if skipped else " (none)"))
    lines += [f"  {reason}: {count}" for reason, count in skipped.items()]
    au, expr, va = summary["au"], summary["expr"], summary["va"]
    lines.append(f"AU: {au['labelled']} labelled, {au['missing']} missing")
    if au["labelled"]:
        lines += [f"  {name:<6}{count:>8} positive of {au['labelled_per_au'][name]:>8}  {_pct(au['rates'][name])}"
                  for name, count in au["positives"].items()]
    lines.append(f"EXPR: {expr['labelled']} labelled ({expr['hard']} hard, {expr['soft']} soft), "
                 f"{expr['missing']} missing")
    if expr["hard"]:
        lines += [f"  {name:<10}{count:>8}  {_pct(expr['shares'][name])}" for name, count in expr["counts"].items()]
    lines.append(f"VA: {va['labelled']} labelled, {va['missing']} missing")
    lines += [f"  {dim:<8} mean {s['mean']:+.3f}  std {s['std']:.3f}  min {s['min']:+.3f}  max {s['max']:+.3f}"
              for dim, s in va.items() if isinstance(s, dict) and s["mean"] is not None]
    return "\n".join(lines)


def _au(df: pd.DataFrame, schema: LabelSchema) -> dict:
    values = df[list(schema.au_names)]
    labelled_per_au = values.notna().sum()
    positives = (values >= 0.5).sum()
    labelled = int(values.notna().any(axis=1).sum())
    return {
        "labelled": labelled,
        "missing": len(df) - labelled,
        "labelled_per_au": {a: int(labelled_per_au[a]) for a in schema.au_names},
        "positives": {a: int(positives[a]) for a in schema.au_names},
        "rates": {a: _ratio(positives[a], labelled_per_au[a]) for a in schema.au_names},
    }


def _expr(df: pd.DataFrame, schema: LabelSchema) -> dict:
    hard = df["expr"] >= 0
    soft_cols = [c for c in soft_columns(schema) if c in df]
    soft = df[soft_cols].notna().all(axis=1) if soft_cols else pd.Series(False, index=df.index)
    counts = np.bincount(df["expr"][hard].to_numpy(), minlength=schema.n_expr)
    n_hard = int(hard.sum())
    labelled = int((hard | soft).sum())
    return {
        "labelled": labelled,
        "missing": len(df) - labelled,
        "hard": n_hard,
        "soft": int(soft.sum()),
        "counts": {name: int(counts[i]) for i, name in enumerate(schema.expr_names)},
        "shares": {name: _ratio(counts[i], n_hard) for i, name in enumerate(schema.expr_names)},
    }


def _va(df: pd.DataFrame, schema: LabelSchema) -> dict:
    values = df[list(schema.va_names)]
    labelled = int(values.notna().any(axis=1).sum())
    out: dict = {"labelled": labelled, "missing": len(df) - labelled}
    for dim in schema.va_names:
        v = values[dim].dropna()
        stats = (v.mean(), v.std(ddof=0), v.min(), v.max()) if len(v) else (None,) * 4
        out[dim] = {"labelled": len(v), **{k: None if x is None else float(x)
                                          for k, x in zip(("mean", "std", "min", "max"), stats)}}
    return out


def _ratio(part: float, whole: float) -> float | None:
    return float(part) / float(whole) if whole else None


def _pct(ratio: float | None) -> str:
    return "   -  " if ratio is None else f"{100 * ratio:5.1f}%"
