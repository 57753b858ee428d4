"""dlib's face descriptor in PyTorch, and its export to ``assets/dlib/dlib_resnet.onnx``.

The network is the ``dlib_resnet`` backbone (affectlab.models.backbones) fed dlib's own input, 0-255
RGB less dlib's mean over 256, its map averaged (``avg_pool_everything``) and projected by the
converted ``fc`` (``fc_no_bias<128>``): dlib's ``anet_type`` whole. :func:`export_onnx` writes the graph
with its weights read from ``dlib_resnet.safetensors`` beside it; affectlab.faces.descriptor runs it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from torch import Tensor, nn

from affectlab.errors import AffectlabError
from affectlab.faces.descriptor import CHIP, DLIB_GRAPH, DLIB_WEIGHTS, WEIGHTS_KEY, FaceDescriptor
from affectlab.models.backbones import DLIB_MEAN_RGB, Backbone


class DescriptorNet(nn.Module):
    """(B, 3, 150, 150) float32 RGB 0-255 -> (B, 128) dlib face descriptors."""

    def __init__(self, weights: Path = DLIB_WEIGHTS):
        super().__init__()
        backbone = Backbone("dlib_resnet")
        backbone.load_imagenet(weights)
        # the trunk's layers under their own names (those of the weights file), without its ImageNet-to-dlib
        # input layer: this net takes dlib's input
        self.layers = [name for name, _ in backbone.body.named_children()][1:]
        for name in self.layers:
            self.add_module(name, getattr(backbone.body, name))
        self.fc = nn.Linear(256, 128, bias=False)
        self.fc.weight.data.copy_(safetensors.torch.load_file(str(weights))["fc.weight"])
        self.register_buffer("mean", torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / 256
        for name in self.layers:
            x = getattr(self, name)(x)
        return self.fc(x.mean((2, 3)))


def export_onnx(weights: Path = DLIB_WEIGHTS, out: Path = DLIB_GRAPH, atol: float = 1e-4) -> Path:
    """Write the descriptor graph beside ``weights``, reading every weight from there, and check it
    against PyTorch on random chips (largest difference above ``atol`` raises)."""
    import tempfile
    import warnings

    import onnx

    from affectlab.analyze.export import read_weights_from, save_graph
    from affectlab.models.meta import header_digest

    if weights.resolve().parent != out.resolve().parent:
        raise AffectlabError("the descriptor graph must lie beside its weights (they are read from there)")
    net = DescriptorNet(weights)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        path = f"{tmp}/graph.onnx"
        torch.onnx.export(net, (torch.zeros(2, 3, CHIP, CHIP),), path, dynamo=False, opset_version=17,
                          input_names=["chip"], output_names=["descriptor"],
                          dynamic_axes={"chip": {0: "batch"}, "descriptor": {0: "batch"}}, do_constant_folding=False)
        graph = onnx.load(path)
    save_graph(read_weights_from(graph, weights, ""), out, {WEIGHTS_KEY: header_digest(weights)})
    chips = np.random.default_rng(0).integers(0, 256, size=(3, CHIP, CHIP, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = net(torch.from_numpy(chips.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    worst = float(np.abs(FaceDescriptor(out, weights)(chips) - expected).max())
    if worst > atol:
        raise AffectlabError(f"{out.name} differs from PyTorch by {worst:.2e} (> {atol})")
    return out
