"""The early-stopping number from validation scores, and monitors refused at load."""
from __future__ import annotations

import math

import pytest

from affectlab.train.monitor import monitor_value


def test_early_stopping_monitor_is_a_sum_of_named_scores():
    """Multi-database §4.2: EXPR by 0.67·F1 + 0.33·Acc (ABAW2) and VA by mean CCC."""
    scores = {"P_VA": 0.5, "P_EXPR": 0.25, "abaw2": {"expr": 0.4}}
    assert monitor_value(scores, "abaw2.expr + P_VA") == pytest.approx(0.9)
    assert monitor_value(scores, "P") == pytest.approx(0.75)
    assert math.isnan(monitor_value(scores, "P_AU + P_VA"))


def test_an_unknown_monitor_is_refused_at_load():
    from affectlab.train.config import EarlyStopping

    with pytest.raises(ValueError, match="unknown score 'abaw2x.expr'"):
        EarlyStopping(monitor="abaw2x.expr + P_VA")
