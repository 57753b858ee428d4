"""ABAW metrics against scikit-learn, hand computations and the masking rules."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from affectlab import metrics as M
from affectlab.errors import AffectlabError
from affectlab.labels import DEFAULT_SCHEMA, schema

N_AU = DEFAULT_SCHEMA.n_au
N_EXPR = DEFAULT_SCHEMA.n_expr


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _with_missing_au(rng: np.random.Generator, n: int, frac: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    truth = (rng.random((n, N_AU)) < 0.3).astype(float)
    truth[rng.random((n, N_AU)) < frac] = np.nan
    pred = (rng.random((n, N_AU)) < 0.4).astype(float)
    return truth, pred


# --- F1 / accuracy ---------------------------------------------------------------------------


def test_f1_binary_hand_case() -> None:
    # tp=2, fp=1, fn=1 -> 2*2 / (4 + 1 + 1)
    assert M.f1_score_binary([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(4 / 6, abs=1e-12)
    assert M.f1_score_binary([0, 1], [0, 0]) == 0.0
    assert math.isnan(M.f1_score_binary([0, 0, 0], [0, 0, 0]))


def test_f1_binary_matches_sklearn(rng: np.random.Generator) -> None:
    for _ in range(20):
        t, p = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        assert M.f1_score_binary(t, p) == pytest.approx(f1_score(t, p), abs=1e-6)


def test_au_f1_and_accuracy_match_sklearn_on_labelled_entries(rng: np.random.Generator) -> None:
    truth, pred = _with_missing_au(rng, 300)
    f1 = M.au_f1(truth, pred)
    assert f1.shape == (N_AU,)
    for j in range(N_AU):
        keep = ~np.isnan(truth[:, j])
        assert f1[j] == pytest.approx(f1_score(truth[keep, j], pred[keep, j]), abs=1e-6)
    keep = ~np.isnan(truth)
    assert M.au_accuracy(truth, pred) == pytest.approx(accuracy_score(truth[keep], pred[keep]), abs=1e-6)


def test_au_masking_equals_subset_and_ignores_predictions_of_missing_entries(rng: np.random.Generator) -> None:
    truth, pred = _with_missing_au(rng, 100)
    flipped = np.where(np.isnan(truth), 1 - pred, pred)
    np.testing.assert_array_equal(M.au_f1(truth, pred), M.au_f1(truth, flipped))
    assert M.au_accuracy(truth, pred) == M.au_accuracy(truth, flipped)
    full = ~np.isnan(truth).any(1)
    np.testing.assert_allclose(M.au_f1(truth[full], pred[full]), M.au_f1(np.where(full[:, None], truth, np.nan), pred))


def test_an_au_without_positives_or_predictions_scores_0_as_the_official_abaw_script() -> None:
    """The ABAW evaluation: scikit-learn's f1_score per AU (default zero_division: 0.0), averaged over
    every AU. An AU never labelled at all is not scored (NaN)."""
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning

    truth = np.array([[1, 0, np.nan], [0, 0, np.nan], [1, 0, np.nan]])
    pred = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        official = [f1_score(truth[:, j], pred[:, j]) for j in range(2)]
    assert official[1] == 0.0
    np.testing.assert_allclose(M.au_f1(truth, pred)[:2], official, atol=1e-12)
    assert np.isnan(M.au_f1(truth, pred)[2])
    assert M.p_au(truth, pred) == pytest.approx(np.mean(official))


def test_au_hand_case() -> None:
    truth = np.array([[1, 0], [1, np.nan], [0, 1], [np.nan, 1]])
    pred = np.array([[1, 0], [0, 1], [1, 1], [1, 0]])
    # AU a: rows 0-2: tp=1, fn=1, fp=1 -> 0.5; AU b: rows 0,2,3: tp=1, fn=1 -> 2/3
    np.testing.assert_allclose(M.au_f1(truth, pred), [0.5, 2 / 3], atol=1e-12)
    assert M.au_accuracy(truth, pred) == pytest.approx(3 / 6)
    assert M.abaw2_au_score(truth, pred) == pytest.approx(0.5 * (0.5 + 2 / 3) / 2 + 0.5 * 0.5)


def test_expr_metrics_match_sklearn(rng: np.random.Generator) -> None:
    for _ in range(10):
        t, p = rng.integers(0, N_EXPR, 200), rng.integers(0, N_EXPR, 200)
        f1 = M.expr_f1(t, p, N_EXPR)
        np.testing.assert_allclose(f1, f1_score(t, p, average=None, labels=range(N_EXPR)), atol=1e-6)
        assert M.macro_f1(t, p, N_EXPR) == pytest.approx(f1_score(t, p, average="macro"), abs=1e-6)
        assert M.accuracy(t, p) == pytest.approx(accuracy_score(t, p), abs=1e-6)


def test_macro_f1_skips_classes_absent_from_truth_and_prediction_like_sklearn() -> None:
    t, p = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 3])
    f1 = M.expr_f1(t, p, N_EXPR)
    assert np.isnan(f1[4:]).all() and f1[3] == 0.0 and f1[2] == 0.0
    assert M.macro_f1(t, p, N_EXPR) == pytest.approx(f1_score(t, p, average="macro"), abs=1e-12)


def test_expr_masking_equals_subset(rng: np.random.Generator) -> None:
    t, p = rng.integers(0, N_EXPR, 200), rng.integers(0, N_EXPR, 200)
    missing = rng.random(200) < 0.4
    t_missing = np.where(missing, -1, t)
    assert M.macro_f1(t_missing, p, N_EXPR) == pytest.approx(f1_score(t[~missing], p[~missing], average="macro"))
    assert M.accuracy(t_missing, p) == pytest.approx(accuracy_score(t[~missing], p[~missing]))
    as_nan = np.where(missing, np.nan, t.astype(float))
    np.testing.assert_array_equal(M.expr_f1(as_nan, p, N_EXPR), M.expr_f1(t_missing, p, N_EXPR))
    assert math.isnan(M.accuracy([-1, -1], [0, 1]))


def test_abaw2_expr_score_hand_case() -> None:
    t, p = np.array([0, 1, 1, -1]), np.array([0, 1, 0, 4])
    # class 0: tp=1 fp=1 -> 2/3; class 1: tp=1 fn=1 -> 2/3; acc 2/3
    assert M.abaw2_expr_score(t, p, N_EXPR) == pytest.approx(0.67 * 2 / 3 + 0.33 * 2 / 3)


# --- CCC ---------------------------------------------------------------------------------------


def test_ccc_hand_computation() -> None:
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 3.0, 5.0])
    mx, my = 2.5, 3.0
    cov = np.mean((x - mx) * (y - my))
    expected = 2 * cov / (np.mean((x - mx) ** 2) + np.mean((y - my) ** 2) + (mx - my) ** 2)
    assert M.ccc(x, y) == pytest.approx(expected, abs=1e-12)
    assert M.ccc(x, y) == pytest.approx(2 * 1.25 / (1.25 + 1.5 + 0.25), abs=1e-12)  # cov 1.25, var 1.25, 1.5


def test_ccc_matches_lins_two_independent_forms(rng: np.random.Generator) -> None:
    """Lin (1989): CCC = 2 r s_x s_y / (s_x² + s_y² + (m_x - m_y)²) with Pearson's r (scipy), and
    equally 1 - E[(x - y)²] / (s_x² + s_y² + (m_x - m_y)²): neither is the code's covariance formula."""
    from scipy.stats import pearsonr

    for shift, scale in ((0.0, 1.0), (0.3, 0.5), (-0.2, 2.0)):
        x = rng.uniform(-1, 1, 500)
        y = scale * (0.7 * x + 0.3 * rng.normal(size=500)) + shift
        sx, sy, gap = x.std(), y.std(), x.mean() - y.mean()
        lin = 2 * pearsonr(x, y)[0] * sx * sy / (sx ** 2 + sy ** 2 + gap ** 2)
        msd = 1 - np.mean((x - y) ** 2) / (sx ** 2 + sy ** 2 + gap ** 2)
        assert M.ccc(x, y) == pytest.approx(lin, abs=1e-10) and M.ccc(x, y) == pytest.approx(msd, abs=1e-10)


def test_ccc_known_cases(rng: np.random.Generator) -> None:
    x = rng.uniform(-1, 1, 500)
    assert M.ccc(x, x) == pytest.approx(1.0)
    assert M.ccc(x, -x) == pytest.approx(-1.0, abs=0.05)
    assert M.ccc(x, x + 0.5) < M.ccc(x, x + 0.1) < 1.0
    assert M.ccc(x, 2 * x) < 1.0  # correlated but not concordant
    assert math.isnan(M.ccc([np.nan, 1.0], [0.0, np.nan]))
    assert math.isnan(M.ccc([0.3, 0.3], [0.3, 0.3]))


def test_ccc_drops_nan_pairs(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=100), rng.normal(size=100)
    xn, yn = x.copy(), y.copy()
    xn[:10], yn[-10:] = np.nan, np.nan
    assert M.ccc(xn, yn) == pytest.approx(M.ccc(x[10:-10], y[10:-10]), abs=1e-12)


def test_p_scores_compose(rng: np.random.Generator) -> None:
    va_t, va_p = rng.uniform(-1, 1, (50, 2)), rng.uniform(-1, 1, (50, 2))
    assert M.p_va(va_t, va_p) == pytest.approx((M.ccc(va_t[:, 0], va_p[:, 0]) + M.ccc(va_t[:, 1], va_p[:, 1])) / 2)
    truth, pred = _with_missing_au(rng, 50)
    assert M.p_au(truth, pred) == pytest.approx(np.nanmean(M.au_f1(truth, pred)))
    assert M.p_mtl(0.25, 0.5, 0.125) == 0.875


# --- thresholds ----------------------------------------------------------------------------------


def test_tune_au_thresholds_finds_the_separating_threshold() -> None:
    # AU 0: every t in (0.2, 0.4] gives F1 = 1; of 0.25 .. 0.40, 0.40 is closest to 0.5.
    # AU 1: only t in (0.72, 0.76] gives F1 = 1, i.e. the grid point 0.75.
    prob = np.array([[0.10, 0.60], [0.20, 0.72], [0.41, 0.76], [0.80, 0.90]])
    truth = np.array([[0, 0], [0, 0], [1, 1], [1, 1]], dtype=float)
    th = M.tune_au_thresholds(truth, prob)
    assert th[0] == pytest.approx(0.40)
    assert th[1] == pytest.approx(0.75)


def test_tune_au_thresholds_tie_goes_to_half_and_masks_missing() -> None:
    grid = np.array([0.2, 0.45, 0.5, 0.55, 0.8])
    prob = np.array([[0.1], [0.9], [0.3]])
    truth = np.array([[0.0], [1.0], [np.nan]])  # the unlabelled 0.3 must not matter
    assert M.tune_au_thresholds(truth, prob, grid)[0] == 0.5
    assert M.tune_au_thresholds(np.full((3, 1), np.nan), prob, grid)[0] == 0.5


# --- multitask_scores ------------------------------------------------------------------------------


def _full_inputs(rng: np.random.Generator, n: int = 80) -> dict[str, np.ndarray]:
    au_true, _ = _with_missing_au(rng, n)
    va_true = rng.uniform(-1, 1, (n, 2))
    va_true[rng.random(n) < 0.2, 0] = np.nan
    return {
        "au_true": au_true,
        "au_prob": rng.random((n, N_AU)),
        "expr_true": np.where(rng.random(n) < 0.3, -1, rng.integers(0, N_EXPR, n)),
        "expr_pred": rng.integers(0, N_EXPR, n),
        "va_true": va_true,
        "va_pred": rng.uniform(-1, 1, (n, 2)),
    }


def test_multitask_scores_contract(rng: np.random.Generator) -> None:
    d = _full_inputs(rng)
    s = M.multitask_scores(DEFAULT_SCHEMA, **d)
    assert set(s) == {"n", "au", "expr", "va", "P_AU", "P_EXPR", "P_VA", "P_MTL", "abaw2"}
    assert list(s["au"]["f1"]) == list(DEFAULT_SCHEMA.au_names)
    assert list(s["expr"]["f1"]) == list(DEFAULT_SCHEMA.expr_names)
    assert set(s["va"]) == {"ccc_valence", "ccc_arousal"} and set(s["abaw2"]) == {"au", "expr"}
    assert s["n"] == {
        "au": int((~np.isnan(d["au_true"])).any(1).sum()),
        "expr": int((d["expr_true"] >= 0).sum()),
        "va": int((~np.isnan(d["va_true"])).any(1).sum()),
    }
    assert s["P_MTL"] == pytest.approx(s["P_AU"] + s["P_EXPR"] + s["P_VA"])
    pred = (d["au_prob"] >= 0.5).astype(float)
    assert s["P_AU"] == pytest.approx(M.p_au(d["au_true"], pred))
    assert s["au"]["accuracy"] == pytest.approx(M.au_accuracy(d["au_true"], pred))
    assert s["P_EXPR"] == pytest.approx(M.macro_f1(d["expr_true"], d["expr_pred"], N_EXPR))
    assert s["P_VA"] == pytest.approx(M.p_va(d["va_true"], d["va_pred"]))
    assert s["abaw2"]["expr"] == pytest.approx(0.67 * s["P_EXPR"] + 0.33 * s["expr"]["accuracy"])
    json.dumps(s)  # plain Python types only
    for v in [s["P_AU"], s["P_MTL"], *s["au"]["f1"].values(), s["va"]["ccc_valence"]]:
        assert type(v) is float
    assert all(type(v) is int for v in s["n"].values())


def test_multitask_scores_absent_tasks(rng: np.random.Generator) -> None:
    d = _full_inputs(rng)
    only_va = M.multitask_scores(DEFAULT_SCHEMA, va_true=d["va_true"], va_pred=d["va_pred"])
    assert set(only_va) == {"n", "va", "P_VA"} and set(only_va["n"]) == {"va"}
    unlabelled_expr = M.multitask_scores(
        DEFAULT_SCHEMA, expr_true=np.full(80, -1), expr_pred=d["expr_pred"], au_true=d["au_true"], au_prob=d["au_prob"]
    )
    assert set(unlabelled_expr) == {"n", "au", "P_AU", "abaw2"} and set(unlabelled_expr["abaw2"]) == {"au"}
    assert set(unlabelled_expr["n"]) == {"au"}
    assert M.multitask_scores(DEFAULT_SCHEMA) == {"n": {}}


def test_multitask_scores_thresholds_and_expr_scores(rng: np.random.Generator) -> None:
    d = _full_inputs(rng)
    th = np.linspace(0.2, 0.8, N_AU)
    s = M.multitask_scores(DEFAULT_SCHEMA, au_true=d["au_true"], au_prob=d["au_prob"], au_thresholds=th)
    assert s["P_AU"] == pytest.approx(M.p_au(d["au_true"], (d["au_prob"] >= th).astype(float)))
    scores = rng.normal(size=(80, N_EXPR))
    by_scores = M.multitask_scores(DEFAULT_SCHEMA, expr_true=d["expr_true"], expr_pred=scores)
    by_ids = M.multitask_scores(DEFAULT_SCHEMA, expr_true=d["expr_true"], expr_pred=scores.argmax(1))
    assert by_scores == by_ids


def test_multitask_scores_uses_schema_names_and_sizes(rng: np.random.Generator) -> None:
    ts = schema("teacher-student", n_expr=7)
    s = M.multitask_scores(
        ts,
        au_true=rng.integers(0, 2, (30, 8)).astype(float),
        au_prob=rng.random((30, 8)),
        expr_true=rng.integers(0, 7, 30),
        expr_pred=rng.integers(0, 7, 30),
    )
    assert list(s["au"]["f1"]) == list(ts.au_names) and "AU20" in s["au"]["f1"]
    assert list(s["expr"]["f1"]) == list(ts.expr_names) and "Other" not in s["expr"]["f1"]


def test_multitask_scores_rejects_bad_input(rng: np.random.Generator) -> None:
    d = _full_inputs(rng)
    with pytest.raises(AffectlabError, match="au_prob"):
        M.multitask_scores(DEFAULT_SCHEMA, au_true=d["au_true"])
    with pytest.raises(AffectlabError, match="shape"):
        M.multitask_scores(DEFAULT_SCHEMA, au_true=d["au_true"][:, :5], au_prob=d["au_prob"][:, :5])
    with pytest.raises(AffectlabError, match="row counts"):
        M.multitask_scores(DEFAULT_SCHEMA, va_true=d["va_true"], va_pred=d["va_pred"][:10])
    with pytest.raises(AffectlabError, match="expression ids"):
        M.multitask_scores(DEFAULT_SCHEMA, expr_true=d["expr_true"], expr_pred=d["expr_pred"] + N_EXPR)


def test_format_scores_shows_every_part_and_dash_for_nan(rng: np.random.Generator) -> None:
    d = _full_inputs(rng)
    d["au_true"][:, 0] = np.nan  # AU1 never labelled -> F1 NaN
    text = M.format_scores(M.multitask_scores(DEFAULT_SCHEMA, **d))
    for word in ("AU1", "AU26", "Neutral", "Other", "F1 macro", "accuracy", "CCC valence", "CCC arousal", "P_MTL", "ABAW1/2"):
        assert word in text
    f1_row = next(line for line in text.splitlines() if line.strip().startswith("F1") and "mean" not in line)
    assert f1_row.split()[1] == "-"
    assert "-" in M.format_scores({"n": {"va": 3}, "va": {"ccc_valence": None, "ccc_arousal": 0.5}, "P_VA": None})
