"""affectlab.compat: torchvision imports and its nms works whether or not the compiled ops load."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import torch

from affectlab.compat import nms


def reference_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS, written independently of the code under test."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            x1, y1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            x2, y2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) <= thr:
                rest.append(j)
        order = rest
    return keep


def random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, size=(n, 2))
    wh = rng.uniform(5, 40, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32), rng.permutation(n).astype(np.float32)


def test_fallback_nms_matches_reference():
    for seed in range(5):
        boxes, scores = random_boxes(60, seed)
        for thr in (0.3, 0.5, 0.7):
            got = nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).tolist()
            assert got == reference_nms(boxes, scores, thr)


def test_fallback_nms_empty_input():
    out = nms(torch.zeros((0, 4)), torch.zeros(0), 0.5)
    assert out.dtype == torch.int64 and out.numel() == 0


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_import_affectlab_leaves_the_import_system_alone():
    """The hook is installed where torchvision is imported, not by ``import affectlab``."""
    out = run_python(
        """
        import sys
        before = list(sys.meta_path)
        import affectlab
        print(sys.meta_path == before, "torch" in sys.modules)
        from affectlab.models import create_model
        create_model("mtl-baseline", backbone="mobilenet_v2")
        print("torchvision" in sys.modules)
        """
    )
    assert out.split() == ["True", "False", "True"]


def test_import_torchvision_after_the_hook_works():
    """The real path on this machine: whatever torchvision build is installed, its import and nms work."""
    out = run_python(
        """
        import torch
        from affectlab import compat
        compat.install_torchvision_hook()
        import torchvision
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.]])
        scores = torch.tensor([0.9, 0.8, 0.7])
        assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
        assert torchvision.ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
        torchvision.models.mobilenet_v2(weights=None)
        print(compat.ensure_torchvision_ops())
        """
    )
    assert out in {"compiled", "fallback"}


def test_does_nothing_when_compiled_ops_load():
    """Where the extension loads, no operator is defined by affectlab."""
    out = run_python(
        """
        import torch
        from affectlab import compat
        compat._compiled_extension_loads = lambda package_dir: True
        print(compat.ensure_torchvision_ops(), hasattr(torch.ops.torchvision, "nms"), compat._library is None)
        """
    )
    assert out == "compiled False True"


def test_registers_fallback_ops_when_compiled_ops_fail():
    out = run_python(
        """
        import torch
        from affectlab import compat
        compat._compiled_extension_loads = lambda package_dir: False
        mode = compat.ensure_torchvision_ops()
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11.]])
        kept = torch.ops.torchvision.nms(boxes, torch.tensor([0.1, 0.9]), 0.5).tolist()
        print(mode, kept, compat.ensure_torchvision_ops())
        """
    )
    assert out == "fallback [1] fallback"


def test_direct_call_then_import_keeps_nms_usable():
    """Calling ensure_torchvision_ops() first must not lose the post-import patch of torchvision.ops."""
    out = run_python(
        """
        import affectlab, torch
        from affectlab import compat
        compat.install_torchvision_hook()
        mode = compat.ensure_torchvision_ops()
        import torchvision
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11.]])
        print(mode == compat.ensure_torchvision_ops(), torchvision.ops.nms(boxes, torch.tensor([0.1, 0.9]), 0.5).tolist())
        """
    )
    assert out == "True [1]"
