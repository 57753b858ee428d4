"""torchvision on machines where its compiled operators cannot load.

Some torchvision wheels are built for CUDA while the installed torch is a CPU build (or the two
come from mismatched releases). Then torchvision's ``_C`` extension fails to load, and
``import torchvision`` itself dies in ``torchvision._meta_registrations`` with
"operator torchvision::nms does not exist". Timm, lightning and torchmetrics import torchvision
too, so they die with it.

:func:`ensure_torchvision_ops` runs before torchvision is first imported. If the compiled
extension loads, it does nothing. If it cannot load, it defines the operators affectlab needs
(``torchvision::nms`` and its quantised twin ``qnms``) with pure-PyTorch kernels, so that
``import torchvision`` succeeds, the models build, and ``torchvision.ops.nms`` /
``batched_nms`` work. Other compiled operators (roi_align, deform_conv2d, ...) stay unavailable
and fail with torchvision's own message.

:func:`install_torchvision_hook` arranges for this to run at the first ``import torchvision``
anywhere in the process, without importing torch any earlier. affectlab installs it only where it
imports torchvision itself (:func:`import_torchvision`: the backbones, ImageNet weights, timm), so
``import affectlab`` changes nothing in the process. Where torchvision's own operators load, the
hook is a no-op. A program that imports torchvision (or timm, lightning, torchmetrics) on such a
machine calls ``affectlab.compat.install_torchvision_hook()`` first.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Literal

Mode = Literal["compiled", "fallback", "absent"]
_mode: Mode | None = None
_library = None  # keeps the fallback torch.library.Library alive


def nms(boxes, scores, iou_threshold: float):
    """Greedy non-maximum suppression in plain PyTorch, same contract as ``torchvision.ops.nms``.

    Boxes are ``(x1, y1, x2, y2)``; returns int64 indices of the kept boxes by decreasing score.
    """
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()
    order = torch.argsort(scores.float(), descending=True, stable=True)
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=torch.finfo(torch.float32).tiny)
    suppress = (iou > iou_threshold).cpu()
    n = b.shape[0]
    removed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= suppress[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


def _compiled_extension_loads(package_dir: Path) -> bool:
    """Try to load torchvision's ``_C`` extension the way torchvision itself does."""
    import torch

    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = package_dir / f"_C{suffix}"
        if candidate.exists():
            try:
                torch.ops.load_library(str(candidate))
                return True
            except (ImportError, OSError):
                return False
    return False


def _define_fallback_ops() -> None:
    import torch

    global _library
    _library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _library.impl(op, nms, "CompositeExplicitAutograd")


def ensure_torchvision_ops() -> Mode:
    """Make ``import torchvision`` work; returns which operators are in use (idempotent)."""
    global _mode
    if _mode is not None:
        return _mode
    spec = importlib.machinery.PathFinder.find_spec("torchvision")  # plain sys.path lookup: imports nothing
    if spec is None or not spec.submodule_search_locations:
        _mode = "absent"
        return _mode
    import torch

    if hasattr(torch.ops.torchvision, "nms") or _compiled_extension_loads(Path(spec.submodule_search_locations[0])):
        _mode = "compiled"
        return _mode
    _define_fallback_ops()
    _mode = "fallback"
    return _mode


def _allow_fallback_nms() -> None:
    """torchvision.ops.boxes refuses every op when ``_C`` failed to load; nms and batched_nms now exist."""
    import torchvision.ops.boxes

    torchvision.ops.boxes._assert_has_ops = lambda: None


class _PatchAfterExec(importlib.abc.Loader):
    """Wraps torchvision's own loader so the nms guard is lifted right after the package runs."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _allow_fallback_nms()


class _TorchvisionHook(importlib.abc.MetaPathFinder):
    """Runs :func:`ensure_torchvision_ops` just before the first ``import torchvision``."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)
        mode = ensure_torchvision_ops()
        spec = importlib.util.find_spec(fullname)
        if mode == "fallback" and spec is not None and spec.loader is not None:
            spec.loader = _PatchAfterExec(spec.loader)
        return spec


def install_torchvision_hook() -> None:
    """Arrange for :func:`ensure_torchvision_ops` to run before torchvision is imported."""
    if "torchvision" in sys.modules:
        return  # already imported: it either worked or the user's process has failed already
    if not any(isinstance(f, _TorchvisionHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionHook())


def import_torchvision():
    """``torchvision``, imported after the hook is in place (a no-op where its compiled ops load)."""
    install_torchvision_hook()
    import torchvision

    return torchvision
