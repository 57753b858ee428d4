"""Every registered model: the Prediction contract, forward and backward, and masked-task gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectlab.models import Prediction, list_models

TASKS = ("au", "expr", "va")


def test_every_registered_model_has_a_small_setting(small_settings):
    assert sorted(small_settings) == list_models()


def task_heads(model: nn.Module, task: str) -> list[nn.Module]:
    """A task's head in every member (an ensemble has two)."""
    return [m[task] for name, m in model.named_modules() if isinstance(m, nn.ModuleDict) and name.endswith("heads")]


def masked_loss(p: Prediction, task: str, labelled: Tensor) -> Tensor:
    """A task's loss summed over the labelled rows only; unlabelled rows contribute exactly 0."""
    if task == "au":
        per_row = F.binary_cross_entropy_with_logits(p.au, torch.ones_like(p.au), reduction="none")
    elif task == "expr":
        target = torch.zeros(p.expr.shape[:-1], dtype=torch.long)
        per_row = F.cross_entropy(p.expr.flatten(0, -2), target.flatten(), reduction="none").view(target.shape)
    else:
        per_row = (p.va - 0.5).pow(2)
    per_row = per_row.reshape(len(labelled), -1).mean(1)
    return torch.where(labelled, per_row, torch.zeros(())).sum()


def grad_is_zero(module: nn.Module) -> bool:
    return all(p.grad is None or not p.grad.any() for p in module.parameters())


@pytest.mark.parametrize("name", list_models())
def test_prediction_contract(name, small_model):
    model, x = small_model(name)
    model.eval()
    with torch.no_grad():
        p = model(x)
    lead = x.shape[:2] if model.input_layout == "BTCHW" else x.shape[:1]
    assert p.au.shape == (*lead, model.schema.n_au)
    assert p.expr.shape == (*lead, model.schema.n_expr)
    assert p.va.shape == (*lead, 2)
    assert p.va.abs().max() <= 1
    if p.va_bins is not None:
        assert p.va_bins.shape == (*lead, 2, model.config["va_bins"])
    assert p.features and all(f.shape[: len(lead)] == lead for f in p.features.values())


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_reaches_every_trainable_parameter(name, small_model):
    model, x = small_model(name)
    model.train()
    p = model(x)
    sum(masked_loss(p, task, torch.ones(2, dtype=torch.bool)) for task in TASKS).backward()
    for pname, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{pname} is not used by forward()"
            assert torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", list_models())
def test_gradient_flows_only_through_labelled_samples_and_their_task(name, task, small_model, calibrate):
    model, x = small_model(name)
    calibrate(model, x)  # eval mode: BatchNorm in train mode would couple the rows of a batch
    x.requires_grad_(True)
    labelled = torch.tensor([True, False])  # only row 0 carries this task's label
    masked_loss(model(x), task, labelled).backward()
    assert x.grad[0].any() and not x.grad[1].any()
    for other in TASKS:
        for head in task_heads(model, other):
            assert grad_is_zero(head) == (other != task), f"{other} head after a {task}-only loss"
