"""MTCNN's three networks in PyTorch: for a GPU, and the source of the ONNX files the CPU runs.

The weights are facenet-pytorch 2.6.0's (MIT, ``affectlab/assets/mtcnn/*.pt``). Their input
convention: RGB, ``(x - 127.5) / 128``, rows = y; R-Net and O-Net flatten their last feature map
width-major (the original Caffe models were trained on transposed MATLAB images).
:func:`export_onnx` writes ``assets/mtcnn/*.onnx`` (``make onnx-assets``), which
:mod:`affectlab.faces.mtcnn` runs on onnxruntime without importing torch.
"""
from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NET_NAMES = ("pnet", "rnet", "onet")
OUTPUT_NAMES = {"pnet": ("prob", "offsets"), "rnet": ("prob", "offsets"), "onet": ("prob", "offsets", "landmarks")}


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``MaxPool2d(2, 2, ceil_mode=True)`` as the max of four strided views: the same values, but
    2-5x faster than ATen's CPU kernel on P-Net's large maps (it was 8 % of the detector's time).
    Exported to ONNX as the plain pooling operator, which onnxruntime runs fast."""
    if torch.onnx.is_in_onnx_export():
        return F.max_pool2d(x, 2, 2, ceil_mode=True)
    if x.shape[2] % 2 or x.shape[3] % 2:
        x = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2), value=float("-inf"))
    even_rows = torch.maximum(x[..., ::2, ::2], x[..., ::2, 1::2])
    return torch.maximum(even_rows, torch.maximum(x[..., 1::2, ::2], x[..., 1::2, 1::2]))


class PNet(nn.Module):
    """Proposal net: a face probability and box offsets for each 12x12 window, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _max_pool_2x2(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refinement net on 24x24 crops: face probability and box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.dense4(x))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: face probability, box offsets and 5 landmarks (x0..x4, y0..y4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


_CLASSES = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def load_net(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """One of the nets with its pretrained weights (shipped inside the package: detection works offline)."""
    net = _CLASSES[name]()
    with resources.files("affectlab").joinpath(f"assets/mtcnn/{name}.pt").open("rb") as f:
        net.load_state_dict(torch.load(f, map_location="cpu", weights_only=True))
    return net.to(device).eval()


class TorchNet:
    """A net as the detector calls it: (B, 3, H, W) float32 numpy in, numpy outputs out."""

    def __init__(self, name: str, device: str | torch.device):
        self.device = torch.device(device)
        self.net = load_net(name, self.device)

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(t.cpu().numpy() for t in self.net(torch.from_numpy(x).to(self.device)))


def export_onnx(directory: str | Path) -> list[Path]:
    """Write ``<name>.onnx`` for the three nets (P-Net with any image size, all with any batch)."""
    written = []
    for name in NET_NAMES:
        side = {"pnet": 12, "rnet": 24, "onet": 48}[name]
        axes = {0: "batch", 2: "height", 3: "width"} if name == "pnet" else {0: "batch"}
        out_axes = {"prob": {0: "batch", 1: "rows", 2: "cols"}, "offsets": {0: "batch", 2: "rows", 3: "cols"}}
        dynamic = {"image": axes} | {o: out_axes[o] if name == "pnet" else {0: "batch"} for o in OUTPUT_NAMES[name]}
        out = Path(directory) / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            torch.onnx.export(load_net(name), (torch.zeros(1, 3, side, side),), str(out), dynamo=False,
                              opset_version=17, input_names=["image"], output_names=list(OUTPUT_NAMES[name]),
                              dynamic_axes=dynamic)
        written.append(out)
    return written
