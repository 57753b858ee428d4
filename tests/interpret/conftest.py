"""Fixtures of the interpret tests: small checkpoints saved in tmp and a tiny sample of the real data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from affectlab.data import read_source
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD
from affectlab.models import create_model, save_checkpoint

SIZE = 64


def small_checkpoint(path: Path, name: str) -> Path:
    """An untrained MobileNetV2 model whose batch-norm statistics were run on noise: with the default
    statistics an untrained network maps every face to the same features, and t-SNE needs them spread."""
    torch.manual_seed(0)
    model = create_model(name, backbone="mobilenet_v2")
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(8, 3, SIZE, SIZE))
    return save_checkpoint(model.eval(), path, input_size=SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: small_checkpoint(root / f"{name}.safetensors", name) for name in ("smm", "mss", "mtl-baseline")}


@pytest.fixture(scope="session")
def tiny_data(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """40 AffectNet rows (expression, VA, landmarks) and 40 CK+ rows (AUs, expression), written as sample
    tables (absolute image paths into the shared data; no image is copied)."""
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for name in ("affectnet", "ckplus"):
        samples = read_source(shared_data / name).samples.sample(40, random_state=0)
        out[name] = root / f"{name}40.csv"
        samples.to_csv(out[name], index=False)
    return out
