"""The context model and the face-and-context ensemble (ensemble-with-context paper §3-4)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from affectlab.errors import AffectlabError
from affectlab.models import create_model
from affectlab.models.context import ContextEnsemble


def n_linear(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Linear) for m in module.modules())


def test_heads_follow_the_paper(small_model):
    model, _ = small_model("context")
    assert n_linear(model.heads["va"]) == 2  # "two fully connected layers"
    assert n_linear(model.heads["expr"]) == 3  # "three fully connected layers"
    assert model.U == model.H == model.schema.n_au  # one region per AU, each with its own classifier


def test_ensemble_averages_the_face_and_context_members(small_model, calibrate):
    model, x = small_model("context-ensemble")
    calibrate(model, x)
    with torch.no_grad():
        p, face, context = model(x), model.face(x[:, 0]), model.context(x[:, 1])
    for field in ("au", "expr", "va"):
        torch.testing.assert_close(getattr(p, field), (getattr(face, field) + getattr(context, field)) / 2)
    torch.testing.assert_close(p.features["face_sign"], face.features["sign"])
    torch.testing.assert_close(p.features["context_sign"], context.features["sign"])


def test_from_members_joins_two_trained_models(calibrate):
    face, context = (create_model("context", backbone="mobilenet_v2") for _ in range(2))
    x = torch.randn(2, 2, 3, 64, 64)
    calibrate(face, x[:, 0])
    calibrate(context, x[:, 1])
    ensemble = ContextEnsemble.from_members(face, context).eval()
    assert ensemble.config == face.config
    with torch.no_grad():
        torch.testing.assert_close(ensemble(x).au, (face(x[:, 0]).au + context(x[:, 1]).au) / 2)


def test_from_members_refuses_different_models():
    with pytest.raises(AffectlabError, match="differ"):
        ContextEnsemble.from_members(create_model("context", backbone="mobilenet_v2"),
                                     create_model("context", backbone="mobilenet_v2", D=8))


def test_ensemble_input_must_hold_two_views(small_model):
    model, x = small_model("context-ensemble")
    with pytest.raises(AffectlabError, match=r"takes \(B, 2, 3, H, W\)"):
        model(x[:, 0])
