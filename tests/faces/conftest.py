"""Fixtures for the faces tests: one detector for the session and the real sample media."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlab.faces import MTCNN


@pytest.fixture(scope="session")
def detector() -> MTCNN:
    return MTCNN()


def load_rgb(path: Path) -> np.ndarray:
    """Any image file as HxWx3 uint8 RGB (gray is repeated, alpha dropped), as the detector expects."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="session")
def media(shared_data: Path) -> Callable[[str], np.ndarray]:
    """Loads a file of the shared sample media as HxWx3 uint8 RGB."""
    return lambda name: load_rgb(shared_data / "media" / name)


@pytest.fixture(scope="session")
def affectnet_sample(shared_data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """40 AffectNet 224x224 faces (fixed random sample) with their 68 annotated landmarks."""
    root = shared_data / "affectnet"
    table = pd.read_csv(root / "labels.csv").sample(40, random_state=0)
    xs = table[[f"lnd_x{i}" for i in range(68)]].to_numpy(float)
    ys = table[[f"lnd_y{i}" for i in range(68)]].to_numpy(float)
    return [(load_rgb(root / p), np.stack([x, y], axis=1)) for p, x, y in zip(table["path"], xs, ys)]
