"""Media in: images (any Pillow format, grayscale, alpha, EXIF rotation), folders, globs and videos.

Videos are decoded with PyAV one frame at a time, so memory stays flat whatever the length; a
corrupt or truncated video yields the frames it has and then raises :class:`~affectlab.errors.DataError`,
so the caller keeps what was computed. Frames come out as RGB uint8 arrays.
"""
from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from affectlab.data._parse import IMAGE_SUFFIXES
from affectlab.errors import DataError, not_there

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})
#: How far short of its declared duration a video may end before we call it truncated.
_TRUNCATION_SLACK_S = 0.5


@dataclass(frozen=True)
class Frame:
    """One decoded picture: ``frame`` is 1-based within a video (-1 for a still image)."""

    input: str
    frame: int
    timestamp: float  # seconds from the start of the video; NaN for a still image
    image: np.ndarray  # H x W x 3, uint8, RGB


@dataclass(frozen=True)
class VideoInfo:
    frames: int | None  # as declared by the container; may be off by a few
    fps: float
    width: int
    height: int
    duration: float | None  # seconds


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_image(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def folder_media(folder: Path, exclude: Path | None = None) -> list[Path]:
    """The images and videos anywhere under ``folder``, sorted: datasets keep classes in subfolders.
    Hidden folders and ``exclude`` (the run's own output folder) are not searched."""
    skip = exclude.resolve() if exclude is not None else None
    media = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and (skip is None or Path(root, d).resolve() != skip)]
        media += [Path(root, n) for n in names if is_image(n) or is_video(n)]
    return sorted(media)


def expand_inputs(inputs: Sequence[str | os.PathLike[str]],
                  exclude: str | os.PathLike[str] | None = None) -> tuple[list[Path], list[DataError]]:
    """Files, folders (every image and video under them, sorted) and globs -> media files, plus one
    error per input that names nothing usable (so the other inputs still run). ``exclude``: a folder
    never searched into (the output folder, whose annotated images are not inputs)."""
    found: list[Path] = []
    errors: list[DataError] = []
    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            media = folder_media(path, Path(exclude) if exclude is not None else None)
            if not media:
                errors.append(DataError(path, "folder holds no image or video files (searched with its subfolders)"))
            found += media
        elif path.is_file():
            if is_image(path) or is_video(path):
                found.append(path)
            else:
                errors.append(DataError(path, f"not an image or video file (suffix {path.suffix or 'none'!r})"))
        elif glob.has_magic(text):
            media = sorted(Path(p) for p in glob.glob(text, recursive=True) if is_image(p) or is_video(p))
            if not media:
                errors.append(DataError(path, "pattern matches no image or video files"))
            found += media
        else:
            errors.append(DataError(path, not_there(path)))
    return list(dict.fromkeys(found)), errors


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as RGB uint8, upright (EXIF orientation applied); alpha is composited on white,
    grayscale and 16-bit images are converted."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, rgba)
            elif im.mode.startswith("I;16") or im.mode == "I":
                im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except Image.DecompressionBombError as e:
        raise DataError(path, f"image too large to analyse ({e.args[0].split(',')[0]})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(path, f"cannot decode image ({e})") from None


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """What the container declares (for progress bars and writers); DataError if it cannot be opened."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            stream = _video_stream(container, path)
            fps = float(stream.average_rate or 0)
            return VideoInfo(frames=stream.frames or None, fps=fps or math.nan, width=stream.width,
                             height=stream.height, duration=_declared_duration(container, stream, fps))
    except av.error.FFmpegError as e:
        raise DataError(path, f"cannot open video ({_reason(e)})") from None


def iter_video(path: str | os.PathLike[str], stride: int = 1) -> Iterator[Frame]:
    """Decode a video frame by frame, keeping every ``stride``-th (frames 1, 1 + stride, ...).

    Raises DataError after the last good frame if the stream is corrupt or ends well short of its
    declared duration (a truncated file)."""
    import av

    if stride < 1:
        raise ValueError("stride must be >= 1")
    name = os.fspath(path)
    try:
        container = av.open(name)
    except av.error.FFmpegError as e:
        raise DataError(path, f"cannot open video ({_reason(e)})") from None
    with container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or 0)
        declared = _declared_duration(container, stream, fps)
        index, last_time = 0, 0.0
        try:
            for decoded in container.decode(stream):
                index += 1
                last_time = float(decoded.time) if decoded.time is not None else (index - 1) / (fps or 1)
                if (index - 1) % stride == 0:
                    yield Frame(name, index, last_time, decoded.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as e:
            raise DataError(path, f"video is corrupt after frame {index} ({_reason(e)})") from None
        if index == 0:
            raise DataError(path, "video has no decodable frames")
        frame_time = 1 / fps if fps else 0.0
        if declared is not None and last_time + frame_time < declared - _TRUNCATION_SLACK_S:
            raise DataError(path, f"video ends at {last_time:.1f} s of its declared {declared:.1f} s "
                                  f"after frame {index} (truncated file?)")


def iter_frames(path: str | os.PathLike[str], stride: int = 1) -> Iterator[Frame]:
    """Frames of any media file: one for an image, all (every ``stride``-th) for a video."""
    if is_video(path):
        yield from iter_video(path, stride)
    else:
        yield Frame(os.fspath(path), -1, math.nan, read_image(path))


def _declared_duration(container, stream, fps: float) -> float | None:
    """The longest duration the file claims (stream, container, frame count / rate): a truncated
    file keeps at least one of them from before the cut."""
    claims = [float(stream.duration * stream.time_base) if stream.duration else None,
              container.duration / 1_000_000 if container.duration else None,
              stream.frames / fps if stream.frames and fps else None]
    return max((c for c in claims if c), default=None)


def _video_stream(container, path):
    if not container.streams.video:
        raise DataError(path, "file has no video stream")
    return container.streams.video[0]


def _reason(error: Exception) -> str:
    """PyAV's message without the errno noise."""
    text = getattr(error, "strerror", None) or str(error)
    return text.split(":")[0].strip() if text else type(error).__name__
