"""From aligned face crops to probabilities, on PyTorch or onnxruntime.

A backend holds a model and its :class:`~affectlab.models.checkpoint.CheckpointMeta` (input size,
normalisation, alignment template, label schema) and turns a batch of crops (N, S, S, 3) uint8 RGB
into AU and expression probabilities and VA. ``export_onnx`` writes a model with its metadata inside
the ONNX file, so ``--model model.onnx`` runs alone on onnxruntime, checked to agree with PyTorch.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from affectlab.devices import resolve_device
from affectlab.errors import AffectlabError, DataError
from affectlab.models import load_model
from affectlab.models.base import AffectModel
from affectlab.models.checkpoint import CheckpointMeta, read_checkpoint_meta

_ONNX_META_KEY = "affectlab"
OUTPUTS = ("au", "expr", "va")


@dataclass(frozen=True)
class Scores:
    """Per-face outputs: AU probabilities (N, n_au), expression probabilities (N, n_expr), VA (N, 2),
    and, when asked for, the model's named features (for temporal smoothing)."""

    au: np.ndarray
    expr: np.ndarray
    va: np.ndarray
    features: dict[str, np.ndarray] | None = None


def to_input(crops: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 crops (N, S, S, 3) RGB -> float32 (N, 3, S, S), scaled to [0, 1] then normalised."""
    x = crops.astype(np.float32) * (1 / 255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def probabilities(au_logits: np.ndarray, expr_logits: np.ndarray, va: np.ndarray,
                  features: dict[str, np.ndarray] | None = None) -> Scores:
    """Scores from logits: sigmoid for AUs, softmax for expressions, VA clipped to [-1, 1]."""
    expr = np.exp(expr_logits - expr_logits.max(axis=1, keepdims=True))
    return Scores(au=1 / (1 + np.exp(-au_logits)), expr=expr / expr.sum(axis=1, keepdims=True),
                  va=np.clip(va, -1, 1), features=features)


class _Outputs(torch.nn.Module):
    """The model as a tensor-in, tuple-out function, for tracing and export."""

    def __init__(self, model: AffectModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.model(x)
        return p.au, p.expr, p.va


PRECISIONS = ("fp32", "bf16")


class TorchBackend:
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
        self.meta: CheckpointMeta = model.checkpoint_meta
        self.device = torch.device(resolve_device(device))
        self.precision = precision
        # channels_last: ~30 % more faces/s for the convolutional backbones on CPU, and the GPU's preferred layout
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray, features: Sequence[str] = ()) -> Scores:
        """Scores of a batch of crops, with the named ``features`` of the model's Prediction if asked."""
        x = torch.from_numpy(to_input(crops, self.meta.mean, self.meta.std)).to(self.device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            p = self.model(x)
        kept = {name: p.features[name].float().cpu().numpy() for name in features}
        return probabilities(p.au.float().cpu().numpy(), p.expr.float().cpu().numpy(), p.va.float().cpu().numpy(),
                             kept or None)


class OnnxBackend:
    """An exported model on onnxruntime's CPU provider."""

    def __init__(self, path: str | os.PathLike[str]):
        import onnxruntime as ort

        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable models
            raise DataError(path, f"not a loadable ONNX model ({str(e).splitlines()[0]})") from None
        document = self.session.get_modelmeta().custom_metadata_map.get(_ONNX_META_KEY)
        if document is None:
            raise DataError(path, "an ONNX model without affectlab metadata (export it with `affectlab export`)")
        self.meta = CheckpointMeta.from_dict(json.loads(document))

    def __call__(self, crops: np.ndarray) -> Scores:
        au, expr, va = self.session.run(list(OUTPUTS), {"image": to_input(crops, self.meta.mean, self.meta.std)})
        return probabilities(au, expr, va)


#: The bundled default model, trained by ``configs/default.yaml`` (see docs/model-card.md).
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "default.safetensors"


def default_backend(device: str = "cpu", precision: str = "fp32") -> TorchBackend:
    """The bundled default model (MobileNetV2 at 112 px, trained on real faces: docs/model-card.md)."""
    if not DEFAULT_MODEL.is_file():
        raise AffectlabError(f"the bundled default model is missing from this installation ({DEFAULT_MODEL}); "
                             "reinstall affectlab, or pass --model CHECKPOINT")
    return TorchBackend(load_model(DEFAULT_MODEL), device, precision)


def load_backend(path: str | os.PathLike[str], device: str = "cpu",
                 precision: str = "fp32") -> TorchBackend | OnnxBackend:
    """``.onnx`` files run on onnxruntime (CPU, fp32); checkpoints on PyTorch, ``device`` and ``precision``."""
    if Path(path).suffix.lower() == ".onnx":
        if device != "cpu":
            raise AffectlabError("ONNX models run on the CPU here; use the .safetensors checkpoint with --device")
        if precision != "fp32":
            raise AffectlabError("ONNX models run in fp32; use the .safetensors checkpoint with --precision bf16")
        return OnnxBackend(path)
    return TorchBackend(load_model(path), device, precision)


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, check: bool = True,
                atol: float = 1e-4) -> Path:
    """Export a checkpoint to ONNX (batch dimension dynamic) with its metadata embedded.

    With ``check``, runs both on the same random batch and raises if any probability or VA value
    differs by more than ``atol``."""
    import onnx

    meta = read_checkpoint_meta(checkpoint)
    model = load_model(checkpoint)
    backend = TorchBackend(model)
    size = meta.input_size
    example = torch.zeros(2, 3, size, size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(_Outputs(model).eval(), (example,), str(partial), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=list(OUTPUTS),
                          dynamic_axes={name: {0: "batch"} for name in ("image", *OUTPUTS)})
    exported = onnx.load(str(partial))
    entry = exported.metadata_props.add()
    entry.key, entry.value = _ONNX_META_KEY, meta.to_json()
    onnx.save(exported, str(partial))
    os.replace(partial, out)
    if check:
        crops = np.random.default_rng(0).integers(0, 256, size=(4, size, size, 3), dtype=np.uint8)
        a, b = backend(crops), OnnxBackend(out)(crops)
        worst = max(float(np.abs(getattr(a, k) - getattr(b, k)).max()) for k in ("au", "expr", "va"))
        if worst > atol:
            raise AffectlabError(f"ONNX export of {checkpoint} differs from PyTorch by {worst:.2e} (> {atol})")
    return out
