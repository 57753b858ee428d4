"""Eye gaze from the iris model, as OpenFace 2.2 reports it: ``gaze_angle_x, gaze_angle_y`` (radians).

OpenFace (wiki "Output Format"; GazeAnalysis::EstimateGaze and GetGazeAngle in its GazeAnalyser) gives
each eye's gaze as a unit vector in the camera frame (x right, y down, z away from the camera; looking
into the camera is about (0, 0, -1)), averages the two eyes' vectors g, and reports
gaze_angle_x = atan2(g_x, -g_z), gaze_angle_y = atan2(g_y, -g_z): x changes sign as the person looks
from one side to the other (positive towards the image's right), y is positive looking down; both near
0 looking straight at the camera.

Each eye as OpenFace models it: an eyeball of radius 12 mm centred at the midpoint of the eye corners
plus (0, -3.5, 7) mm in the head frame (a little up and behind the surface); the pupil is where the
camera ray through the iris centre meets that sphere; gaze = pupil - eyeball centre. A ray that misses
the sphere (the iris put outside the eye) takes the sphere's point nearest the ray.

The corners are the iris model's own (its eye contour's ends), not the face mesh's: gaze is the small
difference between the iris and the corners (1 px is about 4 degrees on a 120 px face), and the mesh
sits about 1 mm to one side of where its mirror image puts it (BENCHMARKS.md), which turned into a
12-degree disagreement between a face and its mirror image. The iris model's corners and centre come
from one crop and move together. The head pose (affectlab.faces.pose) gives the corners' depth and
turns the eyeball offset into the camera frame.
"""
from __future__ import annotations

import numpy as np

from affectlab.faces.mesh import LEFT_EYE, RIGHT_EYE
from affectlab.faces.pose import canonical_face, focal_length

GAZE_COLUMNS = ("gaze_angle_x", "gaze_angle_y")
EYEBALL_RADIUS_MM = 12.0
EYEBALL_OFFSET_MM = np.array([0.0, -3.5, 7.0])  # OpenFace's, head frame (y down, z away)


def _ray(pixel: np.ndarray, width: int, height: int) -> np.ndarray:
    f = focal_length(width, height)
    d = np.array([(pixel[0] - (width - 1) / 2) / f, (pixel[1] - (height - 1) / 2) / f, 1.0])
    return d / np.linalg.norm(d)


def ray_sphere(direction: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """The first point where the ray from the origin along ``direction`` (unit) meets the sphere, or the
    sphere's point nearest the ray where it misses."""
    along = float(direction @ centre)
    closest = along * direction
    miss = float(np.linalg.norm(centre - closest))
    if miss > radius:
        return centre + radius * (closest - centre) / miss
    return (along - np.sqrt(radius**2 - miss**2)) * direction


def gaze_vectors(iris_centres: np.ndarray, eye_corners: np.ndarray, rot: np.ndarray, t: np.ndarray,
                 width: int, height: int) -> np.ndarray:
    """(2, 3) unit gaze vectors of the image-left and image-right eye, camera frame, from each eye's
    iris centre (2, 2) and two corners (2, 2, 2), input pixels; NaN without a pose."""
    if not (np.isfinite(rot).all() and np.isfinite(t).all() and np.isfinite(iris_centres).all()
            and np.isfinite(eye_corners).all()):
        return np.full((2, 3), np.nan)
    face = canonical_face()
    out = []
    for k, (a, b) in enumerate((LEFT_EYE, RIGHT_EYE)):
        depth = float((rot @ ((face[a] + face[b]) / 2) + t)[2])
        ray = _ray(eye_corners[k].mean(axis=0), width, height)
        centre = ray * depth / ray[2] + rot @ EYEBALL_OFFSET_MM
        pupil = ray_sphere(_ray(iris_centres[k], width, height), centre, EYEBALL_RADIUS_MM)
        g = pupil - centre
        out.append(g / np.linalg.norm(g))
    return np.stack(out)


def gaze_angles(vectors: np.ndarray) -> tuple[float, float]:
    """OpenFace's gaze_angle_x, gaze_angle_y of the two eyes' gaze vectors (their mean)."""
    g = vectors.mean(axis=0)
    return float(np.arctan2(g[0], -g[2])), float(np.arctan2(g[1], -g[2]))
