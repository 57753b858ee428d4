"""From aligned face crops to probabilities, on onnxruntime or PyTorch: one path for results.

A :class:`Backend` is a small explicit contract: it holds a model's
:class:`~affectlab.models.meta.CheckpointMeta` (input size, normalisation, alignment template, label
schema) and turns a batch of crops (N, S, S, 3) uint8 RGB into :class:`FaceOutputs`. Both backends
share :func:`affectlab.data.transforms.normalise` and :func:`~affectlab.inference.outputs.probabilities`,
so they differ only in the network's arithmetic (within 1e-4). :func:`open_backend` is the one place
that chooses between them. The bundled model runs on onnxruntime on the CPU, which imports in a
fraction of torch's time: its graph (``assets/default.onnx``, written by ``make onnx-assets``) reads
the weights from ``assets/default.safetensors`` itself, and is refused if it was exported from another
checkpoint. PyTorch runs checkpoints, GPUs, bf16 and temporal smoothing; torch is imported only then.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from affectlab.data.transforms import normalise
from affectlab.errors import AffectlabError, DataError, first_line
from affectlab.inference.outputs import FaceOutputs, probabilities
from affectlab.models.meta import VA_CALIBRATION, CheckpointMeta, header_digest, read_checkpoint_meta

if TYPE_CHECKING:
    from affectlab.models.base import AffectModel

ONNX_META_KEY = "affectlab"
ONNX_WEIGHTS_KEY = "affectlab_weights"  # the bundled graph: digest of the checkpoint header its weights come from
OUTPUTS = ("au", "expr", "va")


class Backend:
    """What runs a model on face crops (like httpx's ``BaseTransport``: a base to subclass, not a test).

    ``meta`` says how the model wants its faces and what it predicts; calling the backend on a batch
    of crops gives their :class:`FaceOutputs`, with the model's named ``features`` where asked for.
    ``model`` is the PyTorch model behind it, for what works on its layers (temporal smoothing), or
    None where the backend cannot give features (onnxruntime)."""

    meta: CheckpointMeta
    model: AffectModel | None = None

    def __call__(self, crops: np.ndarray, features: Sequence[str] = ()) -> FaceOutputs:
        raise NotImplementedError


PRECISIONS = ("fp32", "bf16")


class TorchBackend(Backend):
    """A checkpointed model on a torch device (``cpu``, ``cuda``, ``cuda:1``).

    ``precision="bf16"`` runs the forward pass under bf16 autocast: about twice the faces/s on GPUs
    and on CPUs with AVX512-BF16 or AMX (bench/models.py). The outputs move a little: on 300 AffectNet
    faces with the default model, mean |difference| 0.0052, 99th percentile 0.05, the same expression
    for 97.7 % of faces; so fp32 stays the default."""

    def __init__(self, model: AffectModel, device: str = "cpu", precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise AffectlabError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
        if model.input_layout != "BCHW":
            raise AffectlabError(f"model {model.model_name!r} takes {model.input_layout} input; analyze runs "
                                 "single-face image models (BCHW)")
        if model.checkpoint_meta is None:
            raise AffectlabError("the model carries no checkpoint metadata; load it with affectlab.load_model")
        import torch

        from affectlab.devices import resolve_device

        self.meta: CheckpointMeta = model.checkpoint_meta
        self.device = torch.device(resolve_device(device))
        self.precision = precision
        # channels_last: ~30 % more faces/s for the convolutional backbones on CPU, and the GPU's preferred layout
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()

    def __call__(self, crops: np.ndarray, features: Sequence[str] = ()) -> FaceOutputs:
        """FaceOutputs of a batch of crops, with the named ``features`` of the model's Prediction if asked."""
        import torch

        x = torch.from_numpy(normalise(crops, self.meta.mean, self.meta.std)).to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            p = self.model(x)
        kept = {name: p.features[name].float().cpu().numpy() for name in features}
        return probabilities(p.au.float().cpu().numpy(), p.expr.float().cpu().numpy(), p.va.float().cpu().numpy(),
                             kept or None, self.meta.extra.get(VA_CALIBRATION))


class OnnxBackend(Backend):
    """An exported model on onnxruntime's CPU provider; ``meta`` for a graph that carries none (the bundled one)."""

    def __init__(self, path: str | os.PathLike[str], meta: CheckpointMeta | None = None):
        from affectlab.onnxrt import cpu_session

        try:
            self.session = cpu_session(path)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable models
            raise DataError(path, f"not a loadable ONNX model ({first_line(e)})") from None
        stored = self.session.get_modelmeta().custom_metadata_map
        #: For the bundled graph: the digest of the checkpoint header its weights were laid out by.
        self.weights_digest = stored.get(ONNX_WEIGHTS_KEY)
        if meta is None and ONNX_META_KEY not in stored:
            raise DataError(path, "an ONNX model without affectlab metadata (export it with `affectlab export`)")
        self.meta = meta or CheckpointMeta.from_dict(json.loads(stored[ONNX_META_KEY]))

    def __call__(self, crops: np.ndarray, features: Sequence[str] = ()) -> FaceOutputs:
        if features:
            raise AffectlabError("an exported .onnx model gives no features; give the PyTorch checkpoint")
        au, expr, va = self.session.run(list(OUTPUTS), {"image": normalise(crops, self.meta.mean, self.meta.std)})
        return probabilities(au, expr, va, va_calibration=self.meta.extra.get(VA_CALIBRATION))


#: The bundled default model, trained by ``configs/default.yaml`` (see docs/model-card.md), and its ONNX graph.
ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_MODEL = ASSETS / "default.safetensors"
DEFAULT_GRAPH = ASSETS / "default.onnx"


def checkpoint_path(name: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """A ``--model`` value as a path: ``default`` names the bundled model, anything else is a path."""
    return DEFAULT_MODEL if os.fspath(name) == "default" else name


def open_backend(model: str | os.PathLike[str] | None = None, device: str = "cpu", precision: str = "fp32", *,
                 features: bool = False) -> Backend:
    """The one place a backend is chosen: ``model`` a checkpoint (PyTorch, ``device`` and ``precision``),
    an ``.onnx`` file (onnxruntime: CPU, fp32), or None for the bundled default model (MobileNetV2 at
    112 px, trained on real faces: docs/model-card.md).

    The bundled model runs on onnxruntime where it can (CPU, fp32, no ``features`` for temporal
    smoothing): no torch import, so a one-image run starts in a fraction of the time."""
    if model is None:
        if not DEFAULT_MODEL.is_file():
            raise AffectlabError(f"the bundled default model is missing from this installation ({DEFAULT_MODEL}); "
                                 "reinstall affectlab, or pass --model CHECKPOINT")
        if device == "cpu" and precision == "fp32" and not features:
            backend = bundled_onnx()
            if backend is not None:
                return backend
        model = DEFAULT_MODEL
    elif Path(model).suffix.lower() == ".onnx":
        if device != "cpu":
            raise AffectlabError("ONNX models run on the CPU here; use the .safetensors checkpoint with --device")
        if precision != "fp32":
            raise AffectlabError("ONNX models run in fp32; use the .safetensors checkpoint with --precision bf16")
        return OnnxBackend(model)
    from affectlab.models.checkpoint import load_model

    return TorchBackend(load_model(model), device, precision)


def bundled_onnx() -> OnnxBackend | None:
    """The bundled model on onnxruntime, or None (with a warning) where its graph is missing or was
    exported from another ``default.safetensors``: a stale graph must never run in its place."""
    reason = "is missing"
    if DEFAULT_GRAPH.is_file():
        try:
            backend = OnnxBackend(DEFAULT_GRAPH, meta=read_checkpoint_meta(DEFAULT_MODEL))
            if backend.weights_digest == header_digest(DEFAULT_MODEL):
                return backend
            reason = "was exported from another default.safetensors"
        except DataError:
            reason = "does not load with default.safetensors"
    warnings.warn(f"the bundled ONNX graph {DEFAULT_GRAPH.name} {reason}; running the default model on PyTorch "
                  "(slower to start). `make onnx-assets` re-exports it.", stacklevel=3)
    return None
