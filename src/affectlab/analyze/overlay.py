"""The results drawn onto the video (or an image): each face's box, id, top expression and valence/arousal bars.

    write_overlay_video("clip.mp4", table, "clip_overlay.mp4")
    write_overlay_image("group.jpg", table, "group_annotated.jpg")

The video is decoded again frame by frame (``media.iter_video``) and encoded as it goes, so memory
stays flat whatever its length; frames without rows in the table are written unchanged. Encoded with
H.264 (libx264, which browsers play) where PyAV has it, an odd width or height padded by one black
column or row; else MPEG-4 part 2. No audio.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from affectlab.analyze.media import iter_video, read_image, video_info
from affectlab.analyze.plots import EXPR_COLOURS

PathLike = str | os.PathLike[str]

_POSITIVE = (0, 114, 178)  # RGB: Okabe-Ito blue for a bar above 0
_NEGATIVE = (213, 94, 0)  # RGB: vermillion below 0
_UNKNOWN = (200, 200, 200)  # box colour of a face without an expression
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class _Face:
    """What is drawn for one face in one frame."""

    face_id: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
    expression: str | None
    probability: float  # of the top expression; NaN when unknown
    valence: float
    arousal: float


def write_overlay_video(video_path: PathLike, table: pd.DataFrame, out_path: PathLike, *, stride: int = 1) -> Path:
    """Write ``video_path`` with ``table``'s faces drawn on it to ``out_path`` (container from the suffix).

    ``stride`` keeps every n-th frame, as in the analysis that made the table; the output frame rate
    is divided by it, so the overlay keeps the video's duration."""
    if stride < 1:
        raise ValueError("stride must be >= 1")
    info = video_info(video_path)
    faces = _faces_by_frame(_rows_of(table, video_path))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    import av

    with av.open(os.fspath(out_path), "w") as container:
        stream = _add_stream(container, info.width, info.height, _rate(info.fps) / stride)
        try:
            for frame in iter_video(video_path, stride):
                image = frame.image
                if frame.frame in faces:
                    image = image.copy()  # contiguous and writable for cv2
                    draw_faces(image, faces[frame.frame])
                image = _padded(image, stream.width, stream.height)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        finally:
            container.mux(stream.encode())
    return out_path


def write_overlay_image(image_path: PathLike, table: pd.DataFrame, out_path: PathLike) -> Path:
    """Write a copy of the image ``image_path`` with its faces in ``table`` drawn on it (box, id, top
    expression, VA bars), so several faces in one photo can be told apart in the tables and plots."""
    image = read_image(image_path).copy()
    draw_faces(image, _faces_by_frame(_rows_of(table, image_path, every_input=False)).get(-1, []))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out_path)
    return out_path


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2


def draw_faces(image: np.ndarray, faces: list[_Face]) -> list[Rect]:
    """Draw each face's box and VA bars, then the labels, top face first, each where it overlaps no label
    drawn before it (faces side by side in a group photo would otherwise write over each other); returns
    the label chips."""
    styles = []
    for face in faces:
        x1, y1, x2, y2 = face.box
        scale = max(0.35, min(min(image.shape[:2]) / 900, (x2 - x1) / 160))  # with the frame, not beyond the face
        thick = max(1, round(2 * scale))
        colour = _rgb(EXPR_COLOURS[face.expression]) if face.expression in EXPR_COLOURS else _UNKNOWN
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        _va_bars(image, face, scale)
        styles.append((colour, scale, thick))
    taken: list[Rect] = []
    for i in sorted(range(len(faces)), key=lambda i: faces[i].box[1]):
        colour, scale, thick = styles[i]
        taken.append(_label(image, _caption(faces[i]), faces[i].box, colour, scale, thick, taken))
    return taken


def _caption(face: _Face) -> str:
    if face.expression is None:
        return f"#{face.face_id}"
    return f"#{face.face_id} {face.expression} {face.probability:.0%}"


def _label(image: np.ndarray, text: str, box: Rect, colour: tuple[int, int, int], scale: float, thick: int,
           taken: list[Rect] = ()) -> Rect:
    """``text`` on a chip of the box colour: above the box, else inside its top, else below it, else
    further up; the first of these inside the image that overlaps none of the ``taken`` chips (the
    first place when all do). Returns the chip drawn."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, max(1, thick - 1))
    pad = max(2, thick)
    w, h = tw + 2 * pad, th + base + 2 * pad
    x1 = min(max(0, box[0]), max(0, image.shape[1] - w))
    tops = [box[1] - h, box[1], box[3], *(box[1] - k * h for k in range(2, 6))]
    inside = [t for t in tops if 0 <= t <= image.shape[0] - h] or [max(0, min(box[1], image.shape[0] - h))]
    top = next((t for t in inside if not any(_overlap((x1, t, x1 + w, t + h), r) for r in taken)), inside[0])
    cv2.rectangle(image, (x1, top), (x1 + w, top + h), colour, cv2.FILLED)
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x1 + pad, top + pad + th), _FONT, scale, ink, max(1, thick - 1), cv2.LINE_AA)
    return x1, top, x1 + w, top + h


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _va_bars(image: np.ndarray, face: _Face, scale: float) -> None:
    """Two vertical bars beside the box (right of it, left at the frame's edge): V and A from -1 to 1."""
    x1, y1, x2, y2 = face.box
    bar = max(6, round(0.07 * (x2 - x1)))
    gap = max(3, round(4 * scale))
    (_, letter), _ = cv2.getTextSize("V", _FONT, 0.8 * scale, 1)
    top, bottom = max(y1, 0), min(y2, image.shape[0] - letter - 2 * gap)  # room for the letters below
    mid = (top + bottom) // 2
    right = x2 + 2 * (gap + bar) < image.shape[1]
    for k, value in enumerate((face.valence, face.arousal)):
        left = x2 + gap + k * (bar + gap) if right else x1 - (2 - k) * (bar + gap)
        cv2.rectangle(image, (left, top), (left + bar, bottom), (40, 40, 40), cv2.FILLED)
        if np.isfinite(value):
            level = round(mid - float(np.clip(value, -1, 1)) * (bottom - top) / 2)
            cv2.rectangle(image, (left, min(mid, level)), (left + bar, max(mid, level)),
                          _POSITIVE if value >= 0 else _NEGATIVE, cv2.FILLED)
        cv2.rectangle(image, (left, top), (left + bar, bottom), (230, 230, 230), 1)
        cv2.line(image, (left, mid), (left + bar, mid), (230, 230, 230), 1)
        (width, _), _ = cv2.getTextSize("VA"[k], _FONT, 0.8 * scale, 1)
        _outlined(image, "VA"[k], (left + (bar - width) // 2 + 1, bottom + letter + gap), 0.8 * scale)


def _outlined(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text with a dark outline, readable on any background."""
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _rows_of(table: pd.DataFrame, video_path: PathLike, every_input: bool = True) -> pd.DataFrame:
    """The successful rows of ``video_path`` (with ``every_input``: all successful rows when the table
    holds one input)."""
    rows = table[pd.to_numeric(table["success"], errors="coerce").fillna(0).to_numpy() > 0]
    if every_input and table["input"].nunique() <= 1:
        return rows
    target = Path(video_path).resolve()
    return rows[[Path(str(p)).resolve() == target for p in rows["input"]]]


def _faces_by_frame(rows: pd.DataFrame) -> dict[int, list[_Face]]:
    """Frame number -> the faces to draw on it."""
    faces: dict[int, list[_Face]] = {}
    for row in rows.itertuples(index=False):
        x, y, w, h = (float(getattr(row, c)) for c in ("x", "y", "width", "height"))
        if not np.isfinite([x, y, w, h]).all():
            continue
        expression = row.expression if isinstance(row.expression, str) else None
        probability = float(getattr(row, expression)) if expression and hasattr(row, expression) else float("nan")
        faces.setdefault(int(row.frame), []).append(_Face(
            int(row.face_id), (round(x), round(y), round(x + w), round(y + h)), expression, probability,
            _float(row.valence), _float(row.arousal)))
    return faces


def _add_stream(container, width: int, height: int, rate: Fraction):
    """A video stream for ``container``: H.264 where available (4:2:0 needs even sides: an odd one grows by
    a pixel, see _padded), else MPEG-4."""
    import av

    if "libx264" in av.codecs_available:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "20", "preset": "veryfast"})
        width, height = width + width % 2, height + height % 2
    else:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.bit_rate = max(1_000_000, int(width * height * float(rate) * 0.2))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    return stream


def _padded(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` with black columns and rows added at the right and bottom up to the stream's size."""
    grow_y, grow_x = height - image.shape[0], width - image.shape[1]
    return np.pad(image, ((0, grow_y), (0, grow_x), (0, 0))) if grow_x or grow_y else image


def _rate(fps: float) -> Fraction:
    """The frame rate as a fraction (29.97 -> 30000/1001); 25 when the container does not say."""
    return Fraction(fps if np.isfinite(fps) and fps > 0 else 25).limit_denominator(1001)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _float(value: object) -> float:
    return float("nan") if pd.isna(value) else float(value)
