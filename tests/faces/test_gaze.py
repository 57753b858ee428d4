"""Gaze from the iris model (affectlab.faces.gaze): OpenFace's geometry, and the mirror property on real faces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.analyze.media import read_image
from affectlab.faces.gaze import EYEBALL_RADIUS_MM, gaze_angles, gaze_vectors, ray_sphere
from affectlab.faces.mesh import face_meshes, irises
from affectlab.faces.mtcnn import SECOND_LOOKS
from affectlab.faces.pose import focal_length, head_pose

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"


def test_angles_follow_openface():
    assert gaze_angles(np.array([[0, 0, -1.0], [0, 0, -1.0]])) == (0.0, 0.0)  # into the camera
    x, y = gaze_angles(np.array([[np.sin(0.2), 0, -np.cos(0.2)]] * 2))
    assert np.isclose(x, 0.2) and np.isclose(y, 0.0)  # towards the image's right: positive x
    x, y = gaze_angles(np.array([[0, np.sin(0.1), -np.cos(0.1)]] * 2))
    assert np.isclose(y, 0.1)  # down: positive y


def test_ray_sphere_front_hit_and_miss():
    centre = np.array([0.0, 0.0, 100.0])
    hit = ray_sphere(np.array([0, 0, 1.0]), centre, 12.0)
    assert np.allclose(hit, [0, 0, 88.0])  # the near side
    d = np.array([1.0, 0, 5.0]) / np.linalg.norm([1.0, 0, 5.0])
    miss = ray_sphere(d, centre, 12.0)
    assert np.isclose(np.linalg.norm(miss - centre), 12.0) and miss[0] > 0


def test_no_pose_gives_nan():
    v = gaze_vectors(np.zeros((2, 2)), np.zeros((2, 2, 2)), np.full((3, 3), np.nan), np.full(3, np.nan), 640, 480)
    assert np.isnan(v).all()


def _eyes(detector, image):
    found = detector.detect_batch([image], SECOND_LOOKS)[0]
    if not len(found):
        return None
    meshes = face_meshes(image, [found.boxes[0]], [found.landmarks[0][:2]])
    (eyes,) = irises(image, meshes)
    h, w = image.shape[:2]
    rot, t = head_pose(meshes[0].points, w, h)
    return eyes, rot, t, w, h


def _gaze(detector, image):
    found = _eyes(detector, image)
    if found is None:
        return None
    eyes, rot, t, w, h = found
    v = gaze_vectors(eyes.centers, eyes.corners, rot, t, w, h)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    return np.degrees(gaze_angles(v))


def test_corners_are_the_iris_models_eye_ends(detector):
    """Contour points 0 and 8 are the eye's ends: the outer corner farther from the nose, both near the
    mesh's corners (33/133, 263/362) and the iris between them."""
    eyes, *_ = _eyes(detector, read_image(MEDIA / "single_face.jpg"))
    (lo, li), (ri, ro) = eyes.corners[0], eyes.corners[1][::-1]
    assert lo[0] < eyes.centers[0, 0] < li[0] < ri[0] < eyes.centers[1, 0] < ro[0]


def test_gaze_follows_the_iris(detector):
    """Moving both irises right by k pixels turns gaze_angle_x right by about asin(k * mm_per_px / 12 mm)
    (the eyeball model's radius), and moving them down turns gaze_angle_y down."""
    eyes, rot, t, w, h = _eyes(detector, read_image(MEDIA / "single_face.jpg"))
    x0, y0 = gaze_angles(gaze_vectors(eyes.centers, eyes.corners, rot, t, w, h))
    mm_per_px = t[2] / focal_length(w, h)
    for dx, dy in ((2.0, 0.0), (0.0, 2.0)):
        x, y = gaze_angles(gaze_vectors(eyes.centers + [dx, dy], eyes.corners, rot, t, w, h))
        expected = np.arcsin(2.0 * mm_per_px / EYEBALL_RADIUS_MM)
        moved, still = (x - x0, y - y0) if dx else (y - y0, x - x0)
        assert 0.6 * expected < moved < 1.5 * expected and abs(still) < 0.2 * expected


def test_mirror_flips_gaze_x(shared_data, detector):
    """Mirroring flips gaze_angle_x's sign and keeps y. Measured on these 31 faces: median |x + x_mirrored|
    1.5 degrees, |y - y_mirrored| 1.2 (bench/geometry.py reports more faces); with the mesh's corners in
    place of the iris model's it was 12 and 5."""
    images = [read_image(MEDIA / "single_face.jpg")]
    images += [read_image(shared_data / "affectnet" / p)
               for p in pd.read_csv(shared_data / "affectnet" / "labels.csv")["path"].iloc[:30]]
    dx, dy = [], []
    for image in images:
        a, b = _gaze(detector, image), _gaze(detector, np.ascontiguousarray(image[:, ::-1]))
        if a is None or b is None:
            continue
        dx.append(abs(a[0] + b[0]))
        dy.append(abs(a[1] - b[1]))
    assert len(dx) >= 25
    assert np.median(dx) < 3.0 and np.median(dy) < 3.0
