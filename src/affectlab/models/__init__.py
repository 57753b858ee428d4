"""The models: one file per paper's architecture family, all behind one registry and one output::

    from affectlab.models import create_model, list_models
    model = create_model("smm")            # SMM-EmotionNet, InceptionV3, U=17, D=16
    prediction = model(images)             # Prediction(au, expr, va, va_bins, features)

Registered names: ``mtl-baseline``, ``cnn-rnn`` (multitask.py), ``smm``, ``mss`` (smm.py),
``context``, ``context-ensemble`` (context.py), ``streaming`` (streaming.py).
Checkpoints: :func:`save_checkpoint` / :func:`load_model`; parameters and GFLOPs: :func:`model_table`.
"""
from affectlab.models import context, multitask, smm, streaming  # noqa: F401  (registers the models)
from affectlab.models.backbones import Backbone, backbone_names
from affectlab.models.base import AffectModel, Prediction
from affectlab.models.checkpoint import (
    CheckpointMeta,
    align_template,
    load_model,
    read_checkpoint_meta,
    save_checkpoint,
)
from affectlab.models.registry import create_model, get_model_class, list_models, model_options, register_model
from affectlab.models.table import count_gflops, count_params, format_model_table, model_table

__all__ = [
    "AffectModel", "Backbone", "CheckpointMeta", "Prediction", "align_template",
    "backbone_names", "count_gflops", "count_params", "create_model", "format_model_table", "get_model_class",
    "list_models", "load_model", "model_options", "model_table", "read_checkpoint_meta", "register_model",
    "save_checkpoint",
]
