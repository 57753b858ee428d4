"""MTCNN face detector with 5 landmarks (Zhang et al. 2016, "Joint Face Detection and Alignment
using Multitask Cascaded Convolutional Networks").

Three networks in a cascade: P-Net scores every 12x12 window of an image pyramid (fully
convolutional, stride 2), R-Net re-scores the surviving windows at 24x24, O-Net at 48x48 and places
the 5 landmarks. Each stage also regresses box offsets (in units of the window's width/height) and
non-maximum suppression (NMS) removes duplicates between stages.

The weights are facenet-pytorch 2.6.0's (MIT, ``affectlab/assets/mtcnn``), input ``(x - 127.5) / 128``
RGB. The nets are defined in :mod:`affectlab.faces.mtcnn_torch`; on the CPU they run from the ONNX
files exported from them (no torch import), on a GPU in PyTorch. Everything around the nets
(pyramid, crops, NMS, box and landmark arithmetic) is this module's numpy, whichever runs them.

Coordinates: boxes are edges (a box covering the whole image is ``0, 0, W, H``; slice it as
``image[int(y1):int(y2), int(x1):int(x2)]``); landmarks are positions with pixel centres on
integers, the convention of ``cv2.warpAffine`` and of 68-point annotations. O-Net was trained
with landmark offsets from the index of the crop's first pixel, so a landmark is that index plus
the offset times the crop side (checked on AffectNet's 68-point labels: no horizontal bias left).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Callable, Literal, Sequence

import cv2
import numpy as np

from affectlab.errors import AffectlabError

_PNET_WINDOW, _PNET_STRIDE = 12, 2
_NMS_PER_SCALE, _NMS_ACROSS_SCALES, _NMS_REFINE = 0.5, 0.7, 0.7
_CHUNK = 512  # crops per R-/O-Net forward pass: bounds memory on crowded images
_NMS_BLOCK = 256  # boxes whose overlaps with all others NMS holds at once, likewise


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, by decreasing score.

    ``boxes`` (N, 4) x1, y1, x2, y2; ``scores`` (N,); ``landmarks`` (N, 5, 2) x, y of left eye,
    right eye, nose, left mouth corner, right mouth corner ("left" = image-left).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def nearest(self, five: np.ndarray) -> int:
        """Index of the face whose 5 landmarks lie nearest ``five`` (5, 2) on average: the face an
        annotation of the image is about."""
        return int(np.argmin(np.linalg.norm(self.landmarks - five, axis=2).mean(axis=1)))


Net = Callable[[np.ndarray], tuple[np.ndarray, ...]]
"""A network as the cascade calls it: (B, 3, H, W) float32 in the nets' input convention -> its outputs."""


class OnnxNet:
    """A net exported by ``make onnx-assets`` (affectlab.faces.mtcnn_torch) on onnxruntime's CPU provider:
    no torch import, and faster than PyTorch on the small batches detection makes (bench/detection.py)."""

    def __init__(self, name: str):
        from affectlab.onnxrt import cpu_session

        self.session = cpu_session(resources.files("affectlab").joinpath(f"assets/mtcnn/{name}.onnx").read_bytes())

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {"image": x}))


def load_nets(device: str) -> tuple[Net, Net, Net]:
    """P-, R- and O-Net: on onnxruntime on the CPU, on PyTorch on a GPU (``cuda``, ``cuda:1``)."""
    if device == "cpu":
        return OnnxNet("pnet"), OnnxNet("rnet"), OnnxNet("onet")
    from affectlab.faces.mtcnn_torch import TorchNet

    return TorchNet("pnet", device), TorchNet("rnet", device), TorchNet("onet", device)


def _normalise(batch: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 ``(x - 127.5) / 128``, the nets' input convention."""
    x = batch.transpose(0, 3, 1, 2).astype(np.float32)
    x -= 127.5
    x *= 1 / 128
    return x


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which P-Net's 12-pixel window spans faces from ``min_face_size`` to the short side."""
    first = _PNET_WINDOW / min_face_size
    scales: list[float] = []
    while min(height, width) * first * factor ** len(scales) >= _PNET_WINDOW:
        scales.append(first * factor ** len(scales))
    return scales


def _pyramid(image: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Downscaled copies at the given (width, height), each made from the previous one.

    Gaussian halvings (``cv2.pyrDown``) while a step would shrink by 2x or more, then one bilinear
    step: as smooth as ``INTER_AREA`` at a fraction of its cost at non-integer ratios.
    """
    levels, source = [], image
    for width, height in sizes:
        while source.shape[1] >= 2 * width and source.shape[0] >= 2 * height:
            source = cv2.pyrDown(source)
        source = cv2.resize(source, (width, height), interpolation=cv2.INTER_LINEAR)
        levels.append(source)
    return levels


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    groups: np.ndarray | None = None,
    mode: Literal["union", "min"] = "union",
) -> np.ndarray:
    """Greedy NMS; indices of kept boxes by decreasing score.

    ``groups`` (e.g. image index) keeps boxes of different groups from suppressing each other.
    ``mode="min"`` divides the overlap by the smaller area, so a box lying inside a larger,
    better one is removed too (MTCNN's last stage). Overlaps are computed for a block of boxes
    against all at once; only the greedy pick loops in Python (a pass per kept box was 7 % of
    the detector's time on P-Net's hundreds of proposals).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order].astype(np.float64)
    groups = np.zeros(len(boxes)) if groups is None else np.asarray(groups)[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    removed, keep = np.zeros(len(boxes), dtype=bool), []
    for start in range(0, len(boxes), _NMS_BLOCK):
        block = slice(start, start + _NMS_BLOCK)
        w = np.minimum(boxes[block, None, 2], boxes[:, 2]) - np.maximum(boxes[block, None, 0], boxes[:, 0])
        h = np.minimum(boxes[block, None, 3], boxes[:, 3]) - np.maximum(boxes[block, None, 1], boxes[:, 1])
        inter = np.maximum(w, 0) * np.maximum(h, 0)
        denom = np.minimum(area[block, None], area) if mode == "min" else area[block, None] + area - inter
        suppresses = (inter > threshold * denom) & (groups[block, None] == groups)
        for i in range(start, min(start + _NMS_BLOCK, len(boxes))):
            if not removed[i]:
                keep.append(i)
                removed |= suppresses[i - start]
    return order[np.asarray(keep, dtype=np.int64)]


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the networks' box offsets, given in units of the window's width and height."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return boxes + offsets * np.concatenate([wh, wh], axis=1)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Integer square windows around the boxes' centres: the next net sees undistorted faces."""
    side = np.maximum(np.round((boxes[:, 2:] - boxes[:, :2]).max(axis=1)), 1.0)
    corner = np.round((boxes[:, :2] + boxes[:, 2:]) / 2 - side[:, None] / 2)
    return np.concatenate([corner, corner + side[:, None]], axis=1)


def _halve(image: np.ndarray) -> np.ndarray:
    """2x2 box average (``INTER_AREA``'s fast exact path); an odd side is padded with black, as crops are."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _crops(images: Sequence[np.ndarray], index: np.ndarray, windows: np.ndarray, size: int) -> np.ndarray:
    """(K, size, size, 3) uint8 crops of windows; black outside the image (as in training).

    A window ``s`` pixels wide is sampled bilinearly from the image halved ``k`` times, where
    ``s / 2**k`` lies in [size, 2 size): close to ``INTER_AREA`` on the whole window, but at a small
    fixed cost per crop instead of one growing with the window's area (faces near the camera made
    this most of the detector's time), and without a padded copy for windows reaching outside.
    """
    out = np.empty((len(windows), size, size, 3), dtype=np.uint8)
    scale = (windows[:, 2:] - windows[:, :2]) / size  # window pixels per crop pixel, x and y
    halvings = np.floor(np.log2(np.maximum(scale.min(axis=1), 1))).astype(np.int64)
    for i in np.unique(index):
        levels = [images[i]]  # levels[k]: image i halved k times, made as needed
        for k in np.flatnonzero(index == i):
            while len(levels) <= halvings[k]:
                levels.append(_halve(levels[-1]))
            step = 2.0 ** halvings[k]
            (sx, sy), (x1, y1) = scale[k] / step, windows[k, :2] / step
            # crop pixel j's centre lies at x1 + (j + 0.5) sx in the level's edge coordinates
            affine = np.array([[sx, 0, x1 + 0.5 * sx - 0.5], [0, sy, y1 + 0.5 * sy - 0.5]])
            out[k] = cv2.warpAffine(levels[halvings[k]], affine, (size, size),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise AffectlabError(f"face detection needs an HxWx3 uint8 RGB image, got a {got}")
    return np.ascontiguousarray(image)


def _run_chunked(net: Net, crops: np.ndarray) -> tuple[np.ndarray, ...]:
    """``net`` on (K, S, S, 3) uint8 crops, ``_CHUNK`` at a time; its outputs concatenated."""
    parts = [net(_normalise(crops[i:i + _CHUNK])) for i in range(0, len(crops), _CHUNK)]
    return tuple(np.concatenate(outputs) for outputs in zip(*parts))


#: Margins (fractions of the side) of the second looks at a still image where no face was found. On
#: SFEW's 143x181 tight crops faces were found in 63 % of the images at first sight, 93 % with the
#: first second look, 94 % with both, and no face on the no-face sample media (bench/detection.py).
SECOND_LOOKS = (0.15, 0.5)
_SECOND_LOOK_MAX_SIDE = 512  # tight crops are small; a large photo without a face is not searched again
#: O-Net score a face found at a second look needs: brightened, padded letters of a title frame once
#: scored 0.75 there, while 96 % of the SFEW faces found at a second look score above this.
_SECOND_LOOK_SCORE = 0.85


def _small(image: np.ndarray) -> bool:
    return max(image.shape[:2]) <= _SECOND_LOOK_MAX_SIDE


def second_look(image: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """The image padded with black by ``margin`` of its side on every side and brightened (its 99.5th
    percentile to white), and the (x, y) of its top-left corner in the padded image.

    A tight face crop leaves P-Net no window around the face, and film stills are often too dark for
    the nets; padding gives the cascade the context it was trained with (black, as crops reaching
    outside an image are filled), and brightening leaves a normally lit image almost unchanged."""
    h, w = image.shape[:2]
    top, left = round(margin * h), round(margin * w)
    white = max(float(np.percentile(image, 99.5)), 1.0)
    bright = cv2.convertScaleAbs(image, alpha=255 / white) if white < 255 else image
    padded = cv2.copyMakeBorder(bright, top, top, left, left, cv2.BORDER_CONSTANT, value=0)
    return padded, np.array([left, top], dtype=np.float32)


def _shifted(d: Detections, shift: np.ndarray, min_score: float) -> Detections:
    """Detections in a padded image scoring at least ``min_score``, in the coordinates of the original."""
    keep = d.scores >= min_score
    return Detections(d.boxes[keep] - np.tile(shift, 2), d.scores[keep], d.landmarks[keep] - shift)


@dataclass
class _Candidates:
    """Windows still in the running, across a batch of images."""

    index: np.ndarray  # (K,) image index
    boxes: np.ndarray  # (K, 4)
    scores: np.ndarray  # (K,)


class MTCNN:
    """The P-, R-, O-Net cascade with pretrained weights, for RGB uint8 images.

    ``min_face_size`` (pixels) sets the largest pyramid scale, and so most of the run time;
    ``thresholds`` are the three nets' face-probability cut-offs; ``factor`` is the pyramid step.
    """

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: float = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        if min_face_size <= 0:
            raise AffectlabError(f"min_face_size must be positive, got {min_face_size}")
        if not 0 < factor < 1:
            raise AffectlabError(f"the pyramid factor must lie in (0, 1), got {factor}")
        self.device = str(device)
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.pnet, self.rnet, self.onet = load_nets(self.device)

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in one HxWx3 uint8 RGB image."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray], second_looks: Sequence[float] = ()) -> list[Detections]:
        """Faces in each image; images of equal size share P-Net passes, and all share R/O-Net passes.

        ``second_looks`` (e.g. :data:`SECOND_LOOKS`, for still photos): margins at which a small image
        where nothing was found is searched again, brightened and padded (:func:`second_look`)."""
        checked = [_check_image(image) for image in images]
        found = self._cascade(checked)
        for margin in second_looks:
            again = [i for i, (image, d) in enumerate(zip(checked, found)) if not len(d) and _small(image)]
            if not again:
                break
            looks = [second_look(checked[i], margin) for i in again]
            for i, (look, shift), d in zip(again, looks, self._cascade([look for look, _ in looks])):
                found[i] = _shifted(d, shift, _SECOND_LOOK_SCORE)
        return found

    def refine(self, image: np.ndarray, boxes: np.ndarray) -> Detections:
        """The faces whose boxes in the previous video frame were ``boxes``, found again by O-Net alone.

        Each box's square window goes through the cascade's last stage, as if the earlier stages had
        proposed it: new score, box and landmarks, duplicates removed, faces scoring below O-Net's
        threshold dropped. A face that moved a fraction of its size costs one 48x48 O-Net pass instead
        of the whole pyramid."""
        image, boxes = _check_image(image), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        windows = _Candidates(np.zeros(len(boxes), np.int64), _square(boxes), np.ones(len(boxes)))
        return self._output([image], windows)[0]

    def _cascade(self, images: list[np.ndarray]) -> list[Detections]:
        return self._output(images, self._refine(images, self._propose(images)))

    def _propose(self, images: list[np.ndarray]) -> _Candidates:
        """Stage 1: P-Net over each image's pyramid, NMS per scale, then across scales."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        found = []
        for (h, w, _), members in by_shape.items():
            scales = pyramid_scales(h, w, self.min_face_size, self.factor)
            sizes = [(int(np.ceil(w * scale)), int(np.ceil(h * scale))) for scale in scales]
            pyramids = [_pyramid(images[i], sizes) for i in members]
            for level, (level_w, level_h) in enumerate(sizes):
                prob, offsets = self.pnet(_normalise(np.stack([p[level] for p in pyramids])))
                b, row, col = np.nonzero(prob >= self.thresholds[0])
                scores, offsets = prob[b, row, col], offsets.transpose(0, 2, 3, 1)[b, row, col]
                corner = np.stack([col, row], axis=1) * _PNET_STRIDE
                # window edges in the level -> in the image, with the level's exact (rounded) scale
                to_image = np.array([w / level_w, h / level_h, w / level_w, h / level_h])
                boxes = np.concatenate([corner, corner + _PNET_WINDOW], axis=1) * to_image
                index = np.asarray(members)[b]
                keep = nms(boxes, scores, _NMS_PER_SCALE, groups=index)
                found.append((index[keep], boxes[keep], scores[keep], offsets[keep]))
        if not found:
            return _Candidates(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        index, boxes, scores, offsets = (np.concatenate(parts) for parts in zip(*found))
        keep = nms(boxes, scores, _NMS_ACROSS_SCALES, groups=index)
        return _Candidates(index[keep], _square(_regress(boxes[keep], offsets[keep])), scores[keep])

    def _refine(self, images: list[np.ndarray], c: _Candidates) -> _Candidates:
        """Stage 2: R-Net re-scores 24x24 crops of the proposals."""
        if not len(c.index):
            return c
        prob, offsets = _run_chunked(self.rnet, _crops(images, c.index, c.boxes, 24))
        passed = np.flatnonzero(prob > self.thresholds[1])
        index, boxes, scores, offsets = c.index[passed], c.boxes[passed], prob[passed], offsets[passed]
        keep = nms(boxes, scores, _NMS_REFINE, groups=index)
        return _Candidates(index[keep], _square(_regress(boxes[keep], offsets[keep])), scores[keep])

    def _output(self, images: list[np.ndarray], c: _Candidates) -> list[Detections]:
        """Stage 3: O-Net on 48x48 crops gives the final scores, boxes and landmarks."""
        boxes, scores, landmarks, index = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)), c.index
        if len(c.index):
            prob, offsets, points = _run_chunked(self.onet, _crops(images, c.index, c.boxes, 48))
            keep = np.flatnonzero(prob > self.thresholds[2])
            windows, index, scores = c.boxes[keep], c.index[keep], prob[keep]
            wh = (windows[:, 2:] - windows[:, :2])[:, None, :]
            points = points[keep].reshape(-1, 2, 5).transpose(0, 2, 1)
            landmarks = windows[:, None, :2] + points * wh  # offsets from the window's first pixel
            boxes = _regress(windows, offsets[keep])
            keep = nms(boxes, scores, _NMS_REFINE, groups=index, mode="min")
            boxes, scores, landmarks, index = boxes[keep], scores[keep], landmarks[keep], index[keep]
        return [
            Detections(
                boxes[index == i].astype(np.float32),
                scores[index == i].astype(np.float32),
                landmarks[index == i].astype(np.float32),
            )
            for i in range(len(images))
        ]
