"""Pseudo labels for rows that lack them (prior-aided streaming paper §3.4, "Pseudo Label").

Two strategies, both pure functions of a sample table:

- rules: "some AUs mostly indicate the same expression classes ... we conclude these rules from the
  training set" — an AU pattern seen at least ``min_support`` times among rows labelled for both AU
  and EXPR, whose most frequent expression has a share of at least ``min_confidence``, labels the
  rows that have that exact pattern and no expression;
- teacher: "we filter them with a high confidence value by model prediction results" — a teacher's
  expression becomes the label where its softmax maximum reaches ``threshold`` (0.8 in §3.4); an AU
  becomes 1 where its sigmoid reaches ``threshold`` and 0 where it is at most 1 - ``threshold``.

Only missing labels are filled; ground truth is never overwritten.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.inference.outputs import au_probabilities, expr_probabilities
from affectlab.labels import LabelSchema


def mine_au_expr_rules(samples: pd.DataFrame, schema: LabelSchema, min_support: int = 20,
                       min_confidence: float = 0.8) -> dict[tuple[int, ...], int]:
    """AU pattern (0/1 per schema AU) -> expression id, from rows labelled for every AU and for EXPR."""
    aus = list(schema.au_names)
    both = samples[samples[aus].notna().all(axis=1) & (samples["expr"] >= 0)]
    if both.empty:
        return {}
    patterns = both[aus].astype(np.int64)
    counts = patterns.assign(expr=both["expr"].to_numpy()).value_counts().rename("n").reset_index()
    totals = counts.groupby(aus)["n"].transform("sum")
    best = counts[counts["n"] == counts.groupby(aus)["n"].transform("max")].drop_duplicates(aus)
    best = best[(totals[best.index] >= min_support) & (best["n"] / totals[best.index] >= min_confidence)]
    return {tuple(int(v) for v in row[aus]): int(row["expr"]) for _, row in best.iterrows()}


def apply_rules(samples: pd.DataFrame, schema: LabelSchema,
                rules: dict[tuple[int, ...], int]) -> tuple[pd.DataFrame, int]:
    """Label rows with a complete AU pattern that has a rule and no expression; returns (table, rows labelled)."""
    aus = list(schema.au_names)
    target = samples[aus].notna().all(axis=1) & (samples["expr"] < 0)
    if not rules or not target.any():
        return samples, 0
    keys = samples.loc[target, aus].astype(np.int64).apply(tuple, axis=1)
    found = keys.map(rules).dropna().astype(np.int64)
    out = samples.copy()
    out.loc[found.index, "expr"] = found.to_numpy()
    return out, len(found)


def teacher_labels(samples: pd.DataFrame, schema: LabelSchema, au_logits: np.ndarray, expr_logits: np.ndarray,
                   threshold: float = 0.8,
                   tasks: tuple[str, ...] = ("expr", "au")) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fill missing EXPR / AU labels from a teacher's confident outputs; returns (table, labels added per task)."""
    out = samples.copy()
    added = {}
    if "expr" in tasks:
        probs = expr_probabilities(expr_logits)
        take = (out["expr"].to_numpy() < 0) & (probs.max(axis=1) >= threshold)
        out.loc[take, "expr"] = probs.argmax(axis=1)[take]
        added["expr"] = int(take.sum())
    if "au" in tasks:
        aus = list(schema.au_names)
        p = au_probabilities(au_logits)
        values = out[aus].to_numpy(dtype=np.float64)
        confident = np.where(p >= threshold, 1.0, np.where(p <= 1 - threshold, 0.0, np.nan))
        fill = np.isnan(values) & ~np.isnan(confident)
        out[aus] = np.where(fill, confident, values)
        added["au"] = int(fill.sum())
    return out, added
