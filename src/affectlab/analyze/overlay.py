"""``--video-out``: the input video again, with each analysed face's box, id, top expression and
valence/arousal bars drawn on it. Frames are decoded, drawn and encoded one at a time."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from affectlab.analyze.media import iter_video, video_info
from affectlab.analyze.plots import EXPR_COLOURS

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    """'#RRGGBB' -> an RGB tuple (frames are RGB arrays here)."""
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _encoder() -> str:
    """H.264 where this PyAV build has an encoder for it, else MPEG-4 part 2 (always there)."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def draw_face(image: np.ndarray, row: pd.Series, expr_names: list[str]) -> None:
    """Box, ``face_id``, the most probable expression with its probability, and two bars beside the box:
    valence (left half negative, right half positive) and arousal, each over [-1, 1]."""
    x, y, w, h = (int(round(row[c])) for c in ("x", "y", "width", "height"))
    colour = _bgr(EXPR_COLOURS.get(str(row["expression"]), "#FFFFFF"))
    thick = max(1, round(min(image.shape[:2]) / 300))
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thick)
    p = float(row[row["expression"]]) if row["expression"] in row else float("nan")
    label = f"#{int(row['face_id'])} {row['expression']} {p:.0%}"
    scale = max(0.4, min(image.shape[:2]) / 900)
    (tw, th), base = cv2.getTextSize(label, _FONT, scale, thick)
    top = max(y - th - base - 4, 0)
    cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
    cv2.putText(image, label, (x + 2, top + th + 2), _FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
    bar_w, bar_h = max(w // 2, 40), max(6, int(8 * scale))
    below = min(y + h + 6, image.shape[0] - 2 * (bar_h + 6))  # under the box, or inside it at the frame's edge
    for i, (name, value) in enumerate((("V", row["valence"]), ("A", row["arousal"]))):
        bx, by = x, below + i * (bar_h + 6)
        cv2.rectangle(image, (bx, by), (bx + bar_w, by + bar_h), (40, 40, 40), -1)
        mid = bx + bar_w // 2
        end = int(round(mid + float(np.clip(value, -1, 1)) * bar_w / 2))
        fill = (80, 200, 80) if value >= 0 else (220, 80, 80)
        cv2.rectangle(image, (min(mid, end), by), (max(mid, end), by + bar_h), fill, -1)
        cv2.line(image, (mid, by), (mid, by + bar_h), (255, 255, 255), 1)
        cv2.putText(image, name, (bx + bar_w + 4, by + bar_h), _FONT, scale * 0.8, (255, 255, 255), 1, cv2.LINE_AA)


def write_overlay_video(video_path: str | os.PathLike[str], table: pd.DataFrame, out_path: str | os.PathLike[str], *,
                        stride: int = 1) -> Path:
    """The analysed frames of ``video_path`` (every ``stride``-th, as analysed) with ``table``'s faces drawn."""
    info = video_info(video_path)
    faces = table[table["success"] == 1]
    by_frame = {int(f): rows for f, rows in faces.groupby("frame")}
    expr_names = [c for c in EXPR_COLOURS if c in table.columns]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fps = (info.fps if np.isfinite(info.fps) and info.fps > 0 else 25.0) / stride
    with av.open(str(out_path), "w") as container:
        stream = container.add_stream(_encoder(), rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = info.width - info.width % 2, info.height - info.height % 2
        stream.pix_fmt = "yuv420p"
        for frame in iter_video(video_path, stride):
            image = np.ascontiguousarray(frame.image[: stream.height, : stream.width])
            for _, row in by_frame.get(frame.frame, pd.DataFrame()).iterrows():
                draw_face(image, row, expr_names)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out_path
