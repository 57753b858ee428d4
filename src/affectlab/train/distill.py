"""Teacher -> student: soft labels from a trained teacher where ground truth is missing or as well as it.

Teacher-student eq. 7 (and multi-database eqs. 8 and 10, "with sharing"), per task j of each row:

    labelled row:    λ · L_j(y, s) + (1 - λ) · L^d_j(t, s)
    unlabelled row:                       L^d_j(t, s)

with L^d the distillation losses of teacher-student eqs. 5-6 (:func:`affectlab.losses.kd_kl` at
temperature T for EXPR and VA bins, :func:`affectlab.losses.kd_bce` for AUs). Which labels count as
present is the sampler group's business (:func:`affectlab.train.objective.label_masks`): a group
that supervises only its own task turns the rule into multi-database eq. 9 ("no sharing"), one that
supervises every label it has into eq. 10. The recipe's task weights (teacher-student eq. 4) weigh
each task's whole student term; eq. 7 itself is written without them.

The teacher's outputs come either from the teacher run on the student's batch (``online``) or from
a table computed once on unaugmented images (``cached``, :class:`CachedTeacher`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from affectlab.losses import kd_bce, kd_kl
from affectlab.models import Prediction
from affectlab.train.objective import Objective


def _split_weighted(fn: Callable[..., Tensor], labelled: Tensor, lam: float) -> Tensor:
    """Mean of a per-entry distillation loss with weight 1 - λ on labelled and 1 on unlabelled entries."""
    unlabelled = ~labelled
    n_lab, n_unl = labelled.sum(), unlabelled.sum()
    total = (1 - lam) * fn(labelled) * n_lab + fn(unlabelled) * n_unl
    return total / (n_lab + n_unl).clamp(min=1)


def distillation_losses(student: Prediction, teacher: Prediction, masks: dict[str, Tensor], lam: float,
                        T: float) -> dict[str, Tensor]:
    """Each task's distillation term over every row of the batch (weights as in the module docstring).

    VA: KL between the bin distributions (teacher-student eq. 5, multi-database eq. 5) when both
    models have bins; a model without bins matches the teacher's VA in mean squared error instead.
    """
    out = {"au": _split_weighted(lambda m: kd_bce(student.au.float(), teacher.au, m), masks["au"], lam),
           "expr": _split_weighted(lambda m: kd_kl(student.expr.float(), teacher.expr, m, T=T),
                                   masks["expr"] | masks["soft"], lam)}
    if student.va_bins is not None and teacher.va_bins is not None:
        out["va"] = _split_weighted(lambda m: kd_kl(student.va_bins.float(), teacher.va_bins, m, T=T), masks["va"], lam)
    else:
        def mse(m: Tensor) -> Tensor:
            err = F.mse_loss(student.va.float(), teacher.va.detach().to(torch.float32), reduction="none")
            return torch.where(m, err, torch.zeros_like(err)).sum() / m.sum().clamp(min=1)
        out["va"] = _split_weighted(mse, masks["va"], lam)
    return out


def student_loss(objective: Objective, student: Prediction, teacher: Prediction, batch: dict,
                 masks: dict[str, Tensor], lam: float, T: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Teacher-student eq. 7 / multi-database eq. 10 summed over the recipe's tasks; returns the total
    and its parts (``<task>`` supervised, ``<task>_kd`` distillation, both unweighted)."""
    supervised = objective.task_losses(student, batch, masks)
    distilled = distillation_losses(student, teacher, masks, lam, T)
    weights = objective.weights
    total = sum(weights[t] * (lam * supervised[t] + distilled[t]) for t in supervised)
    return total, {**supervised, **{f"{t}_kd": distilled[t] for t in supervised}}


class CachedTeacher:
    """A teacher's outputs for every dataset row, computed once; looked up by the batch's ``index``."""

    def __init__(self, outputs: dict[str, Tensor]):
        self.outputs = outputs

    def __call__(self, index: Tensor) -> Prediction:
        get = lambda k: self.outputs[k][index.cpu()].to(index.device)  # noqa: E731
        return Prediction(au=get("au"), expr=get("expr"), va=get("va"),
                          va_bins=get("va_bins") if "va_bins" in self.outputs else None)
