"""The prior-aided streaming network: sizes of §3.3 and the AU -> EXPR -> VA stream."""
from __future__ import annotations

import torch

from affectlab.labels import schema
from affectlab.models import create_model


def test_feature_sizes_of_the_paper(small_model):
    model, x = small_model("streaming")
    p = model.eval()(x)
    assert p.features["emb"].shape == (2, 512)  # Emb from the prior model
    assert p.features["au_features"].shape == (2, 12, 16)  # 512 -> 12×16
    assert p.features["expr_features"].shape == (2, 128)  # AU→EXPR (64) ⊕ EXPR features (64)
    assert p.features["va_features"].shape == (2, 128)  # {AU, EXPR}→VA (64) ⊕ VA features (64)


def test_paper_label_sizes():
    """12 AUs (BP4D-style), 7 expressions, 2 VA: the output sizes of §3.3."""
    model = create_model("streaming", schema("bp4d", n_expr=7), backbone="mobilenet_v2")
    p = model.eval()(torch.randn(1, 3, 64, 64))
    assert (p.au.shape[-1], p.expr.shape[-1], p.va.shape[-1]) == (12, 7, 2)


def test_later_tasks_train_the_earlier_features(small_model):
    """The stream runs AU -> EXPR -> VA: a VA loss reaches the AU and EXPR extractors, not their predictors."""
    model, x = small_model("streaming")
    model(x).va.sum().backward()
    for module in (model.au_extractor, model.expr_extractor, model.va_extractor, model.au_expr_to_va):
        assert all(q.grad.any() for q in module.parameters())
    for module in (model.heads["au"], model.heads["expr"], model.au_to_expr):
        assert all(q.grad is None for q in module.parameters())
