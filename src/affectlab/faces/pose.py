"""Head pose from the face mesh, as OpenFace 2.2 reports it: ``pose_Rx, pose_Ry, pose_Rz`` (pitch, yaw,
roll, radians) and ``pose_Tx, pose_Ty, pose_Tz`` (the head centre in mm).

Frame (OpenFace's): the camera's, x right, y down, z forward (away from the camera); the rotation takes
the head frame (``canonical_face.npy``, tools/derive_canonical_face.py: a frontal upright face has zero
rotation) to the camera frame and is written as R = Rx(pitch) Ry(yaw) Rz(roll), OpenFace's
``Euler2RotationMatrix`` (Utilities, RotationMatrix2Euler inverts it). Roll is positive for a head turned
clockwise in the image; a mirror image flips the sign of yaw and roll.

Fit: a similarity (Umeyama 1991) of the canonical face to the mesh's 3D points (x, y in pixels, z in the
same scale): the mesh is close to an orthographic view of the face, so this gives the rotation and the
scale s (pixels per mm) directly; under weak perspective the depth is then Tz = f / s and the centre's
pixel back-projects to Tx, Ty. The focal length, where the camera's is unknown, is OpenFace's guess:
fx = fy = 500 (W / 640 + H / 480) / 2, centre at the image centre. The canonical face's scale (outer
eye corners 90 mm apart) sets the mm: a smaller head reads as farther away, as in OpenFace.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

POSE_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz")


@lru_cache(maxsize=None)
def canonical_face() -> np.ndarray:
    """(468, 3) the canonical face in mm, head frame (x right, y down, z away from the camera)."""
    with resources.files("affectlab").joinpath("assets/mediapipe/canonical_face.npy").open("rb") as f:
        return np.load(f).astype(np.float64)


def focal_length(width: int, height: int) -> float:
    """OpenFace's focal length (pixels) when the camera's is unknown (FaceAnalyser / LandmarkDetector)."""
    return 500.0 * (width / 640.0 + height / 480.0) / 2.0


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R (proper, det +1) and shift t minimising |dst - (s R src + t)|² (Umeyama)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    s = float((sig * d).sum() / (a**2).sum(axis=1).mean())
    return s, rot, mu_d - s * rot @ mu_s


def euler(rot: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) of R = Rx(pitch) Ry(yaw) Rz(roll), OpenFace's convention."""
    yaw = np.arcsin(np.clip(rot[0, 2], -1.0, 1.0))
    pitch = np.arctan2(-rot[1, 2], rot[2, 2])
    roll = np.arctan2(-rot[0, 1], rot[0, 0])
    return np.array([pitch, yaw, roll])


def head_pose(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(rotation R, translation T mm) of the head whose mesh ``points`` (468, 3) lie in a ``width`` x
    ``height`` image; NaN where the points are not finite."""
    if not np.isfinite(points).all():
        return np.full((3, 3), np.nan), np.full(3, np.nan)
    s, rot, _ = similarity(canonical_face(), points)
    f = focal_length(width, height)
    centre = points[:, :2].mean(axis=0)  # the canonical origin is its centroid: the centroid's image
    tz = f / s
    tx, ty = (centre[0] - (width - 1) / 2) * tz / f, (centre[1] - (height - 1) / 2) * tz / f
    return rot, np.array([tx, ty, tz])


def pose_columns(rot: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """The six OpenFace pose columns of a head pose (rotation R, translation T mm); NaN without one."""
    angles = euler(rot) if np.isfinite(rot).all() else np.full(3, np.nan)
    return dict(zip(POSE_COLUMNS, [*map(float, t), *map(float, angles)]))


def pose_row(points: np.ndarray, width: int, height: int) -> dict[str, float]:
    """The six OpenFace pose columns of one face."""
    return pose_columns(*head_pose(points, width, height))
