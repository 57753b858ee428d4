"""Videos composed from real faces for the re-identification tests and bench/reid.py: people leave and
come back (after empty frames, across a cut, mirrored), two people cross. Frames are small (a face
about 90 px on a 288x128 gray canvas) so that the tests stay fast.

A person is a list of face photos (square crops around a detected face); a clip is a list of frames,
each a list of (photo, x) placements, x the left edge of the face crop on the canvas.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from affectlab.analyze.media import iter_video, read_image
from affectlab.faces import MTCNN

MEDIA = Path(__file__).resolve().parents[1] / "examples" / "media"
HEIGHT, WIDTH, FACE = 128, 288, 96
LEFT, MIDDLE, RIGHT = 8, (WIDTH - FACE) // 2, WIDTH - FACE - 8


def face_photo(detector: MTCNN, image: np.ndarray, which: int | None = None) -> np.ndarray:
    """A FACE x FACE crop around the ``which``-th detected face from the left (None: the one nearest the
    image's centre), the face about 2/3 of it. ValueError where no face is found."""
    found = detector.detect(image)
    if not len(found):
        raise ValueError("no face found")
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    pick = (int(np.argmin(np.linalg.norm(centres - np.array(image.shape[1::-1]) / 2, axis=1))) if which is None
            else int(np.argsort(found.boxes[:, 0])[which]))
    x1, y1, x2, y2 = found.boxes[pick]
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * max(x2 - x1, y2 - y1)
    pad = int(side)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    x0, y0 = int(round(cx - side / 2)) + pad, int(round(cy - side / 2)) + pad
    crop = padded[y0:y0 + int(side), x0:x0 + int(side)]
    return cv2.resize(crop, (FACE, FACE), interpolation=cv2.INTER_AREA)


def video_person(detector: MTCNN, name: str, frames: list[int]) -> list[np.ndarray]:
    """Face photos of the one person of a sample video, at the given frame indices (0-based)."""
    wanted, photos = set(frames), []
    for index, frame in enumerate(iter_video(MEDIA / name, 1)):
        if index in wanted:
            photos.append(face_photo(detector, frame.image))
        if index >= max(frames):
            break
    return photos


def image_person(detector: MTCNN, path: Path, which: int | None = None) -> list[np.ndarray]:
    return [face_photo(detector, read_image(path), which)]


Placement = tuple[str, np.ndarray, int]  # (who, photo, x)


def compose(frames: list[list[Placement]]) -> list[np.ndarray]:
    """RGB uint8 frames: each placement's photo pasted at (x, 16) on a plain gray canvas, in order
    (a later one hides an earlier one where they overlap)."""
    out = []
    for placements in frames:
        canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        for _, photo, x in placements:
            canvas[16:16 + FACE, x:x + FACE] = photo
        out.append(canvas)
    return out


def hold(who: str, photo: np.ndarray, x: int, n: int) -> list[list[Placement]]:
    return [[(who, photo, x)] for _ in range(n)]


def empty(n: int) -> list[list[Placement]]:
    return [[] for _ in range(n)]


def leave_and_return(a: list[np.ndarray], b: list[np.ndarray], gap: int = 12, n: int = 3) -> list[list[Placement]]:
    """A on the left, ``gap`` empty frames, A again on the right (another photo), then B in the middle."""
    return (hold("A", a[0], LEFT, n) + empty(gap) + hold("A", a[-1], RIGHT, n) + empty(gap)
            + hold("B", b[0], MIDDLE, n))


def cut(a: list[np.ndarray], b: list[np.ndarray], n: int = 3) -> list[list[Placement]]:
    """A on the left, cut to B on the right, cut back to A in the middle: no empty frame in between."""
    return hold("A", a[0], LEFT, n) + hold("B", b[0], RIGHT, n) + hold("A", a[-1], MIDDLE, n)


def mirrored_return(a: list[np.ndarray], b: list[np.ndarray], n: int = 3) -> list[list[Placement]]:
    """A on the left, B alone, then A mirrored on the right."""
    return hold("A", a[0], LEFT, n) + hold("B", b[0], MIDDLE, n) + hold("A", np.ascontiguousarray(a[-1][:, ::-1]),
                                                                         RIGHT, n)


def crossing(a: list[np.ndarray], b: list[np.ndarray], steps: int = 7) -> list[list[Placement]]:
    """A walks from the left to the right while B walks from the right to the left; where they overlap
    B passes in front and A is hidden."""
    xs = np.linspace(LEFT, RIGHT, steps).round().astype(int)
    return [[("B", b[0], xb)] if abs(xa - xb) < FACE else [("A", a[0], xa), ("B", b[0], xb)]
            for xa, xb in zip(xs, xs[::-1])]


SCENES = {"leave and return": leave_and_return, "cut": cut, "mirrored return": mirrored_return, "crossing": crossing}


def track(detector: MTCNN, describe, frames: list[list[Placement]], reid: bool = True) -> list[list[tuple[int, np.ndarray]]]:
    """(face_id, box) per frame of a composed clip: the full detector on every frame, then re-identification
    with ``describe`` (a FaceDescriptor) where ``reid``."""
    from affectlab.faces import FaceTracker, follow
    from affectlab.faces.reid import ReIdentifier

    tracker, reidentify, out = FaceTracker(), ReIdentifier(describe), []
    for image in compose(frames):
        faces = follow(detector, tracker, image, True)
        if reid:
            faces = reidentify.assign(image, faces, tracker)
        out.append([(f.face_id, f.box) for f in faces])
    return out


def ids_by_person(faces: list[list[tuple[int, np.ndarray]]], frames: list[list[Placement]]) -> dict[str, set[int]]:
    """The face_ids each person got: each (face_id, box) found goes to the placement of its frame whose
    centre lies nearest the box's; frames where a face was missed or too many were found are left out."""
    out: dict[str, set[int]] = {}
    for found, placements in zip(faces, frames):
        if len(found) != len(placements):
            continue
        centres = np.array([x + FACE / 2 for _, _, x in placements])
        for face_id, box in found:
            who = placements[int(np.argmin(np.abs(centres - (box[0] + box[2]) / 2)))][0]
            out.setdefault(who, set()).add(int(face_id))
    return out
