"""Teacher -> student: soft labels from a trained teacher where ground truth is missing or as well as it.

Teacher-student eq. 7 (and multi-database eqs. 8 and 10, "with sharing"), for each sample and task i:

    labelled:     λ · L_(i)(y, ŷ_s) + (1 - λ) · L^d_(i)(ŷ_t, ŷ_s)
    unlabelled:                           L^d_(i)(ŷ_t, ŷ_s)

summed over the tasks and averaged over the batch's samples, so that the balance is exactly
λ : (1 - λ) on every labelled sample and a task weighs by how many samples carry it. L^d are the
distillation losses of teacher-student eqs. 5-6 (:func:`affectlab.losses.kd_kl` at temperature T
for EXPR and VA bins, :func:`affectlab.losses.kd_bce` for AUs). L_FAU (eq. 1) and L^d_FAU (eq. 6)
average over the C AUs of a sample, entry by entry where a sample's AU labels are partial; L_V and
L_A (eq. 3) are each a sample's own term. A loss with a batch statistic (eq. 3's CCC) gives each
labelled sample its value over the batch's labelled samples.

Which labels count as present is the sampler group's business
(:func:`affectlab.train.objective.label_masks`): a group that supervises only its own task turns the
rule into multi-database eq. 9 ("no sharing"), one that supervises every label it has into eq. 10.
Eq. 7 is written without task weights: the recipe's weights (teacher-student eq. 4's 8·L_FAU) are
the teacher's, and the student's terms are unweighted unless ``distill.task_weights`` gives them
those weights too.

The teacher's outputs come either from the teacher run on the student's batch (``online``) or from
a table computed once on unaugmented images (``cached``, :class:`CachedTeacher`). Several teachers
teach as one (:func:`ensemble_teacher`): the teacher-student "Student Ensemble" distilled back into a
single fast model.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from affectlab.losses import kd_bce, kd_kl
from affectlab.models import Prediction
from affectlab.train.objective import Objective

#: A task loss as a function of the entries it covers: its mean over those entries.
MaskedLoss = Callable[[Tensor], Tensor]


def summed_over_samples(fn: MaskedLoss, mask: Tensor, task: str) -> Tensor:
    """Σ over the samples in ``mask`` of a task's per-sample loss, from ``fn(mask)``, its mean there.

    AU: a sample's loss is the mean over the C AUs (teacher-student eqs. 1 and 6), so labelled
    entries count 1/C each. VA: L_V + L_A, each dimension over its own labelled samples.
    """
    if task == "va":
        total = torch.zeros((), device=mask.device)
        for d in range(mask.shape[1]):
            only_d = torch.zeros_like(mask)
            only_d[:, d] = mask[:, d]
            total = total + fn(only_d) * only_d.sum()
        return total
    per_sample = mask.shape[1] if task == "au" else 1
    return fn(mask) * mask.sum() / per_sample


def distillation_fns(student: Prediction, teacher: Prediction, T: float) -> dict[str, MaskedLoss]:
    """Each task's distillation loss L^d as a function of the entries it covers.

    VA: KL between the bin distributions (teacher-student eq. 5, multi-database eq. 5) when both
    models have bins; a model without bins matches the teacher's VA in mean squared error instead.
    """
    fns: dict[str, MaskedLoss] = {
        "au": lambda m: kd_bce(student.au.float(), teacher.au, m),
        "expr": lambda m: kd_kl(student.expr.float(), teacher.expr, m, T=T)}
    if student.va_bins is not None and teacher.va_bins is not None:
        fns["va"] = lambda m: kd_kl(student.va_bins.float(), teacher.va_bins, m, T=T)
    else:
        def mse(m: Tensor) -> Tensor:
            err = F.mse_loss(student.va.float(), teacher.va.detach().to(torch.float32), reduction="none")
            return torch.where(m, err, torch.zeros_like(err)).sum() / m.sum().clamp(min=1)
        fns["va"] = mse
    return fns


def labelled_entries(masks: dict[str, Tensor], task: str) -> Tensor:
    """The entries of ``task`` that carry ground truth (EXPR: a hard label or a vote distribution)."""
    return masks["expr"] | masks["soft"] if task == "expr" else masks[task]


def student_loss(objective: Objective, student: Prediction, teacher: Prediction, batch: dict,
                 masks: dict[str, Tensor], lam: float, T: float,
                 weights: dict[str, float] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Teacher-student eq. 7 / multi-database eqs. 8-10, averaged over the batch's samples.

    Returns the total and its parts, which add up to it: ``<task>`` the supervised part
    λ·Σ L_(i) / B, ``<task>_kd`` the distillation part Σ (1 - λ or 1)·L^d_(i) / B. ``weights``
    (``distill.task_weights``): each task's two parts times its weight in the teacher's loss (eq. 4's
    8·L_FAU), which eq. 7 as written leaves out.
    """
    n_samples = len(batch["group"])
    distill = distillation_fns(student, teacher, T)
    parts: dict[str, Tensor] = {}
    for task in objective.spec.terms:
        labelled = labelled_entries(masks, task)
        supervised = lambda m, t=task: objective.term(t, student, batch, {**masks, **_narrow(masks, t, m)})  # noqa: E731
        w = 1.0 if weights is None else weights[task]
        parts[task] = w * lam * summed_over_samples(supervised, labelled, task) / n_samples
        parts[f"{task}_kd"] = w * ((1 - lam) * summed_over_samples(distill[task], labelled, task)
                                   + summed_over_samples(distill[task], ~labelled, task)) / n_samples
    return sum(parts.values()), parts


def _narrow(masks: dict[str, Tensor], task: str, entries: Tensor) -> dict[str, Tensor]:
    """``masks`` for ``task`` restricted to ``entries`` (EXPR: both hard and vote rows)."""
    if task == "expr":
        return {"expr": masks["expr"] & entries, "soft": masks["soft"] & entries}
    return {task: masks[task] & entries}


def ensemble_teacher(outputs: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Several teachers' raw outputs as one teacher's: probabilities averaged, as the teacher-student
    "Student Ensemble" averages them, and returned as logits, so eqs. 5-6 read them unchanged.

    AU: logit of the mean σ. EXPR and VA bins: log of the mean softmax, whose softmax at temperature T
    is the mean's own tempering (for one teacher, exactly its softmax at T). VA: the mean.
    """
    if len(outputs) == 1:
        return dict(outputs[0])
    eps = 1e-6
    shared = [k for k in outputs[0] if all(o.get(k) is not None for o in outputs)]
    if "va_bins" in shared and len({o["va_bins"].shape for o in outputs}) > 1:
        shared.remove("va_bins")  # bins of different sizes: the student matches the mean VA instead
    stacked = {k: torch.stack([o[k].float() for o in outputs]) for k in shared}
    out = {"au": torch.logit(torch.sigmoid(stacked["au"]).mean(0), eps=eps),
           "expr": torch.softmax(stacked["expr"], -1).mean(0).clamp_min(eps).log(),
           "va": stacked["va"].mean(0)}
    if "va_bins" in stacked:
        out["va_bins"] = torch.softmax(stacked["va_bins"], -1).mean(0).clamp_min(eps).log()
    return out


class CachedTeacher:
    """A teacher's outputs for every dataset row, computed once; looked up by the batch's ``index``."""

    def __init__(self, outputs: dict[str, Tensor]):
        self.outputs = outputs

    def __call__(self, index: Tensor) -> Prediction:
        get = lambda k: self.outputs[k][index.cpu()].to(index.device)  # noqa: E731
        return Prediction(au=get("au"), expr=get("expr"), va=get("va"),
                          va_bins=get("va_bins") if "va_bins" in self.outputs else None)
