"""Shared fixtures for the model tests: every registered model at a small, fast size."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import Tensor, nn

from affectlab.models import AffectModel, create_model

REPO = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = Path(os.environ.get("AFFECTLAB_SHARED_WEIGHTS", REPO.parent / "shared" / "weights"))

#: Every registered model with its paper's backbone (or the small default) at a small input size.
#: InceptionV3 needs at least 75 px.
SMALL: dict[str, tuple[dict, int]] = {
    "mtl-baseline": ({"va_bins": 20}, 64),
    "cnn-rnn": ({"freeze_backbone": False}, 64),
    "smm": ({}, 75),
    "mss": ({}, 75),
    "context": ({}, 75),
    "context-ensemble": ({}, 75),
    "streaming": ({}, 64),
}

SmallFactory = Callable[..., tuple[AffectModel, Tensor]]


@pytest.fixture(scope="session")
def small_settings() -> dict[str, tuple[dict, int]]:
    return SMALL


@pytest.fixture
def small_model() -> SmallFactory:
    """``small_model(name, **config)`` -> (model, random input of batch 2, 3 frames for clips)."""

    def make(name: str, **config) -> tuple[AffectModel, Tensor]:
        torch.manual_seed(0)
        base, size = SMALL[name]
        model = create_model(name, **{**base, **config})
        return model, model.example_input(size, batch=2, frames=3).normal_()

    return make


@pytest.fixture(scope="session")
def mobilenet_v2_weights() -> Path:
    """torchvision's ImageNet MobileNetV2 file beside the checkout (../shared/weights)."""
    path = SHARED_WEIGHTS / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        pytest.skip(f"ImageNet weights not found at {path} (set AFFECTLAB_SHARED_WEIGHTS to run this test)")
    return path


def calibrate_batchnorm(model: nn.Module, x: Tensor) -> None:
    """Set BatchNorm running statistics to those of ``x``, then switch to eval mode.

    An untrained deep network in eval mode (BatchNorm as identity) can saturate tanh exactly,
    which zeroes every gradient; with real statistics it behaves like a trained one.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


@pytest.fixture
def calibrate() -> Callable[[nn.Module, Tensor], None]:
    return calibrate_batchnorm
