"""Models to ONNX for onnxruntime, checked to agree with PyTorch.

``export_onnx`` writes a self-contained file (``affectlab export``, ``--model m.onnx``) with the
checkpoint's metadata inside. ``export_bundled_graph`` writes the bundled model's graph alone, its
weights read by onnxruntime from the checkpoint file beside it (ONNX external data pointing into
the safetensors file), so the package ships the weights once; ``make onnx-assets`` runs it.
Both export the same graph: parameters untouched (no constant folding, batch norm kept), which
onnxruntime fuses itself when it loads the model.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from affectlab.inference.backends import ONNX_META_KEY, ONNX_WEIGHTS_KEY, OUTPUTS, OnnxBackend, TorchBackend
from affectlab.errors import AffectlabError
from affectlab.jsonfile import check_writable, write_atomic
from affectlab.models.base import AffectModel
from affectlab.models.checkpoint import load_model
from affectlab.models.meta import header_digest, read_checkpoint_meta, tensor_layout

_ONNX_TYPES = {"F32": onnx.TensorProto.FLOAT, "F16": onnx.TensorProto.FLOAT16, "BF16": onnx.TensorProto.BFLOAT16,
               "I64": onnx.TensorProto.INT64, "I32": onnx.TensorProto.INT32}


class _Outputs(torch.nn.Module):
    """The model as a tensor-in, tuple-out function, for tracing and export."""

    def __init__(self, model: AffectModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.model(x)
        return p.au, p.expr, p.va


def _graph(model: AffectModel, size: int) -> onnx.ModelProto:
    """The traced graph (batch dimension dynamic) whose initializers are the model's own tensors, named
    ``model.<state_dict key>``."""
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        path = os.path.join(tmp, "graph.onnx")
        torch.onnx.export(_Outputs(model).eval(), (torch.zeros(2, 3, size, size),), path, dynamo=False,
                          opset_version=17, input_names=["image"], output_names=list(OUTPUTS),
                          dynamic_axes={name: {0: "batch"} for name in ("image", *OUTPUTS)},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
        return onnx.load(path)


def save_graph(graph: onnx.ModelProto, out: Path, metadata: dict[str, str]) -> None:
    """Write ``graph`` atomically, ``metadata`` (string pairs) in its metadata_props."""
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    write_atomic(out, lambda partial: onnx.save(graph, str(partial)))


def check_agreement(checkpoint: str | os.PathLike[str], exported: OnnxBackend, atol: float = 1e-4) -> float:
    """The largest difference of any probability or VA value between PyTorch and ``exported`` on a
    random batch; raises AffectlabError above ``atol``."""
    size = exported.meta.input_size
    crops = np.random.default_rng(0).integers(0, 256, size=(4, size, size, 3), dtype=np.uint8)
    a, b = TorchBackend(load_model(checkpoint))(crops), exported(crops)
    worst = max(float(np.abs(getattr(a, k) - getattr(b, k)).max()) for k in OUTPUTS)
    if worst > atol:
        raise AffectlabError(f"ONNX export of {checkpoint} differs from PyTorch by {worst:.2e} (> {atol})")
    return worst


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, check: bool = True,
                atol: float = 1e-4) -> Path:
    """Export a checkpoint to one self-contained ONNX file with its metadata embedded.

    With ``check``, raises if any probability or VA value differs from PyTorch by more than ``atol``."""
    out = check_writable(out)  # before the model loads and exports: a wrong --out costs no wait
    meta = read_checkpoint_meta(checkpoint)
    save_graph(_graph(load_model(checkpoint), meta.input_size), out, {ONNX_META_KEY: meta.to_json()})
    if check:
        check_agreement(checkpoint, OnnxBackend(out), atol)
    return out


def read_weights_from(graph: onnx.ModelProto, weights: Path, prefix: str) -> onnx.ModelProto:
    """``graph`` with each initializer named ``prefix + <tensor of weights>`` turned into ONNX external data:
    the safetensors file's name, the tensor's byte offset and length there (safetensors stores raw
    little-endian tensors), so a graph saved beside the file ships no weights of its own."""
    layout = tensor_layout(weights)
    for tensor in graph.graph.initializer:
        name = tensor.name.removeprefix(prefix)
        if name not in layout:
            continue  # a constant the exporter made: stays inside the graph
        dtype, shape, offset, length = layout[name]
        if _ONNX_TYPES.get(dtype) != tensor.data_type or list(shape) != list(tensor.dims):
            raise AffectlabError(f"{name}: the graph's tensor does not match the checkpoint's ({dtype} {shape})")
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", weights.name), ("offset", str(offset)), ("length", str(length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    return graph


def export_bundled_graph(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], atol: float = 1e-4) -> Path:
    """The checkpoint's graph at ``out`` (in the checkpoint's folder), reading every weight from the checkpoint.

    Each initializer becomes ONNX external data: the checkpoint's file name, the tensor's byte offset
    and length there (a safetensors file stores raw little-endian tensors). The graph records the
    digest of the checkpoint's header, so a graph left over from another checkpoint is detected
    (``affectlab.inference.backends.bundled_onnx``). Checked against PyTorch like ``export_onnx``."""
    checkpoint, out = Path(checkpoint), Path(out)
    if checkpoint.resolve().parent != out.resolve().parent:
        raise AffectlabError("the bundled graph must lie beside its checkpoint (its weights are read from there)")
    meta = read_checkpoint_meta(checkpoint)
    graph = read_weights_from(_graph(load_model(checkpoint), meta.input_size), checkpoint, "model.")
    save_graph(graph, out, {ONNX_WEIGHTS_KEY: header_digest(checkpoint)})
    check_agreement(checkpoint, OnnxBackend(out, meta=meta), atol)
    return out
