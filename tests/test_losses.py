"""Losses: gradients (gradcheck, float64), masking, and values against hand computations and torch."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affectlab import losses as L
from affectlab.labels import va_bin_centers
from affectlab.metrics import ccc

B, N_AU, N_EXPR, N_BINS = 6, 5, 8, 20
Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rows_mask(g: torch.Generator) -> torch.Tensor:
    mask = torch.rand(B, generator=g) < 0.6
    mask[:2] = torch.tensor([True, False])  # at least one labelled and one missing row
    return mask


def _entry_mask(g: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    mask = torch.rand(shape, generator=g) < 0.6
    mask[0], mask[1] = True, False  # a fully labelled and a fully missing row
    return mask


# Each builder returns (logits, target, mask, logit_mask, target_mask, junk): ``logit_mask`` and
# ``target_mask`` say which entries of logits/target are labelled; ``junk`` replaces the others.


def _au(g: torch.Generator) -> Inputs:
    logits = torch.randn(B, N_AU, generator=g, dtype=torch.float64)
    target = (torch.rand(B, N_AU, generator=g) < 0.5).double()
    mask = _entry_mask(g, (B, N_AU))
    return logits, target, mask, mask, mask, torch.full_like(target, float("nan"))


def _expr(g: torch.Generator) -> Inputs:
    logits = torch.randn(B, N_EXPR, generator=g, dtype=torch.float64)
    target = torch.randint(0, N_EXPR, (B,), generator=g)
    mask = _rows_mask(g)
    return logits, target, mask, mask[:, None].expand(B, N_EXPR), mask, torch.full_like(target, -1)


def _va(g: torch.Generator) -> Inputs:
    pred = torch.rand(B, 2, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.rand(B, 2, generator=g, dtype=torch.float64) * 2 - 1
    mask = _entry_mask(g, (B, 2))
    return pred, target, mask, mask, mask, torch.full_like(target, float("nan"))


def _va_bins(g: torch.Generator) -> Inputs:
    logits = torch.randn(B, 2, N_BINS, generator=g, dtype=torch.float64)
    _, target, mask, _, _, junk = _va(g)
    return logits, target, mask, mask[..., None].expand(B, 2, N_BINS), mask, junk


def _soft(g: torch.Generator) -> Inputs:
    logits, _, mask, logit_mask, _, _ = _expr(g)
    votes = torch.randint(0, 5, (B, N_EXPR), generator=g).double()
    votes[:, 0] += 1  # no empty vote row
    return logits, votes, mask, logit_mask, logit_mask, torch.full_like(votes, float("nan"))


def _kd_expr(g: torch.Generator) -> Inputs:
    logits, _, mask, logit_mask, _, _ = _expr(g)
    teacher = torch.randn(B, N_EXPR, generator=g, dtype=torch.float64)
    return logits, teacher, mask, logit_mask, logit_mask, torch.full_like(teacher, float("nan"))


def _kd_bins(g: torch.Generator) -> Inputs:
    logits, _, mask, logit_mask, _, _ = _va_bins(g)
    teacher = torch.randn(B, 2, N_BINS, generator=g, dtype=torch.float64)
    return logits, teacher, mask, logit_mask, logit_mask, 100 * torch.randn(B, 2, N_BINS, generator=g, dtype=torch.float64)


def _kd_au(g: torch.Generator) -> Inputs:
    logits, _, mask, _, _, _ = _au(g)
    teacher = torch.randn(B, N_AU, generator=g, dtype=torch.float64)
    return logits, teacher, mask, mask, mask, torch.full_like(teacher, float("nan"))


def _embedding(g: torch.Generator) -> Inputs:
    emb = torch.randn(B, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (B,), generator=g)
    mask = _rows_mask(g)
    return emb, target, mask, mask[:, None].expand(B, 6), mask, torch.full_like(target, -1)


POS_WEIGHT = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0])
CLASS_WEIGHT = torch.linspace(0.5, 2.0, N_EXPR)

CASES: dict[str, tuple[Callable[..., torch.Tensor], Callable[[torch.Generator], Inputs]]] = {
    "weighted_bce": (L.weighted_bce, _au),
    "weighted_bce_pos_weight": (lambda x, y, m: L.weighted_bce(x, y, m, pos_weight=POS_WEIGHT), _au),
    "class_weighted_ce": (L.class_weighted_ce, _expr),
    "class_weighted_ce_weights": (lambda x, y, m: L.class_weighted_ce(x, y, m, class_weight=CLASS_WEIGHT), _expr),
    "ccc_loss": (L.ccc_loss, _va),
    "circle_loss": (L.circle_loss, _au),
    "au_circle_bce_loss": (L.au_circle_bce_loss, _au),
    "label_smoothed_ce": (L.label_smoothed_ce, _expr),
    "soft_target_ce": (L.soft_target_ce, _soft),
    "va_bins_loss": (L.va_bins_loss, _va_bins),
    "kd_kl": (L.kd_kl, _kd_expr),
    "kd_kl_va_bins": (L.kd_kl, _kd_bins),
    "kd_bce": (L.kd_bce, _kd_au),
    "triplet_loss": (L.triplet_loss, _embedding),
}


def _loss_and_grad(fn: Callable[..., torch.Tensor], logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
    x = logits.detach().clone().requires_grad_(True)
    loss = fn(x, target, mask)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name: str) -> None:
    fn, build = CASES[name]
    logits, target, mask, *_ = build(_gen(1))
    x = logits.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: fn(z, target, mask), (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_masked_entries_change_nothing(name: str) -> None:
    fn, build = CASES[name]
    g = _gen(2)
    logits, target, mask, logit_mask, target_mask, junk = build(g)
    loss, grad = _loss_and_grad(fn, logits, target, mask)
    other_logits = torch.where(logit_mask, logits, 50 * torch.randn(logits.shape, generator=g, dtype=logits.dtype))
    other_target = torch.where(target_mask, target, junk)
    loss2, grad2 = _loss_and_grad(fn, other_logits, other_target, mask)
    assert torch.isfinite(loss) and loss > 0
    torch.testing.assert_close(loss2, loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad2, grad, rtol=1e-12, atol=1e-12)
    assert torch.all(grad[~logit_mask] == 0)
    assert torch.any(grad[logit_mask] != 0)


@pytest.mark.parametrize("name", list(CASES))
def test_all_masked_is_attached_zero(name: str) -> None:
    fn, build = CASES[name]
    logits, target, mask, *_ = build(_gen(3))
    nan_logits = torch.full_like(logits, float("nan")).requires_grad_(True)
    nan_target = torch.full_like(target, -1) if target.dtype == torch.long else torch.full_like(target, float("nan"))
    loss = fn(nan_logits, nan_target, torch.zeros_like(mask))
    assert loss.requires_grad and loss.item() == 0.0
    loss.backward()
    assert torch.all(nan_logits.grad == 0)


# --- class balance ------------------------------------------------------------------------------


def test_au_pos_weight_is_negatives_over_positives() -> None:
    labels = np.array([[1, 0, 0, 1], [0, 0, np.nan, 1], [0, 0, 1, np.nan], [np.nan, 0, 1, 1]])
    # AU0: 1 pos, 2 neg -> 2; AU1: no positives -> 1; AU2: 2 pos, 1 neg -> 0.5; AU3: no negatives -> 1
    torch.testing.assert_close(L.au_pos_weight(labels), torch.tensor([2.0, 1.0, 0.5, 1.0]))
    torch.testing.assert_close(L.au_pos_weight(torch.tensor(labels)), torch.tensor([2.0, 1.0, 0.5, 1.0]))


def test_expr_class_weights_inverse_frequency_mean_one_over_rows() -> None:
    """SMM eq. 5's weights average 1 over the training rows, so EXPR keeps its weight in eq. 7's sum."""
    labels = np.array([0, 0, 1, -1, 3, -1])
    w = L.expr_class_weights(labels, 5)
    # counts 2, 1, 0, 1, 0 over N = 4 rows and K = 3 present classes: w_c = N / (K · n_c)
    torch.testing.assert_close(w, torch.tensor([2 / 3, 4 / 3, 1.0, 4 / 3, 1.0]))
    assert w[labels[labels >= 0]].mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(L.expr_class_weights(np.array([-1]), 3), torch.ones(3))
    with pytest.raises(ValueError):
        L.expr_class_weights(np.array([0, 5]), 5)


# --- values ---------------------------------------------------------------------------------------


def test_weighted_bce_values() -> None:
    logits, target, mask, *_ = _au(_gen(4))
    torch.testing.assert_close(
        L.weighted_bce(logits, target, mask), F.binary_cross_entropy_with_logits(logits[mask], target[mask])
    )
    full = torch.ones_like(mask)
    pw = POS_WEIGHT.double()
    torch.testing.assert_close(
        L.weighted_bce(logits, target, full, pos_weight=POS_WEIGHT),
        F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw),
    )
    # P_i weights only the positive term: -(P·y·log σ(x) + (1 - y)·log(1 - σ(x)))
    x = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    hand = -(3.0 * math.log(torch.sigmoid(x[0, 0]).item()) + math.log(1 - torch.sigmoid(x[0, 1]).item())) / 2
    assert L.weighted_bce(x, y, torch.ones(1, 2, dtype=torch.bool), torch.tensor([3.0, 9.0])).item() == pytest.approx(hand)


def test_class_weighted_ce_values() -> None:
    logits, target, mask, *_ = _expr(_gen(5))
    torch.testing.assert_close(L.class_weighted_ce(logits, target, mask), F.cross_entropy(logits[mask], target[mask]))
    w = CLASS_WEIGHT.double()
    expected = F.cross_entropy(logits[mask], target[mask], weight=w, reduction="sum") / mask.sum()
    torch.testing.assert_close(L.class_weighted_ce(logits, target, mask, class_weight=CLASS_WEIGHT), expected)


def test_ccc_loss_values() -> None:
    pred, target, mask, *_ = _va(_gen(6))
    assert L.ccc_loss(target, target, torch.ones_like(mask)).item() == pytest.approx(0.0, abs=1e-12)
    expected = sum(1 - ccc(target[mask[:, d], d].numpy(), pred[mask[:, d], d].numpy()) for d in range(2))
    assert L.ccc_loss(pred, target, mask).item() == pytest.approx(expected, abs=1e-10)
    one_arousal = mask.clone()
    one_arousal[:, 1] = False
    one_arousal[2, 1] = True  # a single labelled arousal row: no CCC, contributes 0
    expected_v = 1 - ccc(target[mask[:, 0], 0].numpy(), pred[mask[:, 0], 0].numpy())
    assert L.ccc_loss(pred, target, one_arousal).item() == pytest.approx(expected_v, abs=1e-10)


def test_circle_loss_hand_case() -> None:
    s = torch.tensor([[2.0, -1.0, 0.5, 9.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])  # the 4th AU is in neither Ω0 nor Ω1
    hand = math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(-2.0) + math.exp(-0.5))
    assert L.circle_loss(s, y, mask).item() == pytest.approx(hand, abs=1e-12)
    # mean over rows with a labelled AU; an all-missing row does not dilute it
    s2, y2 = torch.cat([s, s]), torch.cat([y, y])
    mask2 = torch.cat([mask, torch.zeros_like(mask)])
    assert L.circle_loss(s2, y2, mask2).item() == pytest.approx(hand, abs=1e-12)
    big = torch.tensor([[800.0, -800.0]], dtype=torch.float64)  # stable for large logits
    assert torch.isfinite(L.circle_loss(big, torch.tensor([[0.0, 1.0]]), torch.ones(1, 2, dtype=torch.bool)))


def test_au_circle_bce_is_sum() -> None:
    logits, target, mask, *_ = _au(_gen(7))
    torch.testing.assert_close(
        L.au_circle_bce_loss(logits, target, mask), L.circle_loss(logits, target, mask) + L.weighted_bce(logits, target, mask)
    )


@pytest.mark.parametrize("lam", [0.9, 0.6, 1.0])
def test_label_smoothed_ce_matches_torch_label_smoothing(lam: float) -> None:
    logits, target, mask, *_ = _expr(_gen(8))
    eps = N_EXPR * (1 - lam) / (N_EXPR - 1)  # torch: target 1 - eps + eps/K, others eps/K
    expected = F.cross_entropy(logits[mask], target[mask], label_smoothing=eps)
    torch.testing.assert_close(L.label_smoothed_ce(logits, target, mask, lam=lam), expected)


def test_soft_target_ce_values() -> None:
    logits, votes, mask, *_ = _soft(_gen(9))
    q = votes[mask] / votes[mask].sum(1, keepdim=True)
    torch.testing.assert_close(L.soft_target_ce(logits, votes, mask), F.cross_entropy(logits[mask], q))
    torch.testing.assert_close(L.soft_target_ce(logits, 7 * votes, mask), L.soft_target_ce(logits, votes, mask))
    onehot = F.one_hot(torch.arange(B) % N_EXPR, N_EXPR).double()
    torch.testing.assert_close(
        L.soft_target_ce(logits, onehot, mask), F.cross_entropy(logits[mask], (torch.arange(B) % N_EXPR)[mask])
    )


def test_va_bins_and_expectation() -> None:
    va = torch.tensor([-1.0, -0.95, -0.01, 0.0, 0.99, 1.0, 1.5, float("nan")])
    assert L.va_to_bins(va).tolist() == [0, 0, 9, 10, 19, 19, 19, -1]
    centers = torch.tensor(va_bin_centers(20))
    assert centers[0].item() == pytest.approx(-0.95) and centers[-1].item() == pytest.approx(0.95)
    assert torch.all(L.va_to_bins(centers) == torch.arange(20))
    peaked = torch.full((1, 2, 20), -1e4, dtype=torch.float64)
    peaked[0, 0, 3], peaked[0, 1, 15] = 0.0, 0.0
    torch.testing.assert_close(L.va_from_bin_logits(peaked), torch.tensor([[-0.65, 0.55]], dtype=torch.float64))
    flat = torch.zeros(2, 2, 20)
    torch.testing.assert_close(L.va_from_bin_logits(flat), torch.zeros(2, 2), atol=1e-6, rtol=0)


def test_va_bins_loss_is_bin_ce_plus_ccc() -> None:
    logits, va, mask, *_ = _va_bins(_gen(10))
    bins = L.va_to_bins(va)
    ce = sum(F.cross_entropy(logits[mask[:, d], d], bins[mask[:, d], d]) for d in range(2))
    expected = ce + L.ccc_loss(L.va_from_bin_logits(logits), va, mask)
    torch.testing.assert_close(L.va_bins_loss(logits, va, mask), expected)


def test_va_bins_loss_reads_multi_database_eq2_once_per_batch_or_literally() -> None:
    """Eq. 2's (1/B)(1 - CCC) per sample, summed over the batch, is 1 - CCC once (the default); ``1/B``
    keeps the literal factor beside the mean CE. Both against a hand computation of Lin's CCC."""
    logits, va, mask, *_ = _va_bins(_gen(12))
    mask = torch.ones_like(mask)
    bins = L.va_to_bins(va)
    ce = sum(F.cross_entropy(logits[:, d], bins[:, d]) for d in range(2))
    pred = L.va_from_bin_logits(logits)
    one_minus_ccc = 0.0
    for d in range(2):
        x, y = pred[:, d].double(), va[:, d].double()
        cov = ((x - x.mean()) * (y - y.mean())).mean()
        one_minus_ccc += 1 - 2 * cov / (x.var(unbiased=False) + y.var(unbiased=False) + (x.mean() - y.mean()) ** 2)
    B = len(logits)
    torch.testing.assert_close(L.va_bins_loss(logits, va, mask).double(), ce.double() + one_minus_ccc, atol=1e-5, rtol=0)
    torch.testing.assert_close(L.va_bins_loss(logits, va, mask, ccc_weight="1/B").double(),
                               ce.double() + one_minus_ccc / B, atol=1e-5, rtol=0)
    torch.testing.assert_close(L.va_bins_loss(logits, va, mask, ccc_weight=3.0).double(),
                               ce.double() + 3 * one_minus_ccc, atol=1e-5, rtol=0)
    for bad in ("B", -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="ccc_weight"):
            L.va_bins_loss(logits, va, mask, ccc_weight=bad)


def test_kd_kl_matches_kl_div_and_detaches_teacher() -> None:
    student, teacher, mask, *_ = _kd_expr(_gen(11))
    teacher = teacher.clone().requires_grad_(True)
    T = 1.5
    expected = F.kl_div(F.log_softmax(student / T, 1), F.softmax(teacher / T, 1), reduction="batchmean")
    loss = L.kd_kl(student.requires_grad_(True), teacher)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    masked = F.kl_div(F.log_softmax(student[mask] / T, 1), F.softmax(teacher[mask] / T, 1), reduction="batchmean")
    torch.testing.assert_close(L.kd_kl(student, teacher, mask), masked)
    assert L.kd_kl(teacher, teacher).item() == pytest.approx(0.0, abs=1e-12)


def test_kd_kl_sums_valence_and_arousal() -> None:
    student, teacher, *_ = _kd_bins(_gen(12))
    T = 1.5
    per_dim = [
        F.kl_div(F.log_softmax(student[:, d] / T, -1), F.softmax(teacher[:, d] / T, -1), reduction="batchmean") for d in range(2)
    ]
    torch.testing.assert_close(L.kd_kl(student, teacher, T=T), per_dim[0] + per_dim[1])
    rows = torch.tensor([True, True, False, True, False, True])
    torch.testing.assert_close(L.kd_kl(student, teacher, rows), L.kd_kl(student[rows], teacher[rows]))


def test_kd_bce_matches_bce_on_sigmoid_teacher() -> None:
    student, teacher, mask, *_ = _kd_au(_gen(13))
    teacher = teacher.clone().requires_grad_(True)
    expected = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher.detach()))
    loss = L.kd_bce(student.requires_grad_(True), teacher)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert teacher.grad is None
    torch.testing.assert_close(
        L.kd_bce(student, teacher, mask), F.binary_cross_entropy_with_logits(student[mask], torch.sigmoid(teacher[mask].detach()))
    )
    rows = torch.tensor([True, False, True, True, False, False])
    torch.testing.assert_close(L.kd_bce(student, teacher, rows), L.kd_bce(student[rows], teacher[rows]))


def test_triplet_loss_pulls_a_class_together_and_pushes_others_away() -> None:
    """Streaming §3.2 (DLN): zero once every anchor's farthest positive is nearer, by the margin, than
    its nearest negative; positive where classes mix."""
    target, mask = torch.tensor([0, 0, 1, 1]), torch.ones(4, dtype=torch.bool)
    apart = torch.tensor([[1.0, 0.0], [0.99, 0.1], [-1.0, 0.0], [-0.99, -0.1]])
    assert L.triplet_loss(apart, target, mask).item() == 0.0
    mixed = apart[[0, 2, 1, 3]]
    assert L.triplet_loss(mixed, target, mask).item() > 1.0
