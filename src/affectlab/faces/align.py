"""5-point face alignment: a similarity transform (rotation, uniform scale, translation) that puts
the detected eyes, nose and mouth corners on a fixed template, so every model sees faces at the
same place, size and roll.

Points are (x, y) with pixel centres on integers, the convention of ``cv2.warpAffine``; the 5
points are ordered left eye, right eye, nose tip, left mouth corner, right mouth corner, "left"
meaning image-left.
"""
from __future__ import annotations

import cv2
import numpy as np

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
"""The face-alignment target: where the 5 points go in a 112x112 crop (the canonical ArcFace
layout: eyes a third of the way down, mouth at four fifths, face filling the crop). Use
:func:`scale_template` for other crop sizes or for more context around the face."""


DLIB_150 = np.array(
    [[47.5492, 46.599], [100.4761, 46.599], [74.0127, 76.5625], [50.4149, 103.0233], [97.6104, 103.0233]],
    dtype=np.float64,
)
"""Where dlib's face chips (``get_face_chip_details(shape, 150, 0.25)``) put the 5 points: dlib's
68-point mean face (eye contours averaged, nose tip 30, mouth corners 48 and 54) in a 150x150
crop with a quarter of the face's size as margin on each side. The framing the ``dlib_resnet``
backbone was trained with: about the face size of :data:`ARCFACE_112`, but higher in the crop (eyes at
31 % of its height, not 46 %), so more forehead and less chin."""


#: The named face layouts a model can be trained in: (the 5 points, the side of the square they are given in).
#: ``arcface`` is the default; ``dlib`` is the framing of dlib's face-recognition network.
TEMPLATES: dict[str, tuple[np.ndarray, int]] = {"arcface": (ARCFACE_112, 112), "dlib": (DLIB_150, 150)}


def named_template(name: str, size: int, margin: float = 0.0) -> np.ndarray:
    """The layout ``name`` (:data:`TEMPLATES`) for a ``size`` crop with ``margin`` (see :func:`scale_template`)."""
    if name not in TEMPLATES:
        raise ValueError(f"template must be one of {', '.join(TEMPLATES)}, got {name!r}")
    points, ref_size = TEMPLATES[name]
    return scale_template(points, size, margin, ref_size)


def scale_template(template: np.ndarray, size: int, margin: float = 0.0, ref_size: int = 112) -> np.ndarray:
    """The template for a ``size`` crop; ``margin`` (fraction of the crop on each side) shrinks the face.

    The template's ``ref_size`` square maps onto the centred square of side ``(1 - 2 margin) size``,
    so ``margin=0.1`` keeps 10 % more context on every side, e.g. forehead and chin for AU models.
    """
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must lie in [0, 0.5), got {margin}")
    scale = size * (1 - 2 * margin) / ref_size
    # pixel-centre coordinates: scale the edges (p + 0.5), then shift by the margin
    return (np.asarray(template, dtype=np.float64) + 0.5) * scale + size * margin - 0.5


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the least-squares similarity mapping ``src`` points onto ``dst`` (Umeyama 1991).

    Rotation, uniform scale and translation only: a mirrored ``src`` gets the best rotation, never a
    reflection, so an aligned face is never flipped.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / (src_c**2).sum(axis=1).mean()
    translation = dst_mean - scale * rotation @ src_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2x3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def _shrink_for_warp(image: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-average the face region down to crop resolution first, so the warp does not alias.

    ``warpAffine`` samples bilinearly: shrinking a large face by 3x with it drops two of three
    pixels and turns fine texture (wrinkles, AU cues) into noise. Returns the smaller image and the
    matrix that maps it onto the crop.
    """
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale >= 1:
        return image, matrix
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64) - 0.5
    inverse = cv2.invertAffineTransform(matrix)
    seen = apply_transform(inverse, corners)
    pad = 2 / scale
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(seen.min(axis=0) - pad), 0, [w, h]).astype(int)
    x1, y1 = np.clip(np.ceil(seen.max(axis=0) + pad), 0, [w, h]).astype(int)
    if x1 <= x0 or y1 <= y0:
        return image, matrix
    new_w, new_h = max(round((x1 - x0) * scale), 1), max(round((y1 - y0) * scale), 1)
    fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
    small = cv2.resize(image[y0:y1, x0:x1], (new_w, new_h), interpolation=cv2.INTER_AREA)
    # small pixel (u, v) sits at image ((u + 0.5) / fx - 0.5 + x0, (v + 0.5) / fy - 0.5 + y0)
    to_image = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0], [0, 0, 1]])
    return small, matrix @ to_image


def align_face(
    image: np.ndarray, landmarks5: np.ndarray, template: np.ndarray = ARCFACE_112, size: int = 112
) -> np.ndarray:
    """(size, size, 3) uint8 crop with the 5 points moved as close to ``template`` as a similarity allows.

    ``template`` is given in the crop's own pixels (see :func:`scale_template`). Parts of the crop
    outside the image are black (constant border): replicating the edge pixels instead smears hair,
    clothes or background into streaks that look like image structure to a model, while black
    reads as "no data" and looks the same in training and at inference.
    """
    matrix = similarity_transform(landmarks5, template)
    image, matrix = _shrink_for_warp(image, matrix, size)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def landmarks68_to_5(landmarks68: np.ndarray) -> np.ndarray:
    """The 5 alignment points from the 68-point (iBUG/Multi-PIE) layout.

    Eye centres are the means of the eye contours (points 36-41, 42-47), so that they match
    MTCNN's pupil-centred eye points; nose tip is point 30, mouth corners 48 and 54.
    """
    p = np.asarray(landmarks68, dtype=np.float64)
    if p.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {p.shape}")
    return np.stack([p[36:42].mean(axis=0), p[42:48].mean(axis=0), p[30], p[48], p[54]])
