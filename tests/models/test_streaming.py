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


def test_the_prior_is_a_deviation_from_a_fixed_starting_point(small_model):
    """§3.2 (DLN): Emb = projection(face features - identity features); the identity branch is a fixed
    copy of the face branch's starting point, so the deviation starts at 0 and only the face branch learns."""
    model, x = small_model("streaming")
    model.eval()
    assert torch.allclose(model.prior_embedding(x), model.prior_projection.bias.expand(2, -1), atol=1e-5)
    model.train()
    model(x).expr.sum().backward()
    assert all(q.grad is None for q in model.identity_backbone.parameters())
    assert any(q.grad is not None and q.grad.any() for q in model.backbone.parameters())
    assert not model.identity_backbone.training, "its BatchNorm statistics stay those of the starting point"


def test_without_prior_is_one_backbone(small_model):
    """Table 3's "w/o prior" ablation."""
    model, x = small_model("streaming", prior="none")
    assert not hasattr(model, "identity_backbone") and model.eval()(x).features["emb"].shape == (2, 512)


def test_the_face_recognition_prior_subtracts_dlibs_fixed_identity_embedding(tmp_path):
    """§3.2 as DLN: Emb = expression embedding - identity embedding of a face-recognition network (dlib's
    bundled CC0 ResNet at its 150 px), which stays fixed and keeps its weights whatever the backbone's start."""
    import safetensors.torch
    import torch.nn.functional as F

    from affectlab.models import load_model
    from affectlab.models.backbones import BUNDLED_WEIGHTS
    from affectlab.models.checkpoint import save_checkpoint

    model = create_model("streaming", backbone="mobilenet_v2", prior="face-recognition")
    dlib = safetensors.torch.load_file(BUNDLED_WEIGHTS["dlib_resnet"])
    identity = model.identity_backbone.body.state_dict()
    assert all(torch.equal(v, dlib[k]) for k, v in identity.items() if k in dlib) and len(identity) > 100
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert not model.identity_backbone.training and not any(p.requires_grad for p in model.identity_backbone.parameters())
    model.eval()
    with torch.no_grad():
        face = model.prior_projection(model.backbone(x).mean((-2, -1)))
        who = model.identity_backbone(F.interpolate(x, size=(150, 150), mode="bilinear", align_corners=False))
        expected = face - model.identity_projection(who.mean((-2, -1)))
        torch.testing.assert_close(model(x).features["emb"], expected)
    model.prior_embedding(x).sum().backward()
    assert model.identity_projection.weight.grad is not None and next(model.backbone.parameters()).grad is not None
    path = save_checkpoint(model, tmp_path / "s.safetensors", input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).eval()(x).expr, model(x).expr)


def test_without_streaming_each_task_reads_its_own_features(small_model):
    """Table 3's "w/o streaming": no AU→EXPR or {AU, EXPR}→VA module; a VA loss reaches neither AU nor
    EXPR features."""
    model = create_model("streaming", backbone="mobilenet_v2", stream=False)
    assert not hasattr(model, "au_to_expr") and not hasattr(model, "au_expr_to_va")
    p = model(torch.randn(2, 3, 64, 64))
    assert p.features["expr_features"].shape == (2, 64) and p.features["va_features"].shape == (2, 64)
    p.va.sum().backward()
    assert model.au_extractor[0].weight.grad is None and model.expr_extractor[0].weight.grad is None
    assert model.va_extractor[0].weight.grad is not None
