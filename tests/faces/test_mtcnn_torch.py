"""MTCNN's PyTorch nets and the ONNX files the CPU runs: the shipped ONNX must be these nets."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from affectlab.faces import MTCNN
from affectlab.faces.mtcnn import OnnxNet
from affectlab.faces.mtcnn_torch import NET_NAMES, TorchNet, _max_pool_2x2

Media = Callable[[str], np.ndarray]


@pytest.mark.parametrize("height, width", [(6, 8), (7, 9), (1, 2), (5, 1)])
def test_pnet_pool_equals_ceil_mode_max_pool(height: int, width: int) -> None:
    """P-Net's strided-view pooling gives MaxPool2d(2, 2, ceil_mode=True)'s values exactly, odd sides too."""
    x = torch.randn(2, 10, height, width, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_max_pool_2x2(x), torch.nn.MaxPool2d(2, 2, ceil_mode=True)(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NET_NAMES)
def test_shipped_onnx_nets_are_the_pytorch_nets(name: str) -> None:
    """assets/mtcnn/*.onnx (make onnx-assets) against *.pt, at several batch and P-Net image sizes."""
    side = {"pnet": 12, "rnet": 24, "onet": 48}[name]
    shapes = [(1, 3, 37, 64), (2, 3, 120, 90), (1, 3, 12, 12)] if name == "pnet" else [(1, 3, side, side),
                                                                                       (9, 3, side, side)]
    onnx_net, torch_net = OnnxNet(name), TorchNet(name, "cpu")
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        for a, b in zip(onnx_net(x), torch_net(x), strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_detections_agree_between_onnxruntime_and_pytorch(media: Media, affectnet_sample) -> None:
    """One cascade, two backends for its nets: the same faces, boxes and landmarks within 0.05 px
    (measured: at most ~1e-3 px) on the sample photos and 40 AffectNet faces."""
    onnx_detector, torch_detector = MTCNN(), MTCNN()
    torch_detector.pnet, torch_detector.rnet, torch_detector.onet = (TorchNet(n, "cpu") for n in NET_NAMES)
    images = [media(n) for n in ("multi_face.jpg", "single_face.jpg", "0-f1-su-ph.jpg")]
    images += [image for image, _ in affectnet_sample]
    for a, b in zip(onnx_detector.detect_batch(images), torch_detector.detect_batch(images), strict=True):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
