"""Per-face geometry columns from the dense mesh: 68 landmarks, head pose and gaze, as OpenFace names them.

One call for many faces (of one image or of a chunk of frames): :func:`affectlab.faces.mesh.face_meshes`
from the faces' boxes (and MTCNN's eye points), :func:`affectlab.faces.mesh.irises` on both eyes, then :func:`affectlab.faces.pose.head_pose`
and :func:`affectlab.faces.gaze.gaze_vectors` per face. What each column means and its unit: README,
"Output columns".
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from affectlab.faces.gaze import GAZE_COLUMNS, gaze_angles, gaze_vectors
from affectlab.faces.mesh import N_MESH, face_meshes, irises, per_face
from affectlab.faces.pose import POSE_COLUMNS, head_pose, pose_columns

LANDMARK_COLUMNS: tuple[str, ...] = (*(f"x_{i}" for i in range(68)), *(f"y_{i}" for i in range(68)))
GEOMETRY_COLUMNS: tuple[str, ...] = (*LANDMARK_COLUMNS, *POSE_COLUMNS, *GAZE_COLUMNS)
#: The full mesh (``analyze --mesh``): MediaPipe's 468 points, x and y in input pixels, z its depth.
MESH_COLUMNS: tuple[str, ...] = tuple(f"mesh_{axis}_{i}" for axis in "xyz" for i in range(N_MESH))


def face_geometry(image: np.ndarray | Sequence[np.ndarray], boxes: Sequence[np.ndarray],
                  eyes: Sequence[np.ndarray | None] = (), mesh: bool = False) -> list[dict[str, float]]:
    """The GEOMETRY_COLUMNS (and with ``mesh`` the MESH_COLUMNS) of each face from its box (x1, y1, x2, y2)
    and, if known, its two eye centres (image-left first); NaN where a value cannot be had. ``image``: the
    RGB uint8 image of all the faces, or one per face: the faces of many frames go through the models in
    batches."""
    images = per_face(image, len(boxes))
    meshes = face_meshes(images, boxes, eyes)
    rows = []
    for face, eye, picture in zip(meshes, irises(images, meshes), images):
        height, width = picture.shape[:2]
        points = face.ibug68
        rot, t = head_pose(face.points, width, height)
        row = dict(zip(LANDMARK_COLUMNS, map(float, [*points[:, 0], *points[:, 1]])))
        row |= pose_columns(rot, t)
        row |= dict(zip(GAZE_COLUMNS, gaze_angles(gaze_vectors(eye.centers, eye.corners, rot, t, width, height))))
        if mesh:
            row |= dict(zip(MESH_COLUMNS, map(float, face.points.T.reshape(-1))))
        rows.append(row)
    return rows
