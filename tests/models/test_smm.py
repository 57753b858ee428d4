"""SMM-EmotionNet and MSS: the shapes and equations of smm paper §3.1 and §6."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from affectlab.errors import AffectlabError
from affectlab.labels import schema
from affectlab.models import create_model


def test_paper_setting_at_full_size():
    """U = 17 regions over the 17×17×768 InceptionV3 map, H = 12 AUs, D = 16 (§4.2)."""
    model = create_model("smm").eval()
    with torch.no_grad():
        p = model(torch.zeros(1, 3, 299, 299))
    assert (model.U, model.H, model.D) == (17, 12, 16)
    assert p.features["attention"].shape == (1, 17, 17, 17)  # one map per region, the size of the feature map
    assert p.features["roi"].shape == (1, 17, 16)  # F^(U)(x)
    assert p.features["sign"].shape == (1, 12, 16)  # S^(H)(x), eq. 1
    assert p.features["message"].shape == (1, 16)  # M̄^(U)(x)
    assert model.A.shape == (17, 16, 16)  # A^(u), eq. 3
    assert model.heads["au"].W.shape == (12, 16)  # W_h, eq. 2
    assert model.transformer.PE.shape == (12, 16)


def test_another_setting_of_U_H_D():
    model = create_model("smm", schema("teacher-student"), U=10, D=8, n_heads=4)
    with torch.no_grad():
        p = model.eval()(torch.randn(2, 3, 75, 75))
    assert (model.U, model.H, model.D) == (10, 8, 8)
    assert p.features["roi"].shape == (2, 10, 8) and p.features["sign"].shape == (2, 8, 8)
    assert p.features["message"].shape == (2, 8) and model.A.shape == (10, 8, 8)
    assert p.au.shape == (2, 8)


@pytest.mark.parametrize("config, message", [
    ({"H": 8}, "H must equal the number of AUs"),
    ({"U": 11}, "U=11 regions is fewer than the H=12 AUs"),
    ({"D": 12, "n_heads": 8}, "D=12 must be divisible by n_heads=8"),
])
def test_invalid_settings(config, message):
    with pytest.raises(AffectlabError, match=message):
        create_model("smm", backbone="mobilenet_v2", **config)


@pytest.fixture
def smm_output(small_model, calibrate):
    model, x = small_model("smm")
    calibrate(model, x)
    with torch.no_grad():
        return model, model(x)


def test_eq2_one_inner_product_per_au(smm_output):
    model, p = smm_output
    W, b = model.heads["au"].W, model.heads["au"].b
    expected = torch.stack([p.features["sign"][:, h] @ W[h] + b[h] for h in range(model.H)], dim=1)
    torch.testing.assert_close(p.au, expected)


def test_eq3_message_is_the_mean_of_the_transformed_regions(smm_output):
    model, p = smm_output
    F_U = p.features["roi"]
    M_u = [F_U[:, u] @ model.A[u].T for u in range(model.U)]  # M^(u) = A^(u) f^(u)
    M_bar = torch.stack(M_u).mean(0)
    torch.testing.assert_close(p.features["message"], M_bar)
    torch.testing.assert_close(p.expr, model.heads["expr"](M_bar))
    torch.testing.assert_close(p.va, torch.tanh(model.heads["va"](M_bar)))


def test_regions_beyond_H_reach_only_the_message_space(small_model):
    """"Five ROI embedding vectors are not fed into the Transformer" (§4.2)."""
    model, x = small_model("smm")
    p = model(x)
    F.binary_cross_entropy_with_logits(p.au, torch.ones_like(p.au)).backward(retain_graph=True)
    extra = model.roi.embeddings[model.H:]
    assert all(not q.grad.any() for q in extra.parameters())
    assert all(q.grad.any() for q in model.roi.embeddings[: model.H].parameters())
    p.expr.sum().backward()
    assert all(q.grad is not None and q.grad.any() for q in extra.parameters())


def test_mss_has_separate_message_spaces(small_model, calibrate):
    model, x = small_model("mss")
    assert model.A_expr.shape == model.A_va.shape == (17, 16, 16) and not hasattr(model, "A")
    calibrate(model, x)
    p = model(x)
    assert set(p.features) >= {"message_expr", "message_va"} and "message" not in p.features
    assert not torch.allclose(p.features["message_expr"], p.features["message_va"])
    p.expr.sum().backward()
    assert model.A_expr.grad.any() and model.A_va.grad is None
