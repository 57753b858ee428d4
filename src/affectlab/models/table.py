"""Parameters and forward GFLOPs of every model at its paper's input size (``affectlab models``).

GFLOPs are counted from the model itself with ``torch.utils.flop_counter.FlopCounterMode`` and
reported as multiply-adds (FLOPs / 2), the convention of torchvision and fvcore: ResNet50 at
224 px is 4.1, InceptionV3 at 299 px is 5.7. Building and counting all seven models takes some 16 s
on two cores, so the table of the registered models is stored with the package
(``assets/model_table.json``, rewritten by ``python tools/write_model_table.py``) and read from there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models.base import AffectModel
from affectlab.models.registry import create_model, get_model_class, list_models

_CLIP = 2  # frames in the clip a sequence model is counted on; every part is linear in T


def count_params(model: nn.Module) -> int:
    """All parameters, trainable or frozen."""
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, x: Tensor) -> float:
    """Forward multiply-adds of ``model(x)`` in units of 10^9 (FLOPs / 2), in eval mode.

    Counted with autograd on: in inference mode PyTorch may route a Transformer layer through a
    fused kernel that the counter cannot see.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.enable_grad():
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2e9


def model_row(model: AffectModel, input_size: int) -> dict[str, Any]:
    """One table row; a sequence model's GFLOPs are per frame."""
    frames = _CLIP if model.input_layout == "BTCHW" else 1
    return {"name": model.model_name, "backbone": model.config.get("backbone", ""), "input_size": input_size,
            "params": count_params(model),
            "gflops": count_gflops(model, model.example_input(input_size, frames=_CLIP)) / frames}


def model_table(names: Iterable[str] | None = None, schema: LabelSchema = DEFAULT_SCHEMA) -> list[dict[str, Any]]:
    """Rows ``{name, backbone, input_size, params, gflops}`` for the registered models, each at its
    paper's settings (:attr:`AffectModel.paper`)."""
    rows = []
    for name in list_models() if names is None else names:
        paper = get_model_class(name).paper
        rows.append(model_row(create_model(name, schema, **paper.config), paper.input_size))
    return rows


STORED_TABLE = Path(__file__).resolve().parents[1] / "assets" / "model_table.json"


def stored_table(names: Iterable[str] | None = None) -> list[dict[str, Any]] | None:
    """:func:`model_table` rows as stored with the package, or None when a name is not stored (count it then)."""
    try:
        rows = {r["name"]: r for r in json.loads(STORED_TABLE.read_text())}
    except (OSError, ValueError):
        return None
    wanted = list_models() if names is None else list(names)
    return [rows[n] for n in wanted] if all(n in rows for n in wanted) else None


def format_model_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`model_table` rows."""
    header = f"{'model':<18} {'backbone':<14} {'input':>7} {'params (M)':>11} {'GFLOPs':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        size = f"{r['input_size']}px"
        lines.append(f"{r['name']:<18} {r['backbone']:<14} {size:>7} {r['params'] / 1e6:>11.2f} {r['gflops']:>8.2f}")
    lines.append("GFLOPs: forward multiply-adds per image (per frame for cnn-rnn), the torchvision/fvcore convention.")
    return "\n".join(lines)


def write_stored_table() -> Path:
    """Count every registered model again into ``assets/model_table.json`` (after a model changed)."""
    STORED_TABLE.write_text(json.dumps(model_table(), indent=1) + "\n")
    return STORED_TABLE
