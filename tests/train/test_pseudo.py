"""Pseudo labels (streaming §3.4): AU->EXPR rules mined from the training set, confident teacher outputs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.labels import schema
from affectlab.train.pseudo import apply_rules, mine_au_expr_rules, teacher_labels

S = schema(("AU1", "AU2", "AU12"))


def table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["AU1", "AU2", "AU12", "expr"]).astype({"expr": "int64"})


def test_rules_need_support_and_confidence():
    rows = [(1, 1, 0, 6)] * 9 + [(1, 1, 0, 0)] + [(0, 0, 1, 4)] * 3 + [(0, 0, 0, 0)] * 5 + [(0, 0, 0, 7)] * 5
    rules = mine_au_expr_rules(table(rows), S, min_support=4, min_confidence=0.8)
    assert rules == {(1, 1, 0): 6}, "(0,0,1) has too little support, (0,0,0) too little confidence"


def test_rules_label_only_complete_patterns_without_an_expression():
    samples = table([(1, 1, 0, -1), (1, 1, 0, 2), (0, 1, 0, -1)])
    samples.loc[3] = [1, np.nan, 0, -1]
    out, n = apply_rules(samples, S, {(1, 1, 0): 6, (0, 1, 0): 3})
    assert n == 2 and out["expr"].tolist() == [6, 2, 3, -1]
    assert samples["expr"].tolist() == [-1, 2, -1, -1], "the input table is left alone"


def test_teacher_labels_only_where_confident_and_missing():
    samples = table([(np.nan, 1, np.nan, -1), (np.nan, np.nan, np.nan, -1), (0, 0, 0, 5)])
    au_logits = np.array([[3.0, -3.0, 0.0], [-3.0, 0.1, 3.0], [3.0, 3.0, 3.0]])  # sigmoid(3) = 0.95
    expr_logits = np.zeros((3, 8))
    expr_logits[0, 4] = 10  # confident
    expr_logits[1, :2] = 1  # not confident
    expr_logits[2, 1] = 10  # confident, but the row has its own label
    out, added = teacher_labels(samples, S, au_logits, expr_logits, threshold=0.8)
    assert out["expr"].tolist() == [4, -1, 5] and added["expr"] == 1
    assert out.loc[0, ["AU1", "AU2", "AU12"]].tolist()[:2] == [1.0, 1.0] and np.isnan(out.loc[0, "AU12"])
    assert out.loc[1, ["AU1", "AU12"]].tolist() == [0.0, 1.0] and np.isnan(out.loc[1, "AU2"])
    assert out.loc[2, ["AU1", "AU2", "AU12"]].tolist() == [0.0, 0.0, 0.0] and added["au"] == 3
