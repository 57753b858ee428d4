"""5-point alignment: the similarity fit, the warp, the template and the 68 -> 5 point reduction."""
from __future__ import annotations

import numpy as np
import pytest

from affectlab.faces import (
    ARCFACE_112,
    MTCNN,
    align_face,
    apply_transform,
    landmarks68_to_5,
    scale_template,
    similarity_transform,
)


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@pytest.mark.parametrize(("scale", "angle", "tx", "ty"), [(1, 0, 0, 0), (0.37, 23, -40, 310), (4.2, -170, 900, -3)])
def test_known_similarity_is_recovered_exactly(scale: float, angle: float, tx: float, ty: float) -> None:
    points = np.random.default_rng(0).uniform(0, 200, size=(5, 2))
    truth = similarity(scale, angle, tx, ty)
    np.testing.assert_allclose(similarity_transform(points, apply_transform(truth, points)), truth, atol=1e-9)


def test_mirrored_points_get_a_rotation_never_a_reflection() -> None:
    mirrored = ARCFACE_112 * [-1, 1] + [112, 0]  # left and right swapped, as in a mirror
    linear = similarity_transform(mirrored, ARCFACE_112)[:, :2]
    assert np.linalg.det(linear) > 0
    np.testing.assert_allclose(linear[0, 0], linear[1, 1], atol=1e-12)
    np.testing.assert_allclose(linear[0, 1], -linear[1, 0], atol=1e-12)


def blob_image(centres: np.ndarray, sigma: float, shape: tuple[int, int]) -> np.ndarray:
    """Gray RGB image with a bright Gaussian dot at each centre (pixel-centre coordinates)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    dots = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2)) for cx, cy in centres)
    return np.repeat((30 + 220 * np.clip(dots, 0, 1)).astype(np.uint8)[:, :, None], 3, axis=2)


def blob_centroids(crop: np.ndarray, near: np.ndarray, radius: int = 6) -> np.ndarray:
    weight = crop[:, :, 0].astype(float) - 30
    y, x = np.mgrid[: crop.shape[0], : crop.shape[1]]
    found = []
    for cx, cy in near:
        w = weight * ((x - cx) ** 2 + (y - cy) ** 2 <= radius**2)
        found.append([(w * x).sum() / w.sum(), (w * y).sum() / w.sum()])
    return np.array(found)


@pytest.mark.parametrize(
    ("pixels_per_crop_pixel", "angle"), [(0.6, 10), (1.0, 0), (3.5, -25)], ids=["upscale", "same", "downscale"]
)
def test_aligned_crop_puts_the_points_on_the_template(pixels_per_crop_pixel: float, angle: float) -> None:
    """Dots drawn at a rotated, scaled copy of the template come out on the template itself."""
    to_image = similarity(pixels_per_crop_pixel, angle, 150, 120)
    landmarks = apply_transform(to_image, ARCFACE_112)
    image = blob_image(landmarks, 1.5 * pixels_per_crop_pixel, (700, 600))
    crop = align_face(image, landmarks)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert np.abs(blob_centroids(crop, ARCFACE_112) - ARCFACE_112).max() < 0.05


def test_large_face_is_averaged_not_aliased() -> None:
    """1-pixel stripes shrunk 3.5x must average to flat gray; bilinear sampling alone keeps stripes."""
    stripes = np.zeros((700, 600, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    crop = align_face(stripes, apply_transform(similarity(3.5, 17, 150, 120), ARCFACE_112))
    assert abs(crop.mean() - 127.5) < 2 and crop.std() < 20


def test_crop_outside_the_image_is_black() -> None:
    image = np.full((120, 120, 3), 200, dtype=np.uint8)
    crop = align_face(image, ARCFACE_112 - 50)  # face near the top-left corner: crop reaches outside
    assert (crop[:20, :20] == 0).all() and (crop[-20:, -20:] == 200).all()


def test_scale_template() -> None:
    np.testing.assert_allclose(scale_template(ARCFACE_112, 112), ARCFACE_112)
    np.testing.assert_allclose(scale_template(ARCFACE_112, 224), (ARCFACE_112 + 0.5) * 2 - 0.5)
    half = scale_template(ARCFACE_112, 112, margin=0.25)  # face in the central half of the crop
    np.testing.assert_allclose(half - 55.5, (ARCFACE_112 - 55.5) / 2)
    with pytest.raises(ValueError, match="margin"):
        scale_template(ARCFACE_112, 112, margin=0.5)


def test_landmarks68_to_5() -> None:
    points = np.zeros((68, 2))
    points[36:42] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]
    points[42:48] = points[36:42] + [30, 2]
    points[30], points[48], points[54] = [28, 35], [18, 45], [40, 46]
    expected = [[13, 20], [43, 22], [28, 35], [18, 45], [40, 46]]
    np.testing.assert_allclose(landmarks68_to_5(points), expected)
    with pytest.raises(ValueError, match="68"):
        landmarks68_to_5(np.zeros((5, 2)))


def test_affectnet_faces_land_on_the_template(detector: MTCNN, affectnet_sample) -> None:
    """Residuals, in pixels of the 112 crop, of AffectNet's 68-derived 5 points after alignment.

    Aligned with those same points (the similarity fit's own residual): median 2.7, p90 5.7 px on
    this sample; expressions move the mouth corners and the eye-contour means sit below the
    template's pupil-like eye points, which no similarity can absorb. Aligned with MTCNN's points
    instead: median 3.9, p90 7.7 px.
    """
    template = ARCFACE_112
    own, via_mtcnn = [], []
    for image, landmarks68 in affectnet_sample:
        points = landmarks68_to_5(landmarks68)
        own.append(apply_transform(similarity_transform(points, template), points) - template)
        faces = detector.detect(image)
        if len(faces):
            via_mtcnn.append(apply_transform(similarity_transform(faces.landmarks[0], template), points) - template)
    own, via_mtcnn = np.linalg.norm(own, axis=2), np.linalg.norm(via_mtcnn, axis=2)
    assert np.median(own) < 3.5 and np.percentile(own, 90) < 7
    assert np.median(via_mtcnn) < 5 and np.percentile(via_mtcnn, 90) < 10
