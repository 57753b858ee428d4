"""The multitask CNN (mtl-baseline) and CNN-RNN of the teacher-student paper."""
from __future__ import annotations

import pytest
import torch

from affectlab.errors import AffectlabError
from affectlab.models import create_model
from affectlab.labels import va_bin_centers


def test_va_is_the_expectation_of_the_bin_centres(small_model):
    """Teacher-student eq. 3: 20 bins over [-1, 1]; continuous VA = Σ_k p_k · centre_k."""
    model, x = small_model("mtl-baseline")
    p = model.eval()(x)
    assert p.va_bins.shape == (2, 2, 20)
    torch.testing.assert_close(p.va, p.va_bins.softmax(-1) @ torch.tensor(va_bin_centers(20)))
    assert va_bin_centers(20)[0] == pytest.approx(-0.95) and va_bin_centers(20)[-1] == pytest.approx(0.95)


def test_smm_baseline_branch_sizes():
    """SMM §5.1: InceptionV3 then, per task, FC 768×16 -> 16×C."""
    model = create_model("mtl-baseline", backbone="inception_v3")
    assert [tuple(m.weight.shape) for m in model.heads["expr"] if hasattr(m, "weight")] == [(16, 768), (8, 16)]
    assert model(torch.randn(2, 3, 75, 75)).va_bins is None


def test_clip_outputs_one_prediction_per_frame():
    model = create_model("cnn-rnn", va_bins=20).eval()
    p = model(torch.randn(2, 5, 3, 64, 64))
    assert p.au.shape == (2, 5, 12) and p.expr.shape == (2, 5, 8) and p.va.shape == (2, 5, 2)
    assert p.va_bins.shape == (2, 5, 2, 20) and p.features["embedding"].shape == (2, 5, 1280)


def test_frozen_backbone_gets_no_gradient_and_keeps_its_statistics():
    model = create_model("cnn-rnn")  # freeze_backbone=True, as in the papers
    model.train()
    assert not model.backbone.training and model.heads.training
    mean_before = model.backbone.body.features[1].conv[0][1].running_mean.clone()
    p = model(torch.randn(2, 3, 3, 64, 64))
    (p.au.sum() + p.expr.sum() + p.va.sum()).backward()
    assert all(q.grad is None for q in model.backbone.parameters())
    assert all(q.grad is not None for q in model.heads.parameters())
    assert torch.equal(model.backbone.body.features[1].conv[0][1].running_mean, mean_before)


def test_init_from_cnn_copies_the_feature_extractor():
    cnn, rnn = create_model("mtl-baseline"), create_model("cnn-rnn")
    rnn.init_from_cnn(cnn)
    assert all(torch.equal(a, b) for a, b in zip(cnn.backbone.state_dict().values(), rnn.backbone.state_dict().values()))
    with pytest.raises(AffectlabError, match="backbone is 'resnet50'"):
        rnn.init_from_cnn(create_model("mtl-baseline", backbone="resnet50"))


def test_cnn_rnn_refuses_single_images():
    with pytest.raises(AffectlabError, match="takes clips"):
        create_model("cnn-rnn")(torch.randn(2, 3, 64, 64))
