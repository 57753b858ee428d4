"""Face tracking across video frames: a ``face_id`` that stays with the same person, so per-face
results can be smoothed over time and written one row per face and frame.

Matching is by box overlap (faces move little between frames at video rates): the Hungarian
assignment that maximises the total IoU, with the landmark distance breaking near-ties, and pairs
below ``iou_threshold`` left unmatched. No motion model: a box is expected where it was last seen.

:func:`follow` runs the detector on a video frame: the full cascade on a schedule (every k-th frame),
and in between only O-Net on a window around each face's last box (:meth:`MTCNN.refine`), going back
to the full cascade at once when a face is lost there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlab.faces.mtcnn import MTCNN, Detections

_TIE_BREAK = 1e-3  # weight of the landmark distance (in face sizes) against IoU: decides only near-ties


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame. ``detected`` is False where the face was refined from its box in the
    previous frame (:func:`follow`) instead of found by the full cascade."""

    face_id: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    detected: bool


@dataclass
class _Track:
    face_id: int
    box: np.ndarray
    landmarks: np.ndarray
    score: float
    last_seen: int


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of x1, y1, x2, y2 boxes."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    wh = np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2])
    inter = np.clip(wh, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, np.finfo(np.float64).tiny)


def _assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The minimum-cost assignment. With one track or one face (most videos) it is the cheapest pair,
    found without scipy.optimize, whose import alone takes longer than a frame's analysis."""
    if min(cost.shape) == 1:
        r, c = np.unravel_index(np.argmin(cost), cost.shape)
        return np.array([r]), np.array([c])
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)


def match(
    track_boxes: np.ndarray,
    track_landmarks: np.ndarray,
    boxes: np.ndarray,
    landmarks: np.ndarray,
    iou_threshold: float,
) -> list[tuple[int, int]]:
    """(track, detection) pairs: maximum total IoU, landmark distance as tie-break, IoU >= threshold."""
    if len(track_boxes) == 0 or len(boxes) == 0:
        return []
    iou = box_iou(track_boxes, boxes)
    face_size = np.sqrt((track_boxes[:, 2:] - track_boxes[:, :2]).prod(axis=1))
    distance = np.linalg.norm(track_landmarks[:, None] - landmarks[None], axis=3).mean(axis=2)
    cost = -iou + _TIE_BREAK * distance / np.maximum(face_size, 1.0)[:, None]
    rows, cols = _assign(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold]


class FaceTracker:
    """Gives each face a ``face_id`` that persists across frames; call :meth:`update` once per frame.

    A track ends once it has gone unmatched for more than ``max_missed`` frames; a detection that
    matches no live track starts a new id (which affectlab.faces.reid may map back to a lost person's). :meth:`last_boxes` are the faces of the previous frame,
    where :func:`follow` looks for them again.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = -1

    def last_boxes(self) -> np.ndarray:
        """(N, 4) boxes of the faces seen in the previous frame."""
        return np.array([t.box for t in self._tracks if t.last_seen == self._frame]).reshape(-1, 4)

    def end(self, face_ids: set[int]) -> None:
        """End these tracks now: re-identification gave their person to a new track (affectlab.faces.reid)."""
        self._tracks = [t for t in self._tracks if t.face_id not in face_ids]

    def update(self, detections: Detections, detected: bool = True) -> list[TrackedFace]:
        """Advance one frame with its faces; ``detected``: found by the full cascade (else refined)."""
        self._frame += 1
        # frames missed before this one; the current frame may still bring the face back
        self._tracks = [t for t in self._tracks if self._frame - 1 - t.last_seen <= self.max_missed]
        pairs = match(
            np.array([t.box for t in self._tracks]).reshape(-1, 4),
            np.array([t.landmarks for t in self._tracks]).reshape(-1, 5, 2),
            detections.boxes,
            detections.landmarks,
            self.iou_threshold,
        )
        track_of = {d: self._tracks[t] for t, d in pairs}
        faces = []
        for d, (box, landmarks, score) in enumerate(zip(detections.boxes, detections.landmarks, detections.scores)):
            track = track_of.get(d)
            if track is None:
                track = _Track(self._next_id, box, landmarks, float(score), self._frame)
                self._next_id += 1
                self._tracks.append(track)
            else:
                track.box, track.landmarks, track.score, track.last_seen = box, landmarks, float(score), self._frame
            faces.append(TrackedFace(track.face_id, box, landmarks, float(score), detected))
        return faces


def follow(detector: MTCNN, tracker: FaceTracker, image: np.ndarray, detect: bool) -> list[TrackedFace]:
    """The tracked faces of the next video frame; ``detect``: run the full cascade (the schedule).

    Between scheduled detections the faces of the previous frame are refined by O-Net on windows
    around their boxes; if any is lost there (duplicate, or below O-Net's threshold), this frame gets
    the full cascade instead, so a turned-away or occluded face is searched for at once. New faces
    appear at the next scheduled detection, and frames without faces have nothing to refine."""
    previous = tracker.last_boxes()
    if not detect:
        refined = detector.refine(image, previous)
        if len(refined) == len(previous):
            return tracker.update(refined, detected=False)
    return tracker.update(detector.detect(image))
