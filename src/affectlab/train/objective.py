"""The supervised training loss: a recipe's loss terms applied to a batch where its labels exist.

Each task (au, expr, va) has one term: a loss of :mod:`affectlab.losses` (table :data:`LOSSES`) and
a weight, so the same code gives SMM eq. 7 (unweighted sum of eqs. 4-6), teacher-student eq. 4
(8·L_AU + L_EXPR + L_V + L_A), the streaming paper's eq. 7 (each loss only where its label exists)
and multi-database eq. 7 (``reduce: group``: each sampler group — EXPR, VA, EXPR_VA — averaged on
its own rows, the groups summed). Which labels count is decided by :func:`label_masks`: a row's own
masks, narrowed to the tasks its sampler group supervises.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch import Tensor

from affectlab import losses as L
from affectlab.labels import LabelSchema
from affectlab.models import Prediction
from affectlab.train.config import TASKS, ConfigError, Loss

#: Loss name -> (task, function(prediction tensor, target, mask, **options)); see affectlab.losses.
LOSSES: dict[str, tuple[str, Callable[..., Tensor]]] = {
    "weighted_bce": ("au", L.weighted_bce),          # SMM eq. 4; teacher-student eq. 1; streaming eq. 2
    "circle": ("au", L.circle_loss),                 # streaming eq. 1
    "au_circle_bce": ("au", L.au_circle_bce_loss),   # streaming eq. 3
    "ce": ("expr", L.class_weighted_ce),             # SMM eq. 5; teacher-student eq. 2; multi-database eq. 1
    "label_smoothed_ce": ("expr", L.label_smoothed_ce),  # streaming eq. 4
    "triplet": ("expr", L.triplet_loss),             # streaming §3.2: the prior's embedding, by expression
    "ccc": ("va", L.ccc_loss),                       # SMM eq. 6; streaming eq. 6
    "va_bins": ("va", L.va_bins_loss),               # teacher-student eq. 3; multi-database eq. 2
}


def flatten_time(pred: Prediction, batch: dict) -> tuple[Prediction, dict]:
    """Sequence models give (B, T, ...) outputs and clips (B, T, ...) labels: make both (B·T, ...)."""
    if pred.au.dim() != 3:
        return pred, batch
    T = pred.au.shape[1]
    flat = {k: (v.flatten(0, 1) if isinstance(v, Tensor) and v.dim() >= 2 and v.shape[1] == T and k != "image" else v)
            for k, v in batch.items()}
    for k in ("group", "index"):
        flat[k] = batch[k].repeat_interleave(T)
    out = Prediction(au=pred.au.flatten(0, 1), expr=pred.expr.flatten(0, 1), va=pred.va.flatten(0, 1),
                     va_bins=None if pred.va_bins is None else pred.va_bins.flatten(0, 1), features=pred.features)
    return out, flat


def label_masks(batch: dict, group_tasks: Tensor | None) -> dict[str, Tensor]:
    """Per-task masks of the labels to learn from: the batch's own, within its group's ``tasks``.

    ``group_tasks`` (G, 3) bool says which of au, expr, va each sampler group supervises; rows with
    group -1 (evaluation) keep every label.
    """
    masks = {"au": batch["au_mask"].bool(), "expr": batch["expr_mask"].bool(),
             "soft": batch["expr_soft_mask"].bool(), "va": batch["va_mask"].bool()}
    if group_tasks is None:
        return masks
    group = batch["group"]
    allowed = torch.where((group >= 0)[:, None], group_tasks.to(group.device)[group.clamp(min=0)],
                          torch.ones(len(group), 3, dtype=torch.bool, device=group.device))
    out = {}
    for name, mask in masks.items():
        keep = allowed[:, TASKS.index("expr" if name == "soft" else name)]
        out[name] = mask & keep.view(-1, *([1] * (mask.dim() - 1)))
    return out


class Objective:
    """The recipe's supervised loss, with class weights computed from the training labels."""

    def __init__(self, spec: Loss, schema: LabelSchema, train_labels: pd.DataFrame, has_va_bins: bool):
        self.spec, self.schema = spec, schema
        self.options: dict[str, dict] = {}
        for task, term in spec.terms.items():
            if term.fn == "va_bins" and not has_va_bins:
                raise ValueError("loss va_bins needs a model with VA bins (e.g. model.config.va_bins=20)")
            options = dict(term.options)
            if term.pos_weight:
                if term.fn != "weighted_bce":
                    raise ValueError("pos_weight (SMM eq. 4) goes with weighted_bce")
                options["pos_weight"] = L.au_pos_weight(train_labels[list(schema.au_names)].to_numpy(copy=True))
            if term.class_weight:
                if term.fn != "ce":
                    raise ValueError("class_weight (SMM eq. 5) goes with ce")
                options["class_weight"] = L.expr_class_weights(train_labels["expr"].to_numpy(copy=True), schema.n_expr)
            self.options[task] = options

    @property
    def weights(self) -> dict[str, float]:
        return {task: term.weight for task, term in self.spec.terms.items()}

    def task_losses(self, pred: Prediction, batch: dict, masks: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each task's unweighted loss; ``reduce: group`` sums the per-group losses."""
        if self.spec.reduce == "batch":
            return {task: self.term(task, pred, batch, masks) for task in self.spec.terms}
        groups = [int(g) for g in torch.unique(batch["group"]).tolist()]
        out = {}
        for task in self.spec.terms:
            parts = []
            for g in groups:
                rows = batch["group"] == g
                sub = {k: m & rows.view(-1, *([1] * (m.dim() - 1))) for k, m in masks.items()}
                parts.append(self.term(task, pred, batch, sub))
            out[task] = torch.stack(parts).sum()
        return out

    def term(self, task: str, pred: Prediction, batch: dict, masks: dict[str, Tensor]) -> Tensor:
        """One task's loss, its mean over the labelled entries in ``masks``."""
        fn = LOSSES[self.spec.terms[task].fn][1]
        options = self.options[task]
        if task == "au":
            return fn(pred.au.float(), batch["au"], masks["au"], **options)
        if task == "va":
            out = pred.va_bins if self.spec.terms[task].fn == "va_bins" else pred.va
            return fn(out.float(), batch["va"], masks["va"], **options)
        if self.spec.terms[task].fn == "triplet":
            if "emb" not in pred.features:
                raise ConfigError("loss triplet trains an expression embedding: it needs a model with one "
                                  "(features['emb'], e.g. streaming)")
            return fn(pred.features["emb"], batch["expr"], masks["expr"], **options)
        logits = pred.expr.float()
        if not self.spec.terms[task].soft_targets:
            return fn(logits, batch["expr"], masks["expr"], **options)
        # vote distributions where there are some (FER+), hard labels elsewhere: a mean over both kinds of rows
        soft, hard = masks["soft"], masks["expr"] & ~masks["soft"]
        n_soft, n_hard = soft.sum(), hard.sum()
        total = (L.soft_target_ce(logits, batch["expr_soft"], soft) * n_soft
                 + fn(logits, batch["expr"], hard, **options) * n_hard)
        return total / (n_soft + n_hard).clamp(min=1)

