"""Temporal smoothing, SMM eq. 9: the recursion, per-video application, readouts through the last layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from affectlab.inference.smoothing import (TemporalSmoother, checkpoint_mu, readout, smooth, smooth_videos,
                                           smoothing_inputs)
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD
from affectlab.errors import AffectlabError
from affectlab.models import create_model, load_model, save_checkpoint


def eq9(eps: np.ndarray, mu: float) -> np.ndarray:
    """Λ_t = (ε_t + μ Λ_{t-1}) / (1 + μ), Λ_0 = ε_1, written as a loop."""
    out, prev = [], eps[0]
    for e in eps:
        prev = (e + mu * prev) / (1 + mu)
        out.append(prev)
    return np.array(out)


@pytest.mark.parametrize("mu", [0, 1, 3.5, 10])
def test_smooth_is_equation_9(mu):
    eps = np.random.default_rng(0).normal(size=(30, 4, 2))
    assert np.allclose(smooth(eps, mu), eq9(eps, mu))
    assert np.allclose(smooth(eps, mu)[0], eps[0]), "the first frame passes unchanged"


def test_larger_mu_smooths_more():
    eps = np.random.default_rng(1).normal(size=(200, 1))
    jitter = [np.abs(np.diff(smooth(eps, mu), axis=0)).mean() for mu in (0, 2, 9)]
    assert jitter[0] > jitter[1] > jitter[2]
    assert np.allclose(smooth(np.full((5, 3), 2.0), 7), 2.0)
    with pytest.raises(ValueError):
        smooth(eps, -1)


def test_videos_are_smoothed_separately_in_frame_order():
    eps = np.arange(10, dtype=float)[:, None]
    videos = np.array(["a", "b", "a", "b", "a", "", "a", "b", "a", "b"])
    frames = np.array([5, 1, 4, 2, 3, -1, 2, 3, 1, 4])
    out = smooth_videos(eps, videos, frames, 2)
    a = np.flatnonzero(videos == "a")[np.argsort(frames[videos == "a"])]
    assert np.allclose(out[a], eq9(eps[a], 2)) and out[5] == eps[5]


SMALL = {"smm": {}, "mss": {}, "context": {}, "mtl-baseline": {"va_bins": 20}, "streaming": {},
         "context-ensemble": {}}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_readout_at_mu_0_gives_the_models_own_outputs(name):
    torch.manual_seed(0)
    model = create_model(name, backbone="mobilenet_v2", **SMALL[name]).eval()
    x = model.example_input(32, batch=3).normal_()
    with torch.no_grad():
        pred = model(x)
    for task, expected in (("au", pred.au), ("expr", pred.expr), ("va", pred.va)):
        assert torch.allclose(readout(model, task, pred.features), expected, atol=1e-5), task


def test_online_smoother_matches_smoothing_the_sequence():
    torch.manual_seed(0)
    model = create_model("smm", backbone="mobilenet_v2").eval()
    frames = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        feats = model(frames).features
    mu = {"au": 7, "expr": 9}
    smoother = TemporalSmoother(model, mu)
    online = [smoother.step({k: v[t : t + 1] for k, v in feats.items()}) for t in range(6)]
    sign = smooth(feats["sign"].numpy(), 7)
    message = smooth(feats["message"].numpy(), 9)
    assert torch.allclose(torch.cat([o["au"] for o in online]), readout(model, "au", {"sign": sign}).float(), atol=1e-5)
    assert torch.allclose(torch.cat([o["expr"] for o in online]), readout(model, "expr", {"message": message}).float(),
                          atol=1e-5)
    assert torch.allclose(torch.cat([o["va"] for o in online]), readout(model, "va", feats), atol=1e-5), "no μ for VA"
    smoother.reset()
    assert not smoother.state
    # two tracks interleaved in one batch give each track's own smoothing
    both = smoother.step({k: torch.cat([v, v]) for k, v in feats.items()}, tracks=[0] * 6 + [1] * 6)
    assert torch.allclose(both["au"][:6], both["au"][6:], atol=1e-6)
    assert torch.allclose(both["au"][:6], torch.cat([o["au"] for o in online]), atol=1e-5)


def test_models_without_a_readout_are_refused():
    assert not create_model("cnn-rnn").readout_features
    with pytest.raises(AffectlabError, match="not defined for model 'cnn-rnn'"):
        smoothing_inputs(create_model("cnn-rnn"), "au")


def test_checkpoint_mu(tmp_path):
    model = create_model("smm", backbone="mobilenet_v2")
    path = save_checkpoint(model, tmp_path / "m.safetensors", input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                           extra={"smoothing": {"au": 7, "expr": 9, "va": 9}})
    assert checkpoint_mu(load_model(path)) == {"au": 7.0, "expr": 9.0, "va": 9.0}
    plain = save_checkpoint(model, tmp_path / "p.safetensors", input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert checkpoint_mu(load_model(plain)) == {}
