"""From an image file to the normalised tensor a model takes: decode, frame the face, augment.

Crop policy (one place, used by training, evaluation and checkpoints alike):

- Every face is first brought to a *load size* ``round(size · (1 + 2·margin))``, a little larger than
  the model input, so training can take random crops and evaluation a central ``size`` crop.
- A row with 68 landmarks (AffectNet's ``lnd_x0..lnd_y67``) is aligned with
  :func:`affectlab.faces.align.align_face` so that, in the central crop, the 5 points land on the
  model's template (the 112 px ArcFace layout scaled to ``size``), exactly as at inference.
- A tight crop without landmarks (FER+, CK+, SFEW) whose source gives a ``framing`` (the typical
  5 points of its crops, measured by tools/measure_framing.py) is aligned by those points the same
  way: its face lands at the template's scale, padded out with black where the crop ends, instead
  of filling the model's input.
- Any other image is taken to be a face crop that already carries its own margin (Aff-Wild2's
  ``cropped_aligned`` frames): it is resized to the load size ("resize with margin"), so the
  central crop zooms in by ``1 + 2·margin``.
- ``context`` (crop-with-context models, ensemble-with-context §3) widens a view: an aligned face
  shrinks inside the crop by ``1 + 2·context``. A crop without landmarks carries the context it
  carries (``image_context``, 0 = the face fills it); a view with less context takes its central
  part, a view with more gets the whole image.

Augmentation (SMM §4.2: random cropping, horizontal flipping, colour jitter; plus grayscale and
blur) draws all its random numbers from one :class:`numpy.random.Generator` per sample, so a sample
is augmented the same way whatever worker process loads it; that is what makes resumed training
exact. Flipping leaves the labels alone: AU occurrence, expression and VA are mirror-symmetric.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from affectlab.faces.align import align_face, landmarks68_to_5, named_template


class UnreadableImage(Exception):
    """An image file that cannot be decoded; the dataset turns it into a counted, masked sample."""


@dataclass(frozen=True)
class Augmentation:
    """Random training augmentation; each probability or strength 0 switches that step off.

    ``scale``: side of the random square crop relative to the input size (clipped to the loaded
    image), then resized to the input size. ``brightness``/``contrast``/``saturation``: factors drawn
    from [1 - s, 1 + s]; ``hue``: a shift of up to that fraction of the colour circle.
    """

    scale: tuple[float, float] = (0.9, 1.1)
    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    grayscale: float = 0.05
    blur: float = 0.05
    blur_sigma: tuple[float, float] = (0.3, 1.2)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"augmentation scale must be 0 < low <= high, got {self.scale}")
        for name in ("flip", "grayscale", "blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augmentation {name} is a probability, got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"augmentation {name} must lie in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"augmentation hue must lie in [0, 0.5], got {self.hue}")


def load_size(size: int, margin: float) -> int:
    """The side of the image a face is first brought to: ``size`` plus ``margin`` on each side."""
    return int(round(size * (1 + 2 * margin)))


def decode_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; gray and alpha images become plain RGB.

    OpenCV decodes (fast, honours EXIF orientation); raises :class:`UnreadableImage` when the file
    is missing, truncated or not an image.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise UnreadableImage(f"cannot read ({e.strerror or e})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UnreadableImage("not a decodable image (corrupt or truncated?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def framing_points(framing: np.ndarray | Sequence[Sequence[float]], image: np.ndarray) -> np.ndarray:
    """A tight crop's typical 5 points (``framing``: [x, y] fractions of the image) in its pixels."""
    return np.asarray(framing, dtype=np.float32) * np.array([image.shape[1], image.shape[0]], dtype=np.float32)


def frame_face(image: np.ndarray, landmarks: np.ndarray | None, size: int, margin: float, context: float = 0.0,
               image_context: float = 0.0, template: str = "arcface") -> np.ndarray:
    """The face at load size (see the module docstring): aligned when there are landmarks (68 or the
    5 alignment points, in pixels), else resized.

    ``context``: this view's context; ``image_context``: the context an unaligned image carries;
    ``template``: the named face layout (:data:`affectlab.faces.align.TEMPLATES`).
    """
    side = load_size(size, margin)
    if landmarks is not None:
        face_side = size / (1 + 2 * context)  # the template square, in load-size pixels
        target = named_template(template, side, margin=(1 - face_side / side) / 2)
        points = landmarks68_to_5(landmarks) if len(landmarks) == 68 else landmarks
        return align_face(image, points, target, side)
    if context < image_context:
        h, w = image.shape[:2]
        keep = (1 + 2 * context) / (1 + 2 * image_context)
        ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        image = image[y0 : y0 + ch, x0 : x0 + cw]
    shrink = image.shape[0] > side or image.shape[1] > side
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` square: what evaluation and inference see."""
    y0, x0 = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[y0 : y0 + size, x0 : x0 + size]


@dataclass(frozen=True)
class AugmentParams:
    """One sample's draw of :class:`Augmentation`; the same draw serves every frame or view of a sample."""

    crop: tuple[int, int, int]  # x0, y0, side in load-size pixels
    flip: bool
    brightness: float
    contrast: float
    saturation: float
    hue: float
    grayscale: bool
    blur_sigma: float  # 0 = no blur


def sample_params(aug: Augmentation, size: int, loaded: int, rng: np.random.Generator) -> AugmentParams:
    """Draw every random choice of one augmentation up front (a fixed number of draws, in a fixed order)."""
    u = rng.random(10)
    lo, hi = aug.scale
    side = int(round(min(size * (lo + (hi - lo) * u[0]), loaded)))
    x0, y0 = int(u[1] * (loaded - side + 1)), int(u[2] * (loaded - side + 1))
    factor = lambda s, x: 1 + s * (2 * x - 1)  # noqa: E731
    blur = aug.blur_sigma[0] + (aug.blur_sigma[1] - aug.blur_sigma[0]) * u[9] if u[8] < aug.blur else 0.0
    return AugmentParams(
        crop=(x0, y0, side), flip=bool(u[3] < aug.flip), brightness=factor(aug.brightness, u[4]),
        contrast=factor(aug.contrast, u[5]), saturation=factor(aug.saturation, u[6]),
        hue=aug.hue * (2 * u[7] - 1), grayscale=bool(u[8] >= 1 - aug.grayscale), blur_sigma=blur,
    )


def augment(image: np.ndarray, p: AugmentParams, size: int) -> np.ndarray:
    """Apply one draw to a load-size image; returns a (size, size, 3) uint8 image."""
    x0, y0, side = p.crop
    out = image[y0 : y0 + side, x0 : x0 + side]
    if side != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    if p.flip:
        out = cv2.flip(out, 1)
    if p.hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)  # OpenCV hue runs over 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(round(p.hue * 180))) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    x = out.astype(np.float32)
    x *= p.brightness
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = (x - gray.mean()) * p.contrast + gray.mean()
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = gray[..., None] + (x - gray[..., None]) * (0.0 if p.grayscale else p.saturation)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if p.blur_sigma:
        out = cv2.GaussianBlur(out, (0, 0), p.blur_sigma)
    return out


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 RGB faces (..., H, W, 3) -> float32 (..., 3, H, W), scaled to [0, 1] then normalised per
    channel: the model's input, the same in training, evaluation and analysis."""
    x = images.astype(np.float32) * np.float32(1 / 255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))
