"""The papers' training losses, masked where a label is missing.

Batch contract (DESIGN.md): ``au`` (B, n_au) 0/1 with ``au_mask`` (B, n_au); ``expr`` (B,) long with
``expr_mask`` (B,); ``expr_soft`` (B, n_expr) vote distributions; ``va`` (B, 2) with ``va_mask`` (B, 2).
Every loss uses only the labelled entries: masked-out labels and logits are replaced by zeros with
``torch.where`` *before* any arithmetic, so whatever they hold (NaN, -1, garbage) changes neither
the loss nor any gradient, and masked entries get exactly zero gradient. With nothing labelled a
loss is a 0 that is still attached to the graph, never NaN.

Papers (search "SMM eq. 4", "streaming eq. 1", "teacher-student eq. 5", ...):
- SMM: smm-emotionnet-sign-and-message §3.2, eqs. 4-7.
- streaming: prior-aided-streaming-network §3.3, eqs. 1-6.
- teacher-student: teacher-student-partial-labels §3, eqs. 1-7.
- multi-database distillation: multitask-multidatabase-distillation §3.2, eqs. 1-10 (its KL terms,
  eqs. 4-6, are :func:`kd_kl`; its "distil only where the label is NA", eq. 10, is the ``mask``).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from affectlab.labels import N_VA_BINS
from affectlab.models.heads import va_from_bin_logits


def _zero_masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with masked-out entries set to 0; their gradient is exactly 0 and no NaN leaks through."""
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask``; an attached 0 when the mask is empty."""
    return _zero_masked(values, mask).sum() / mask.sum().clamp(min=1)


def _expand_mask(mask: torch.Tensor | None, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A row mask (B,) or entry mask broadcast to ``shape`` by adding trailing dims; None = all."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    mask = mask.bool()
    while mask.dim() < len(shape):
        mask = mask.unsqueeze(-1)
    return mask.expand(shape)


def _masked_ccc(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """CCC of 1-D ``x`` and ``y`` over ``mask``, population moments (streaming eq. 5).

    ``CCC = 2·cov / (σ_x² + σ_y² + (μ_x - μ_y)²)``; the denominator is clamped at ``eps`` so a
    degenerate pair (both constant and equal) gives CCC 0 instead of NaN.
    """
    n = mask.sum().clamp(min=1)
    x, y = _zero_masked(x, mask), _zero_masked(y, mask)
    mx, my = x.sum() / n, y.sum() / n
    dx, dy = _zero_masked(x - mx, mask), _zero_masked(y - my, mask)
    cov = (dx * dy).sum() / n
    denom = (dx.pow(2).sum() + dy.pow(2).sum()) / n + (mx - my).pow(2)
    return 2 * cov / denom.clamp(min=eps)


# --- class balance from the training set -----------------------------------------------------


def au_pos_weight(au_labels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """P_i^AU of SMM eq. 4: #negatives / #positives of each AU over its labelled (non-NaN) entries.

    ``au_labels`` (N, n_au), NaN missing. An AU with no positives or no negatives, where the ratio
    is undefined or 0 (which would silence its positives), gets 1.0, i.e. no re-weighting.
    """
    labels = torch.as_tensor(np.asarray(au_labels, dtype=np.float64).copy())  # pandas 3 hands out read-only arrays
    pos = (labels == 1).sum(0).double()
    neg = (labels == 0).sum(0).double()
    weight = torch.where((pos > 0) & (neg > 0), neg / pos.clamp(min=1), torch.ones_like(pos))
    return weight.float()


def expr_class_weights(expr_labels: np.ndarray | torch.Tensor, n_classes: int) -> torch.Tensor:
    """P^EXPR of SMM eq. 5: inverse class frequency in the training labels, scaled so that the mean
    weight over the training rows is 1 (so EXPR keeps its share of SMM eq. 7's unweighted sum).

    ``expr_labels`` (N,), -1 (or NaN) missing. A class absent from the labels gets 1.0: it never
    weighs a training target, and if it turns up later it is neither ignored nor blown up.
    """
    labels = np.asarray(expr_labels, dtype=np.float64).reshape(-1)
    labels = labels[labels >= 0].astype(np.int64)
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"expression label {labels.max()} outside 0..{n_classes - 1}")
    counts = torch.as_tensor(np.bincount(labels, minlength=n_classes), dtype=torch.float64)
    present = counts > 0
    weight = torch.ones(n_classes, dtype=torch.float64)
    if present.any():
        # w_c = N / (K · n_c): Σ_c (n_c / N) · w_c = 1 over the K present classes
        weight[present] = counts.sum() / (present.sum() * counts[present])
    return weight.float()


# --- supervision losses ----------------------------------------------------------------------


def weighted_bce(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, pos_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """AU loss, SMM eq. 4 (with ``pos_weight=None`` also streaming eq. 2 and teacher-student eq. 1).

    L^AU = -(1/U) Σ_i [ P_i^AU · y_i · log σ(ŷ_i) + (1 - y_i) · log(1 - σ(ŷ_i)) ]

    P_i^AU (``pos_weight``, (n_au,), see :func:`au_pos_weight`) weights only the positive term, as
    in the paper. Mean over labelled entries. ``logits``, ``target``, ``mask``: (B, n_au).
    """
    logits, target = _zero_masked(logits, mask), _zero_masked(target.to(logits.dtype), mask)
    if pos_weight is not None:
        pos_weight = pos_weight.to(dtype=logits.dtype, device=logits.device)
    per_entry = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
    return _masked_mean(per_entry, mask)


def class_weighted_ce(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, class_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """EXPR loss, SMM eq. 5 (with ``class_weight=None`` also teacher-student eq. 2).

    L^EXPR = -Σ_i P_i^EXPR · y_i · log ρ_i(ŷ),   ρ = softmax

    Mean of the per-row loss over labelled rows: Σ P_y·CE / n (torch's weighted ``mean`` would
    divide by Σ P_y instead, undoing the re-weighting in a one-class batch). ``logits`` (B, C),
    ``target`` (B,) class ids, ``mask`` (B,), ``class_weight`` (C,) see :func:`expr_class_weights`.
    """
    mask = mask.bool()
    logits = _zero_masked(logits, mask[:, None])
    target = torch.where(mask, target, torch.zeros_like(target)).long()
    per_row = F.cross_entropy(logits, target, reduction="none")
    if class_weight is not None:
        per_row = per_row * class_weight.to(dtype=logits.dtype, device=logits.device)[target]
    return _masked_mean(per_row, mask)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """VA loss, SMM eq. 6 (= streaming eq. 6): L^VA = (1 - CCC^V) + (1 - CCC^A).

    ``pred``, ``target``, ``mask``: (B, 2). Each dimension uses its own labelled rows; a dimension
    with fewer than 2 labelled rows has no CCC and contributes 0.
    """
    mask = mask.bool()
    terms = []
    for d in range(pred.shape[1]):
        m = mask[:, d]
        term = 1 - _masked_ccc(pred[:, d], target[:, d].to(pred.dtype), m)
        terms.append(torch.where(m.sum() >= 2, term, torch.zeros_like(term)))
    return torch.stack(terms).sum()


def triplet_loss(embedding: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The prior's similarity objective (streaming §3.2, Fig. 2; DLN's triplet loss):

    L = max(0, d(a, p) - d(a, n) + margin)

    for each anchor a: p the farthest row of the same expression class, n the nearest of another
    class (batch-hard triplets, since no FECNet triplets are available), d the Euclidean distance of
    L2-normalised embeddings. Mean over anchors that have both; ``embedding`` (B, D), ``target``
    (B,) class ids, ``mask`` (B,). The paper does not give the margin; 0.2.
    """
    mask = mask.bool()
    e = F.normalize(_zero_masked(embedding, mask[:, None]), dim=1)
    dist = torch.sqrt((2 - 2 * e @ e.T).clamp(min=1e-12))
    both = mask[:, None] & mask[None, :]
    same = (target[:, None] == target[None, :]) & both
    positive = same & ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    negative = both & ~same
    far_positive = torch.where(positive, dist, torch.zeros_like(dist)).amax(1)
    near_negative = torch.where(negative, dist, torch.full_like(dist, 4.0)).amin(1)
    per_anchor = F.relu(far_positive - near_negative + margin)
    return _masked_mean(per_anchor, positive.any(1) & negative.any(1))


def circle_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multi-label circle loss, streaming eq. 1.

    L_Circle = log(1 + Σ_{i∈Ω0} e^{s_i}) + log(1 + Σ_{j∈Ω1} e^{-s_j}),  Ω0 = {i | y_i = 0}, Ω1 = {j | y_j = 1}

    Pushes every active AU's logit above 0 and every inactive one below 0, jointly per face.
    Masked AUs belong to neither Ω0 nor Ω1. Computed as a logsumexp with a 0 term (the "1 +"), so
    it is stable for large logits. Mean over rows with at least one labelled AU. (B, n_au) inputs.
    """
    mask = mask.bool()
    s = _zero_masked(logits, mask)
    y = _zero_masked(target.to(logits.dtype), mask)
    neg_inf = torch.full_like(s, float("-inf"))
    zero = torch.zeros_like(s[:, :1])
    omega0 = torch.where(mask & (y == 0), s, neg_inf)
    omega1 = torch.where(mask & (y == 1), -s, neg_inf)
    per_row = torch.logsumexp(torch.cat([zero, omega0], 1), 1) + torch.logsumexp(torch.cat([zero, omega1], 1), 1)
    return _masked_mean(per_row, mask.any(1))


def au_circle_bce_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AU loss of the streaming paper, eq. 3: L_AU = L_Circle (eq. 1) + L_CrossEntropy (eq. 2)."""
    return circle_loss(logits, target, mask) + weighted_bce(logits, target, mask)


def label_smoothed_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, lam: float = 0.9) -> torch.Tensor:
    """EXPR soft cross-entropy, streaming eq. 4, λ = ``lam`` = 0.9 in the paper.

    L_EXPR = -[ λ · log ẑ_e + Σ_{i≠e} (1 - λ)/(K - 1) · log ẑ_i ]

    As printed, eq. 4 drops the minus sign and gives each of the K-1 other classes weight (1 - λ),
    so its target does not sum to one; this is the normalised form the text describes (label
    smoothing): λ on the true class e, (1 - λ)/(K - 1) on each other class. It equals
    ``F.cross_entropy(label_smoothing=K(1 - λ)/(K - 1))``. Mean over labelled rows; ``logits``
    (B, K), ``target`` (B,), ``mask`` (B,).
    """
    mask = mask.bool()
    k = logits.shape[1]
    logits = _zero_masked(logits, mask[:, None])
    target = torch.where(mask, target, torch.zeros_like(target)).long()
    soft = torch.full_like(logits, (1 - lam) / (k - 1)).scatter(1, target[:, None], lam)
    per_row = -(soft * F.log_softmax(logits, 1)).sum(1)
    return _masked_mean(per_row, mask)


def soft_target_ce(logits: torch.Tensor, soft_target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a vote distribution (FER+ votes): -Σ_i q_i · log softmax(ŷ)_i.

    ``soft_target`` (B, C) rows are normalised to sum 1 (raw vote counts are fine). Mean over
    labelled rows ``mask`` (B,).
    """
    mask = mask.bool()
    logits = _zero_masked(logits, mask[:, None])
    votes = _zero_masked(soft_target.to(logits.dtype), mask[:, None])
    q = votes / votes.sum(1, keepdim=True).clamp(min=torch.finfo(logits.dtype).tiny)
    return _masked_mean(-(q * F.log_softmax(logits, 1)).sum(1), mask)


# --- VA as 20-bin classification (teacher-student eq. 3) ---------------------------------------


def va_to_bins(va: torch.Tensor, n_bins: int = N_VA_BINS) -> torch.Tensor:
    """Bin index (long, same shape) of VA values under ``n_bins`` equal-width bins over [-1, 1].

    Values outside [-1, 1] go to the end bins (1.0 itself is in the last bin); NaN gives -1.
    """
    idx = torch.floor((va + 1) / 2 * n_bins).clamp(0, n_bins - 1)
    return torch.where(torch.isnan(va), torch.full_like(idx, -1), idx).long()


def ccc_scale(ccc_weight: str | float, batch: int) -> float:
    """The factor of va_bins_loss's 1 - CCC term: 1 (``"once"``), 1/B (``"1/B"``) or a number >= 0."""
    if ccc_weight == "once":
        return 1.0
    if ccc_weight == "1/B":
        return 1.0 / batch
    if isinstance(ccc_weight, (int, float)) and not isinstance(ccc_weight, bool) and 0 <= ccc_weight < float("inf"):
        return float(ccc_weight)
    raise ValueError(f"ccc_weight is 'once', '1/B' or a number >= 0, got {ccc_weight!r}")


def va_bins_loss(bin_logits: torch.Tensor, va: torch.Tensor, mask: torch.Tensor,
                 ccc_weight: Literal["once", "1/B"] | float = "once") -> torch.Tensor:
    """VA loss, teacher-student eq. 3, summed over V and A as in its eq. 4 (L_V + L_A).

    L_{V,A} = -Σ_k y_{k,*} · log softmax(ŷ)_k + (1 - CCC(y, E[ŷ]))

    The first term is the cross-entropy on the 20 bins (:func:`va_to_bins`), mean over the
    dimension's labelled rows; the second is 1 - CCC of the expectation (:func:`va_from_bin_logits`)
    against the continuous label, as in :func:`ccc_loss`. ``bin_logits`` (B, 2, n_bins), ``va`` and
    ``mask`` (B, 2).

    Multi-database eq. 2 writes the CCC term of each sample as (1/B)(1 - CCC): summed over a batch's
    B samples that is the batch's 1 - CCC once, which is ``ccc_weight="once"`` (the CE a mean, the
    CCC once). ``"1/B"`` reads it literally against the mean CE: (1/B)(1 - CCC), B = ``len(bin_logits)``.
    A number w weighs the batch's 1 - CCC by w against the CE (``"once"`` is w = 1): CCC rewards the
    right mean and spread, which the bins' CE alone pulls towards the middle bins.
    """
    mask = mask.bool()
    n_bins = bin_logits.shape[-1]
    bin_logits = _zero_masked(bin_logits, mask[..., None])
    va = _zero_masked(va.to(bin_logits.dtype), mask)
    ce = F.cross_entropy(bin_logits.reshape(-1, n_bins), va_to_bins(va, n_bins).reshape(-1), reduction="none")
    ce = _zero_masked(ce.reshape(mask.shape), mask).sum(0) / mask.sum(0).clamp(min=1)
    scale = ccc_scale(ccc_weight, len(bin_logits))
    return ce.sum() + scale * ccc_loss(va_from_bin_logits(bin_logits), va, mask)


# --- distillation (teacher-student eqs. 5-6, multi-database eqs. 4-6) --------------------------


def kd_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None, T: float = 1.5
) -> torch.Tensor:
    """EXPR/VA distillation, teacher-student eq. 5 (multi-database eqs. 4-6):

    L^d = KL( softmax(ŷ_t / T) ‖ softmax(ŷ_s / T) ),   KL(p, q) = Σ_i p_i log(p_i / q_i),  T = 1.5

    Softmax over the last dim, so it serves EXPR logits (B, C) and VA bin logits (B, 2, n_bins);
    for the latter the KLs of V and A are summed, as in multi-database eq. 5. Averaged over rows
    in ``mask`` ((B,) rows, or (B, 2) per VA dimension; None = all), which is how multi-database
    eq. 10 distils only where the label is missing. No T² factor (the papers have none). The
    teacher is detached.
    """
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    entry = _expand_mask(mask, student_logits.shape[:-1], student_logits.device)
    s = _zero_masked(student_logits, entry[..., None]) / T
    t = _zero_masked(teacher_logits, entry[..., None]) / T
    kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="none").sum(-1)
    per_row = _zero_masked(kl, entry).reshape(kl.shape[0], -1).sum(1)
    return _masked_mean(per_row, entry.reshape(kl.shape[0], -1).any(1))


def kd_bce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """AU distillation, teacher-student eq. 6: BCE of the student against the teacher's σ.

    L^d_FAU = -(1/C) Σ_i [ σ(ŷ_t) · log σ(ŷ_s) + (1 - σ(ŷ_t)) · log(1 - σ(ŷ_s)) ]

    Mean over entries in ``mask`` ((B,) rows or (B, C) entries; None = all). The teacher is detached.
    """
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    entry = _expand_mask(mask, student_logits.shape, student_logits.device)
    soft = torch.sigmoid(_zero_masked(teacher_logits, entry))
    per_entry = F.binary_cross_entropy_with_logits(_zero_masked(student_logits, entry), soft, reduction="none")
    return _masked_mean(per_entry, entry)
