"""Head pose from the mesh (affectlab.faces.pose): geometric properties on real faces."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.media import read_image
from affectlab.faces.mesh import face_meshes
from affectlab.faces.mtcnn import SECOND_LOOKS
from affectlab.faces.pose import euler, pose_row, similarity

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"


def _pose(detector, image: np.ndarray, near: np.ndarray | None = None) -> dict[str, float] | None:
    """Pose of the face nearest ``near`` (image point), else of the best face; None if none is found
    (searched as analyze searches an image, with second looks for tight crops)."""
    found = detector.detect_batch([image], SECOND_LOOKS)[0]
    if not len(found):
        return None
    k = 0
    if near is not None:
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        k = int(np.argmin(np.linalg.norm(centres - near, axis=1)))
    (mesh,) = face_meshes(image, [found.boxes[k]], [found.landmarks[k][:2]])
    return pose_row(mesh.points, image.shape[1], image.shape[0])


def test_euler_inverts_openface_rotation_order():
    def rx(a):
        return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])

    def ry(a):
        return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])

    def rz(a):
        return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])

    angles = np.array([0.3, -0.5, 0.7])
    assert np.allclose(euler(rx(angles[0]) @ ry(angles[1]) @ rz(angles[2])), angles)


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    s, rot, t = similarity(src, 2.5 * src @ q.T + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.allclose(rot, q) and np.allclose(t, [1, 2, 3])


def _rotation_cases(shared_data: Path | None) -> list[np.ndarray]:
    images = [read_image(MEDIA / "single_face.jpg")]
    if shared_data is not None:
        labels = pd.read_csv(shared_data / "affectnet" / "labels.csv").iloc[:12]
        images += [read_image(shared_data / "affectnet" / p) for p in labels["path"]]
    return images


@pytest.mark.parametrize("degrees", [-30, -15, 15, 30])
def test_in_plane_rotation_changes_roll_by_the_angle(detector, degrees):
    """cv2's positive angle turns the image counter-clockwise: roll (clockwise positive) falls by it."""
    image = read_image(MEDIA / "single_face.jpg")
    h, w = image.shape[:2]
    before = _pose(detector, image)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    after = _pose(detector, cv2.warpAffine(image, m, (w, h)))
    change = np.degrees(after["pose_Rz"] - before["pose_Rz"])
    assert change == pytest.approx(-degrees, abs=3.0)


def test_in_plane_rotation_on_affectnet(shared_data, detector):
    errors = []
    for image in _rotation_cases(shared_data)[1:]:
        h, w = image.shape[:2]
        before = _pose(detector, image)
        for degrees in (-30, -15, 15, 30):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
            after = _pose(detector, cv2.warpAffine(image, m, (w, h)), near=np.array([w / 2, h / 2]))
            if before is None or after is None:  # a tight crop turned: the face may leave the frame
                continue
            errors.append(abs(np.degrees(after["pose_Rz"] - before["pose_Rz"]) + degrees))
    assert len(errors) >= 30
    assert np.median(errors) < 2.5 and np.max(errors) < 8.0


def test_mirror_flips_yaw(shared_data, detector):
    """Mirroring the image flips yaw's sign (and roll's); pitch stays."""
    labels = pd.read_csv(shared_data / "affectnet" / "labels.csv").iloc[:20]
    yaw_err, pitch_err = [], []
    for path in labels["path"]:
        image = read_image(shared_data / "affectnet" / path)
        a, b = _pose(detector, image), _pose(detector, np.ascontiguousarray(image[:, ::-1]))
        if a is None or b is None:
            continue
        yaw_err.append(abs(np.degrees(a["pose_Ry"] + b["pose_Ry"])))
        pitch_err.append(abs(np.degrees(a["pose_Rx"] - b["pose_Rx"])))
    assert len(yaw_err) >= 15
    assert np.median(yaw_err) < 4.0 and np.median(pitch_err) < 4.0


def test_translation_in_mm_and_nan_for_missing_points(detector):
    image = read_image(MEDIA / "single_face.jpg")
    p = _pose(detector, image)
    assert 150 < p["pose_Tz"] < 2000  # a head filling part of a photo: tens of cm from the camera
    assert all(np.isnan(v) for v in pose_row(np.full((468, 3), np.nan), 640, 480).values())
