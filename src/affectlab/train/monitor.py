"""The number early stopping and "best" checkpoints follow, from a member's validation scores."""
from __future__ import annotations


def monitor_value(scores: dict, monitor: str) -> float:
    """The early-stopping number: a sum of terms (``abaw2.expr + P_VA``: multi-database §4's 0.67·F1 +
    0.33·Acc and mean CCC), each ``P`` (the sum of the P scores present) or a dotted key of ``scores``."""
    terms = [t.strip() for t in monitor.split("+")]
    if len(terms) > 1:
        return float(sum(monitor_value(scores, t) for t in terms))
    if monitor == "P":
        present = [scores[k] for k in ("P_AU", "P_EXPR", "P_VA") if k in scores and scores[k] == scores[k]]
        return float(sum(present)) if present else float("nan")
    value = scores
    for part in monitor.split("."):
        if not isinstance(value, dict) or part not in value:
            return float("nan")
        value = value[part]
    return float(value) if value is not None else float("nan")


def monitored(validation: dict, monitor: str) -> float:
    """``monitor`` over a member's validation scores (per source): all sources together (``all``) where
    there are several, else its one source; NaN without validation."""
    key = "all" if "all" in validation else next(iter(validation), None)
    return monitor_value(validation[key], monitor) if key else float("nan")
