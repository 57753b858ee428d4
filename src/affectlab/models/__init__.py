"""The models: one file per paper's architecture family, all behind one registry and one output::

    from affectlab.models import create_model, list_models
    model = create_model("smm")            # SMM-EmotionNet, InceptionV3, U=17, D=16
    prediction = model(images)             # Prediction(au, expr, va, va_bins, features)

Registered names: ``mtl-baseline``, ``cnn-rnn`` (multitask.py), ``smm``, ``mss`` (smm.py),
``context``, ``context-ensemble`` (context.py), ``streaming`` (streaming.py).
Checkpoints: :func:`save_checkpoint` / :func:`load_model`; parameters and GFLOPs: :func:`model_table`.

Names are imported on first use, so that ``affectlab.models.meta`` (a checkpoint's metadata, read
without torch) can be imported without importing torch and every architecture.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AffectModel": "base", "Prediction": "base", "Backbone": "backbones", "backbone_names": "backbones",
    "CheckpointMeta": "meta", "align_template": "meta", "read_checkpoint_meta": "meta",
    "load_model": "checkpoint", "save_checkpoint": "checkpoint",
    "create_model": "registry", "get_model_class": "registry", "list_models": "registry",
    "model_options": "registry", "register_model": "registry",
    "count_gflops": "table", "count_params": "table", "format_model_table": "table", "model_table": "table",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from affectlab.models.backbones import Backbone, backbone_names
    from affectlab.models.base import AffectModel, Prediction
    from affectlab.models.checkpoint import load_model, save_checkpoint
    from affectlab.models.meta import CheckpointMeta, align_template, read_checkpoint_meta
    from affectlab.models.registry import (create_model, get_model_class, list_models, model_options,
                                           register_model)
    from affectlab.models.table import count_gflops, count_params, format_model_table, model_table


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"affectlab.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'affectlab.models' has no attribute {name!r}")
