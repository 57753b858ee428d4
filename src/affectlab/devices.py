"""Which torch device a user's ``--device`` means, checked once, with a one-line error."""
from __future__ import annotations

from affectlab.errors import AffectlabError


def resolve_device(value: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is there, else ``cpu``; anything else must name a usable device.

    ``cpu`` needs no check, so it does not import torch (the CPU inference path runs without it)."""
    if value == "cpu":
        return value
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
