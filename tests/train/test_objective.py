"""Loss composition: masks per sampler group, batch vs group reduction, class weights, soft targets, and the
student loss of teacher-student eq. 7 / multi-database eq. 10."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from affectlab import losses as L
from affectlab.labels import DEFAULT_SCHEMA
from affectlab.models import Prediction
from affectlab.train.config import Loss, LossTerm
from affectlab.train.distill import CachedTeacher, distillation_fns, ensemble_teacher, student_loss
from affectlab.train.objective import Objective, flatten_time, label_masks

N_AU = DEFAULT_SCHEMA.n_au


def batch(n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "au": torch.randint(0, 2, (n, N_AU), generator=g).float(), "au_mask": torch.ones(n, N_AU, dtype=torch.bool),
        "expr": torch.randint(0, 8, (n,), generator=g), "expr_mask": torch.ones(n, dtype=torch.bool),
        "expr_soft": torch.zeros(n, 8), "expr_soft_mask": torch.zeros(n, dtype=torch.bool),
        "va": torch.rand(n, 2, generator=g) * 2 - 1, "va_mask": torch.ones(n, 2, dtype=torch.bool),
        "group": torch.tensor([0, 0, 1, 1][:n]), "index": torch.arange(n),
    }


def prediction(n: int = 4, seed: int = 1, bins: bool = False) -> Prediction:
    g = torch.Generator().manual_seed(seed)
    va_bins = torch.randn(n, 2, 20, generator=g) if bins else None
    va = L.va_from_bin_logits(va_bins) if bins else torch.tanh(torch.randn(n, 2, generator=g))
    return Prediction(au=torch.randn(n, N_AU, generator=g), expr=torch.randn(n, 8, generator=g), va=va, va_bins=va_bins)


def objective(reduce: str = "batch", **terms) -> Objective:
    terms = terms or {"au": LossTerm("weighted_bce"), "expr": LossTerm("ce"), "va": LossTerm("ccc")}
    labels = pd.DataFrame({**{a: [0.0, 1.0, 1.0, 1.0] for a in DEFAULT_SCHEMA.au_names},
                           "expr": [0, 0, 0, 3], "valence": 0.0, "arousal": 0.0})
    return Objective(Loss(terms, reduce), DEFAULT_SCHEMA, labels, has_va_bins=True)


def test_group_tasks_narrow_the_masks():
    b = batch()
    b["group"] = torch.tensor([0, 1, -1, 1])
    masks = label_masks(b, torch.tensor([[True, False, False], [False, True, True]]))
    assert masks["au"].any(1).tolist() == [True, False, True, False]
    assert masks["expr"].tolist() == [False, True, True, True]
    assert masks["va"].all(1).tolist() == [False, True, True, True]


def test_batch_reduction_is_a_masked_mean_over_the_batch():
    b, p = batch(), prediction()
    losses = objective().task_losses(p, b, label_masks(b, None))
    assert torch.isclose(losses["expr"], F.cross_entropy(p.expr, b["expr"]))
    assert torch.isclose(losses["au"], F.binary_cross_entropy_with_logits(p.au, b["au"]))
    assert torch.isclose(losses["va"], L.ccc_loss(p.va, b["va"], b["va_mask"]))


def test_group_reduction_sums_each_groups_own_mean():
    """Multi-database eq. 7: each task's loss per sampler group (N instances each), summed over groups."""
    b, p = batch(), prediction()
    losses = objective("group").task_losses(p, b, label_masks(b, None))
    per_group = [F.cross_entropy(p.expr[rows], b["expr"][rows]) for rows in (slice(0, 2), slice(2, 4))]
    assert torch.isclose(losses["expr"], sum(per_group))
    ccc = [L.ccc_loss(p.va[r], b["va"][r], b["va_mask"][r]) for r in (slice(0, 2), slice(2, 4))]
    assert torch.isclose(losses["va"], sum(ccc))


def test_class_weights_come_from_the_training_labels():
    obj = objective(au=LossTerm("weighted_bce", pos_weight=True), expr=LossTerm("ce", class_weight=True))
    assert torch.allclose(obj.options["au"]["pos_weight"], torch.full((N_AU,), 1 / 3))  # SMM eq. 4: 1 neg / 3 pos
    w = obj.options["expr"]["class_weight"]
    assert w[0] < w[3] and math.isclose(float(w[[0, 0, 0, 3]].mean()), 1.0, rel_tol=1e-6)  # SMM eq. 5


def test_vote_distributions_train_rows_that_have_them():
    b, p = batch(), prediction()
    b["expr_soft_mask"] = torch.tensor([True, False, False, False])
    b["expr_soft"][0] = torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0, 0])
    loss = objective(expr=LossTerm("ce", soft_targets=True)).task_losses(p, b, label_masks(b, None))["expr"]
    soft = -(b["expr_soft"][0] * F.log_softmax(p.expr[0], 0)).sum()
    hard = F.cross_entropy(p.expr[1:], b["expr"][1:], reduction="sum")
    assert torch.isclose(loss, (soft + hard) / 4)


@pytest.mark.parametrize("terms, message", [
    ({"au": LossTerm("ccc")}, "is an va loss, not a au loss"),
    ({"va": LossTerm("nope")}, "loss of va must be one of"),
    ({"au": LossTerm("circle", pos_weight=True)}, "goes with weighted_bce"),
])
def test_bad_terms_are_refused(terms, message):
    with pytest.raises(ValueError, match=message):
        objective(**terms)


def test_va_bins_needs_a_model_with_bins():
    with pytest.raises(ValueError, match="needs a model with VA bins"):
        Objective(Loss({"va": LossTerm("va_bins")}), DEFAULT_SCHEMA, pd.DataFrame({"expr": []}), has_va_bins=False)


def test_clip_outputs_and_labels_flatten_together():
    p = Prediction(au=torch.zeros(2, 3, N_AU), expr=torch.zeros(2, 3, 8), va=torch.zeros(2, 3, 2))
    b = {"au": torch.zeros(2, 3, N_AU), "expr": torch.zeros(2, 3), "group": torch.tensor([0, 1]),
         "index": torch.tensor([5, 6]), "image": torch.zeros(2, 3, 3, 4, 4)}
    fp, fb = flatten_time(p, b)
    assert fp.au.shape == (6, N_AU) and fb["au"].shape == (6, N_AU) and fb["expr"].shape == (6,)
    assert fb["group"].tolist() == [0, 0, 0, 1, 1, 1] and fb["image"].shape == (2, 3, 3, 4, 4)


# --- distillation ------------------------------------------------------------------------------


def _kl(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    return (F.softmax(t / T, -1) * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1))).sum(-1)


def _ccc_term(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - CCC of one dimension, population moments (teacher-student eq. 3's second term)."""
    cov = ((pred - pred.mean()) * (y - y.mean())).mean()
    return 1 - 2 * cov / (pred.var(unbiased=False) + y.var(unbiased=False) + (pred.mean() - y.mean()) ** 2)


def _eq7_by_hand(b: dict, s: Prediction, t: Prediction, lam: float, T: float) -> torch.Tensor:
    """Teacher-student eq. 7 written sample by sample: λ·L + (1 - λ)·L^d where task i is labelled,
    L^d alone where it is not, summed over tasks (no task weights), averaged over the samples."""
    bins = L.va_to_bins(b["va"])
    ccc = [_ccc_term(L.va_from_bin_logits(s.va_bins)[b["va_mask"][:, d], d], b["va"][b["va_mask"][:, d], d])
           for d in range(2)]
    total = torch.zeros(())
    for n in range(len(b["group"])):
        sup_au = F.binary_cross_entropy_with_logits(s.au[n], b["au"][n], reduction="none")
        kd_au = F.binary_cross_entropy_with_logits(s.au[n], torch.sigmoid(t.au[n]), reduction="none")
        au = torch.where(b["au_mask"][n], lam * sup_au + (1 - lam) * kd_au, kd_au).mean()  # eq. 1's 1/C
        kd_expr = _kl(s.expr[n], t.expr[n], T)
        expr = lam * F.cross_entropy(s.expr[n], b["expr"][n]) + (1 - lam) * kd_expr if b["expr_mask"][n] else kd_expr
        va = torch.zeros(())
        for d in range(2):
            kd = _kl(s.va_bins[n, d], t.va_bins[n, d], T)
            sup = F.cross_entropy(s.va_bins[n, d], bins[n, d]) + ccc[d]
            va = va + (lam * sup + (1 - lam) * kd if b["va_mask"][n, d] else kd)
        total = total + au + expr + va
    return total / len(b["group"])


def partial_batch() -> dict:
    """Six samples, each with only some labels: AUs on rows 0-1 (row 1 half its AUs), EXPR on
    rows 1-3, valence on rows 2-5 and arousal on rows 3-5."""
    b = batch(6)
    b["au_mask"][2:] = False
    b["au_mask"][1, N_AU // 2:] = False
    b["expr_mask"] = torch.tensor([False, True, True, True, False, False])
    b["va_mask"] = torch.tensor([[False, False], [False, False], [True, False], [True, True], [True, True], [True, True]])
    b["group"] = torch.tensor([0, 0, 1, 1, 2, 2])
    return b


def test_student_loss_is_teacher_student_eq_7_by_hand():
    """λ : (1 - λ) on every labelled sample, whatever share of the batch carries the task."""
    lam, T = 0.6, 1.5
    b, s, t = partial_batch(), prediction(6, seed=1, bins=True), prediction(6, seed=2, bins=True)
    obj = objective(au=LossTerm("weighted_bce", weight=8), expr=LossTerm("ce"), va=LossTerm("va_bins"))
    total, parts = student_loss(obj, s, t, b, label_masks(b, None), lam, T)
    assert torch.isclose(total, _eq7_by_hand(b, s, t, lam, T), atol=1e-5)
    assert torch.isclose(total, sum(parts.values()))


def test_student_loss_with_task_weights_weighs_both_parts_of_each_task():
    """``distill.task_weights``: eq. 4's weights on a task's supervised and distilled parts alike."""
    b, s, t = partial_batch(), prediction(6, seed=1, bins=True), prediction(6, seed=2, bins=True)
    obj = objective(au=LossTerm("weighted_bce", weight=8), expr=LossTerm("ce"), va=LossTerm("va_bins", weight=2))
    _, plain = student_loss(obj, s, t, b, label_masks(b, None), 0.6, 1.5)
    total, weighted = student_loss(obj, s, t, b, label_masks(b, None), 0.6, 1.5, obj.weights)
    factor = {"au": 8, "expr": 1, "va": 2}
    for name, value in plain.items():
        assert torch.isclose(weighted[name], factor[name.removesuffix("_kd")] * value)
    assert torch.isclose(total, sum(weighted.values()))


def test_student_loss_is_multi_database_eqs_8_to_10_by_hand():
    """Eq. 10 (with sharing): a group's sample supervised on every label it has; eq. 9 (no sharing):
    only on its group's own task, the others distilled. The group reduction changes nothing: eqs. 9-10
    sum over samples."""
    lam, T = 0.6, 1.5
    b, s, t = partial_batch(), prediction(6, seed=3, bins=True), prediction(6, seed=4, bins=True)
    obj = objective("group", au=LossTerm("weighted_bce"), expr=LossTerm("ce"), va=LossTerm("va_bins"))
    sharing = label_masks(b, None)
    total, _ = student_loss(obj, s, t, b, sharing, lam, T)
    assert torch.isclose(total, _eq7_by_hand(b, s, t, lam, T), atol=1e-5)
    own = torch.tensor([[True, False, False], [False, True, False], [False, False, True]])  # au, expr, va groups
    no_sharing = label_masks(b, own)
    total, _ = student_loss(obj, s, t, b, no_sharing, lam, T)
    narrowed = {**b, "au_mask": no_sharing["au"], "expr_mask": no_sharing["expr"], "va_mask": no_sharing["va"]}
    assert torch.isclose(total, _eq7_by_hand(narrowed, s, t, lam, T), atol=1e-5)


def test_distillation_vanishes_where_student_and_teacher_agree():
    b, s = partial_batch(), prediction(6, bins=True)
    _, parts = student_loss(objective(au=LossTerm("weighted_bce"), expr=LossTerm("ce"), va=LossTerm("va_bins")), s, s, b, label_masks(b, None), 0.6, 1.5)
    assert parts["expr_kd"].abs() < 1e-6 and parts["va_kd"].abs() < 1e-6


def test_va_without_bins_is_distilled_by_mean_squared_error():
    b, s, t = batch(2), prediction(2, seed=1), prediction(2, seed=2)
    b["va_mask"][:] = False
    d = distillation_fns(s, t, 1.5)["va"](~b["va_mask"])
    assert torch.isclose(d, F.mse_loss(s.va, t.va))


def test_cached_teacher_looks_outputs_up_by_row():
    outputs = {"au": torch.arange(10.0)[:, None].repeat(1, N_AU), "expr": torch.zeros(10, 8),
               "va": torch.zeros(10, 2)}
    pred = CachedTeacher(outputs)(torch.tensor([7, 2]))
    assert pred.au[:, 0].tolist() == [7.0, 2.0] and pred.va_bins is None
    assert np.allclose(pred.expr.numpy(), 0)


def test_an_ensemble_teacher_averages_probabilities_and_one_teacher_is_itself():
    """Teacher-student "Student Ensemble" as one teacher: mean σ / softmax, returned as logits."""
    a = {"au": torch.tensor([[0.0, 2.0]]), "expr": torch.tensor([[1.0, 0.0, -1.0]]), "va": torch.tensor([[0.2, -0.4]]),
         "va_bins": torch.randn(1, 2, 5)}
    b = {"au": torch.tensor([[2.0, -2.0]]), "expr": torch.tensor([[0.0, 3.0, 0.0]]), "va": torch.tensor([[0.6, 0.0]]),
         "va_bins": torch.randn(1, 2, 5)}
    out = ensemble_teacher([a, b])
    assert torch.allclose(torch.sigmoid(out["au"]), (torch.sigmoid(a["au"]) + torch.sigmoid(b["au"])) / 2)
    mean_p = (torch.softmax(a["expr"], -1) + torch.softmax(b["expr"], -1)) / 2
    assert torch.allclose(torch.softmax(out["expr"], -1), mean_p)
    assert torch.allclose(torch.softmax(out["va_bins"], -1),
                          (torch.softmax(a["va_bins"], -1) + torch.softmax(b["va_bins"], -1)) / 2)
    assert torch.allclose(out["va"], torch.tensor([[0.4, -0.2]]))
    # eq. 5 at T reads the ensemble's tempered mean; a single teacher's soft labels are its own
    T = 1.5
    assert torch.allclose(torch.softmax(out["expr"] / T, -1), mean_p ** (1 / T) / (mean_p ** (1 / T)).sum(-1, keepdim=True))
    assert ensemble_teacher([a])["expr"] is a["expr"]


def test_an_ensemble_of_teachers_with_unlike_va_bins_teaches_the_mean_va():
    a = {"au": torch.zeros(1, 2), "expr": torch.zeros(1, 3), "va": torch.zeros(1, 2), "va_bins": torch.zeros(1, 2, 5)}
    b = {**a, "va_bins": torch.zeros(1, 2, 7)}
    assert "va_bins" not in ensemble_teacher([a, b]) and "va_bins" not in ensemble_teacher([a, {**a, "va_bins": None}])
