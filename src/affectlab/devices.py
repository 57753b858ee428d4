"""Which torch device a user's ``--device`` means, checked once, with a one-line error."""
from __future__ import annotations

import sys
from pathlib import Path

from affectlab.errors import AffectlabError

#: Every command's ``--device`` default.
DEFAULT_DEVICE = "auto"
#: Present wherever an NVIDIA driver is loaded (Linux): without it CUDA cannot be there.
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def resolve_device(value: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is there, else ``cpu``; anything else must name a usable device.

    ``cpu``, and ``auto`` on a machine with no NVIDIA driver, need no check, so they do not import
    torch (the CPU inference path runs without it)."""
    if value == "cpu" or (value == "auto" and "torch" not in sys.modules and not NVIDIA_DRIVER.exists()):
        return "cpu"
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(value)
    except RuntimeError:
        raise AffectlabError(f"device {value!r}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AffectlabError(f"device {value!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AffectlabError(f"device {value!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise AffectlabError(f"device {value!r}: affectlab runs on cpu or cuda")
    return value
