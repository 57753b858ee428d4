"""ABAW evaluation metrics as small, pure numpy functions, masked where a label is missing.

Missing labels follow the sample table: AU truth is NaN per entry, EXPR truth is -1 (NaN also
counts as missing), VA truth is NaN. Every metric uses only labelled entries, so a partially
labelled validation set is scored on exactly what it knows.

Scores:
- ABAW3+ (SMM-EmotionNet paper, eq. 8): ``P = (CCC_V + CCC_A)/2 + mean_i F1^EXPR_i + mean_j F1^AU_j``,
  i.e. ``P_MTL = P_VA + P_EXPR + P_AU``.
- ABAW1/2 (teacher-student paper, §5 "evaluation metrics"): AU ``0.5·F1 + 0.5·Acc``,
  EXPR ``0.67·F1 + 0.33·Acc``.

:func:`multitask_scores` is the one entry point that ``affectlab score`` and ``affectlab evaluate``
share; its dict is the JSON contract other tools read. :func:`format_scores` renders it for people.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from affectlab.errors import AffectlabError
from affectlab.labels import LabelSchema

#: Default grid for :func:`tune_au_thresholds`: 0.05, 0.10, ..., 0.95.
THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)


def _nanmean(values: ArrayLike) -> float:
    """Mean of the non-NaN values; NaN (without numpy's warning) when there are none."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else math.nan


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN), NaN where the denominator is 0 (no true, no predicted positives)."""
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def _expr_labelled(expr_true: ArrayLike, expr_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The labelled (truth >= 0, not NaN) pairs of expression ids, as int arrays."""
    t = np.asarray(expr_true, dtype=float).reshape(-1)
    p = np.asarray(expr_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"expression truth has {t.size} rows but prediction has {p.size}")
    keep = t >= 0
    return t[keep].astype(np.int64), p[keep].astype(np.int64)


def _au_arrays(au_true: ArrayLike, au_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(au_true, dtype=float)
    p = np.asarray(au_pred, dtype=float)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"AU truth {t.shape} and prediction {p.shape} must be the same (N, n_au) shape")
    return t, p


def f1_score_binary(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """F1 of the positive class, 2TP / (2TP + FP + FN).

    Undefined, and returned as NaN, when there are neither true nor predicted positives (sklearn's
    ``zero_division=np.nan``; its default would say 0.0). Averages then skip it, as sklearn's
    macro average skips a class absent from both truth and prediction.
    """
    t = np.asarray(y_true).reshape(-1).astype(bool)
    p = np.asarray(y_pred).reshape(-1).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"truth has {t.size} entries but prediction has {p.size}")
    tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
    return float(_f1_from_counts(tp, fp, fn))


def au_f1(au_true: ArrayLike, au_pred: ArrayLike) -> np.ndarray:
    """Per-AU F1 (n_au,), each over the entries where that AU is labelled (NaN truth skipped).

    An AU with labelled entries but neither true nor predicted positives scores 0, as the official
    ABAW evaluation scores it (scikit-learn's ``f1_score`` per AU with its default zero_division,
    averaged over every AU); only an AU with no labelled entry is NaN (skipped by the averages)."""
    t, p = _au_arrays(au_true, au_pred)
    labelled = ~np.isnan(t)
    f1 = np.array([f1_score_binary(t[labelled[:, j], j], p[labelled[:, j], j]) for j in range(t.shape[1])])
    return np.where(np.isnan(f1) & labelled.any(axis=0), 0.0, f1)


def au_accuracy(au_true: ArrayLike, au_pred: ArrayLike) -> float:
    """Total accuracy over all labelled AU entries (the ABAW1/2 "Acc"); NaN when none is labelled."""
    t, p = _au_arrays(au_true, au_pred)
    labelled = ~np.isnan(t)
    return float(np.mean(t[labelled] == p[labelled])) if labelled.any() else math.nan


def expr_f1(expr_true: ArrayLike, expr_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Per-class one-vs-rest F1 (n_classes,) over labelled rows; NaN for a class neither true nor predicted."""
    t, p = _expr_labelled(expr_true, expr_pred)
    return np.array([f1_score_binary(t == c, p == c) for c in range(n_classes)])


def macro_f1(expr_true: ArrayLike, expr_pred: ArrayLike, n_classes: int) -> float:
    """Unweighted mean of :func:`expr_f1` over the classes where it is defined.

    Equals sklearn ``f1_score(average='macro')`` with its default labels (classes present in truth
    or prediction): a class seen only in one of them scores 0, a class seen in neither is skipped.
    """
    return _nanmean(expr_f1(expr_true, expr_pred, n_classes))


def accuracy(expr_true: ArrayLike, expr_pred: ArrayLike) -> float:
    """Fraction of labelled rows predicted right; NaN when no row is labelled."""
    t, p = _expr_labelled(expr_true, expr_pred)
    return float(np.mean(t == p)) if t.size else math.nan


def ccc(x: ArrayLike, y: ArrayLike) -> float:
    """Concordance Correlation Coefficient, as in the ABAW evaluation (streaming paper eq. 5).

    ``CCC = 2·cov(x, y) / (var_x + var_y + (mean_x - mean_y)^2)`` with population (1/n) moments,
    over the pairs where neither value is NaN. NaN when no pair is left or the denominator is 0
    (both constant and equal).
    """
    a = np.asarray(x, dtype=float).reshape(-1)
    b = np.asarray(y, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"CCC needs equal lengths, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size == 0:
        return math.nan
    ma, mb = a.mean(), b.mean()
    cov = np.mean((a - ma) * (b - mb))
    denom = a.var() + b.var() + (ma - mb) ** 2
    return float(2 * cov / denom) if denom > 0 else math.nan


def p_au(au_true: ArrayLike, au_pred: ArrayLike) -> float:
    """P_AU (SMM eq. 8): the mean per-AU F1, (1/12) Σ_j F1^AU_j, over AUs where F1 is defined."""
    return _nanmean(au_f1(au_true, au_pred))


def p_expr(expr_true: ArrayLike, expr_pred: ArrayLike, n_classes: int) -> float:
    """P_EXPR (SMM eq. 8): the macro F1 over expression classes, (1/8) Σ_i F1^EXPR_i."""
    return macro_f1(expr_true, expr_pred, n_classes)


def p_va(va_true: ArrayLike, va_pred: ArrayLike) -> float:
    """P_VA (SMM eq. 8): (CCC_V + CCC_A) / 2, each over its own labelled rows of (N, 2) arrays."""
    t = np.asarray(va_true, dtype=float)
    p = np.asarray(va_pred, dtype=float)
    return (ccc(t[:, 0], p[:, 0]) + ccc(t[:, 1], p[:, 1])) / 2


def p_mtl(va: float, expr: float, au: float) -> float:
    """P_MTL = P_VA + P_EXPR + P_AU, the ABAW3 multi-task score (SMM eq. 8), from the three P scores."""
    return float(va + expr + au)


def abaw2_au_score(au_true: ArrayLike, au_pred: ArrayLike) -> float:
    """ABAW1/2 AU score (teacher-student §5): 0.5·F1 + 0.5·Acc, F1 the mean per-AU F1."""
    return 0.5 * p_au(au_true, au_pred) + 0.5 * au_accuracy(au_true, au_pred)


def abaw2_expr_score(expr_true: ArrayLike, expr_pred: ArrayLike, n_classes: int) -> float:
    """ABAW1/2 EXPR score (teacher-student §5): 0.67·F1 + 0.33·Acc, F1 the macro F1."""
    return 0.67 * macro_f1(expr_true, expr_pred, n_classes) + 0.33 * accuracy(expr_true, expr_pred)


def tune_au_thresholds(au_true: ArrayLike, au_prob: ArrayLike, grid: ArrayLike = THRESHOLD_GRID) -> np.ndarray:
    """Per-AU decision threshold (n_au,) maximising F1 on a validation set.

    An AU is predicted present when ``prob >= threshold``. Ties (and AUs where F1 is undefined at
    every threshold) go to the threshold closest to 0.5, the untuned default.
    """
    t, p = _au_arrays(au_true, au_prob)
    g = np.asarray(grid, dtype=float).reshape(-1)
    best = np.empty(t.shape[1])
    for j in range(t.shape[1]):
        labelled = ~np.isnan(t[:, j])
        truth = t[labelled, j].astype(bool)
        pred = p[labelled, j][None, :] >= g[:, None]
        tp = (pred & truth).sum(1)
        fp = (pred & ~truth).sum(1)
        fn = (~pred & truth).sum(1)
        f1 = np.nan_to_num(_f1_from_counts(tp, fp, fn), nan=-1.0)
        candidates = np.flatnonzero(f1 == f1.max())
        best[j] = g[candidates[np.argmin(np.abs(g[candidates] - 0.5))]]
    return best


def _as_2d(name: str, values: ArrayLike, n_cols: int) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 2 or a.shape[1] != n_cols:
        raise AffectlabError(f"{name} must have shape (N, {n_cols}), got {a.shape}")
    return a


def _same_rows(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise AffectlabError("row counts differ: " + ", ".join(f"{k}={n}" for k, n in lengths.items()))


def _need_both(truth_name: str, truth: Any, pred_name: str, pred: Any) -> bool:
    if (truth is None) != (pred is None):
        missing = pred_name if pred is None else truth_name
        raise AffectlabError(f"{truth_name} and {pred_name} go together; {missing} is missing")
    return truth is not None


def multitask_scores(
    schema: LabelSchema,
    *,
    au_true: ArrayLike | None = None,
    au_prob: ArrayLike | None = None,
    expr_true: ArrayLike | None = None,
    expr_pred: ArrayLike | None = None,
    va_true: ArrayLike | None = None,
    va_pred: ArrayLike | None = None,
    au_thresholds: ArrayLike | None = None,
) -> dict[str, Any]:
    """Every ABAW score of one evaluation, as the JSON-ready dict that other tools read.

    ``au_prob`` (N, n_au) are probabilities, thresholded at 0.5 (``>=``) or at ``au_thresholds``
    (n_au,); ``expr_pred`` is class ids (N,) or scores (N, n_expr), argmax taken; ``va_pred`` (N, 2).
    A task without labels (no truth given, or all missing) has no keys at all, not even in ``n``,
    which counts rows with at least one label of the task. ``P_MTL`` needs all three tasks and
    ``abaw2`` is left out when neither AU nor EXPR is present. Values are Python floats; NaN stays
    NaN (an undefined F1 or CCC) for the caller to write as JSON null.
    """
    scores: dict[str, Any] = {"n": {}}
    if _need_both("au_true", au_true, "au_prob", au_prob):
        at = _as_2d("au_true", au_true, schema.n_au)
        ap = _as_2d("au_prob", au_prob, schema.n_au)
        _same_rows(au_true=at, au_prob=ap)
        n_au = int((~np.isnan(at)).any(axis=1).sum())
        if n_au:
            th = np.full(schema.n_au, 0.5) if au_thresholds is None else np.asarray(au_thresholds, dtype=float)
            if th.shape != (schema.n_au,):
                raise AffectlabError(f"au_thresholds must have {schema.n_au} values, got shape {th.shape}")
            pred = (ap >= th).astype(float)
            f1 = au_f1(at, pred)
            scores["n"]["au"] = n_au
            scores["au"] = {
                "f1": {name: float(v) for name, v in zip(schema.au_names, f1)},
                "f1_mean": _nanmean(f1),
                "accuracy": au_accuracy(at, pred),
            }
            scores["P_AU"] = scores["au"]["f1_mean"]
            scores.setdefault("abaw2", {})["au"] = abaw2_au_score(at, pred)
    if _need_both("expr_true", expr_true, "expr_pred", expr_pred):
        et = np.asarray(expr_true, dtype=float).reshape(-1)
        ep = np.asarray(expr_pred)
        if ep.ndim == 2:
            if ep.shape[1] != schema.n_expr:
                raise AffectlabError(f"expr_pred scores must have {schema.n_expr} columns, got {ep.shape[1]}")
            ep = ep.argmax(axis=1)
        ep = ep.astype(float).reshape(-1)
        _same_rows(expr_true=et, expr_pred=ep)
        if np.any(et >= schema.n_expr) or not np.all((ep >= 0) & (ep < schema.n_expr)):
            raise AffectlabError(f"expression ids must lie in 0..{schema.n_expr - 1} (truth may be -1 for missing)")
        n_expr = int((et >= 0).sum())
        if n_expr:
            f1 = expr_f1(et, ep, schema.n_expr)
            scores["n"]["expr"] = n_expr
            scores["expr"] = {
                "f1": {name: float(v) for name, v in zip(schema.expr_names, f1)},
                "f1_macro": _nanmean(f1),
                "accuracy": accuracy(et, ep),
            }
            scores["P_EXPR"] = scores["expr"]["f1_macro"]
            scores.setdefault("abaw2", {})["expr"] = abaw2_expr_score(et, ep, schema.n_expr)
    if _need_both("va_true", va_true, "va_pred", va_pred):
        vt = _as_2d("va_true", va_true, 2)
        vp = _as_2d("va_pred", va_pred, 2)
        _same_rows(va_true=vt, va_pred=vp)
        n_va = int((~np.isnan(vt)).any(axis=1).sum())
        if n_va:
            scores["n"]["va"] = n_va
            scores["va"] = {"ccc_valence": ccc(vt[:, 0], vp[:, 0]), "ccc_arousal": ccc(vt[:, 1], vp[:, 1])}
            scores["P_VA"] = (scores["va"]["ccc_valence"] + scores["va"]["ccc_arousal"]) / 2
    if all(k in scores for k in ("P_AU", "P_EXPR", "P_VA")):
        scores["P_MTL"] = p_mtl(scores["P_VA"], scores["P_EXPR"], scores["P_AU"])
    return scores


def _fmt(value: Any) -> str:
    """A score with 4 decimals; '-' for NaN or None (JSON null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def _table(names: list[str], values: list[Any], label: str, per_row: int = 12) -> list[str]:
    """Aligned name/value rows, wrapped every ``per_row`` columns."""
    lines = []
    for start in range(0, len(names), per_row):
        chunk = names[start : start + per_row]
        cells = [_fmt(v) for v in values[start : start + per_row]]
        widths = [max(len(n), len(c)) for n, c in zip(chunk, cells)]
        lines.append("  " + " " * len(label) + "  " + "  ".join(n.rjust(w) for n, w in zip(chunk, widths)))
        lines.append("  " + label + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return lines


def format_scores(scores: dict[str, Any]) -> str:
    """A plain-text report of :func:`multitask_scores` output (NaN or null shown as '-')."""
    n = scores.get("n", {})
    lines: list[str] = []
    if "au" in scores:
        au = scores["au"]
        lines.append(f"AU (n={n.get('au', '-')})")
        lines += _table(list(au["f1"]), list(au["f1"].values()), "F1")
        lines.append(f"  F1 mean {_fmt(au['f1_mean'])}   accuracy {_fmt(au['accuracy'])}")
    if "expr" in scores:
        ex = scores["expr"]
        lines.append(f"EXPR (n={n.get('expr', '-')})")
        lines += _table(list(ex["f1"]), list(ex["f1"].values()), "F1")
        lines.append(f"  F1 macro {_fmt(ex['f1_macro'])}   accuracy {_fmt(ex['accuracy'])}")
    if "va" in scores:
        va = scores["va"]
        lines.append(f"VA (n={n.get('va', '-')})")
        lines.append(f"  CCC valence {_fmt(va['ccc_valence'])}   CCC arousal {_fmt(va['ccc_arousal'])}")
    p_keys = [k for k in ("P_AU", "P_EXPR", "P_VA", "P_MTL") if k in scores]
    if p_keys:
        lines.append("Scores (ABAW3+)  " + "   ".join(f"{k} {_fmt(scores[k])}" for k in p_keys))
    if "abaw2" in scores:
        lines.append("Scores (ABAW1/2) " + "   ".join(f"{k.upper()} {_fmt(v)}" for k, v in scores["abaw2"].items()))
    return "\n".join(lines) if lines else "no labelled rows to score"
