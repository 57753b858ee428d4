"""Generated bad inputs of every kind a user can hand affectlab: tiny files, written in a few milliseconds.

Each builder writes into a folder and returns the path; the fault suite (tests/test_cli_faults.py) runs
every command against them.
"""
from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import av
import numpy as np
from PIL import Image


def good_image(path: Path, size: tuple[int, int] = (24, 24), value: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 80, 40)).save(path)
    return path


def zero_byte(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def text_as_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a shopping list, not a picture\n")
    return path


def truncated_jpeg(path: Path) -> Path:
    """The first third of a real JPEG: the header decodes, the pixels end early."""
    good_image(path, (64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def sixteen_bit_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 24), 40000, dtype=np.uint16)).save(path)
    return path


def one_pixel(path: Path) -> Path:
    return good_image(path, (1, 1))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(path: Path, side: int = 40_000) -> Path:
    """A PNG whose header declares ``side`` x ``side`` pixels (1.6 billion: a decompression bomb)
    with almost no data: a few hundred bytes on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))
    return path


def video(path: Path, n: int = 12, size: tuple[int, int] = (32, 24), fps: int = 10, codec: str = "mpeg4",
          picture: np.ndarray | None = None) -> Path:
    """A small real video whose frame i is filled with gray level 8·i mod 256 (so decoded order is checkable),
    or with ``picture`` (RGB uint8, even sides: e.g. real faces) on every frame."""
    if picture is not None:
        size = (picture.shape[1], picture.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(n):
            img = picture if picture is not None else np.full((size[1], size[0], 3), (8 * i) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def truncated_video(path: Path, n: int = 40) -> Path:
    """A real video cut in half: the first frames decode, then the file ends."""
    video(path, n=n)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def audio_only(path: Path) -> Path:
    """An .mp4 with one AAC audio stream and no video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for _ in range(4):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def truncated_file(source: Path, path: Path, keep: float = 0.5) -> Path:
    """The first ``keep`` of ``source``'s bytes."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


class RunsCode:
    """Unpickling this calls ``Path(marker).touch()``: a pickle that would run code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def code_running_pickle(path: Path, marker: Path) -> Path:
    """A file that runs code (creates ``marker``) if anyone unpickles it: as torch.save would write it."""
    import torch

    torch.save({"member": "main", "step": 2, "payload": RunsCode(marker)}, path)
    return path


def plain_pickle(path: Path, marker: Path) -> Path:
    """A bare pickle (not a torch zip file) that runs code when loaded."""
    path.write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    return path


def checkpoint_without_a_tensor(source: Path, path: Path) -> Path:
    """A copy of the checkpoint ``source`` with its first tensor left out, its metadata kept."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), "pt") as f:
        names = sorted(f.keys())
        tensors = {k: f.get_tensor(k) for k in names[1:]}
        meta = f.metadata()
    save_file(tensors, str(path), metadata=meta)
    return path
