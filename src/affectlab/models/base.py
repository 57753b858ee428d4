"""What every model returns (:class:`Prediction`) and what every model is (:class:`AffectModel`).

One output contract for all architectures lets the losses, metrics, trainer and analyzer stay
ignorant of which paper built the model (DESIGN.md, "Prediction").
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from os import PathLike
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from affectlab.labels import LabelSchema
from affectlab.models.backbones import Backbone
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from affectlab.models.meta import CheckpointMeta


@dataclass
class Prediction:
    """Model output. Image models give (B, ...) tensors; sequence models (B, T, ...), one per frame.

    - ``au``: AU logits (B, n_au); ``sigmoid`` gives occurrence probabilities.
    - ``expr``: expression logits (B, n_expr), ABAW order.
    - ``va``: valence and arousal in [-1, 1] (B, 2).
    - ``va_bins``: VA bin logits (B, 2, n_bins) for models trained on discretised VA
      (teacher-student eq. 3), else None.
    - ``features``: named intermediate tensors for analysis and plots, e.g. ``sign`` (B, H, D)
      and ``message`` (B, D) of SMM-EmotionNet, or ``embedding`` (B, C) of a pooled backbone.
    """

    au: Tensor
    expr: Tensor
    va: Tensor
    va_bins: Tensor | None = None
    features: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperSettings:
    """How a model's paper ran it, as data (timm's default configs): the options, the input size and
    the normalisation its backbone was pretrained with. ``affectlab models`` counts each model so;
    recipes may change size and options, while the normalisation goes with the weights."""

    config: dict[str, Any] = field(default_factory=dict)
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class AffectModel(nn.Module):
    """Base of every registered model: it knows its label schema and the config that built it.

    ``create_model(type(model).model_name, model.schema, **model.config)`` rebuilds the same
    architecture, which is how checkpoints stay self-contained. ``config`` holds only
    JSON-ready values (numbers, strings, booleans, lists).
    """

    model_name: ClassVar[str] = ""  # set by @register_model
    #: What forward() takes: "BCHW" faces, "BTCHW" clips of T frames, "BVCHW" two views (face, context).
    input_layout: ClassVar[str] = "BCHW"
    checkpoint_meta: CheckpointMeta | None = None  # set by load_model
    #: Per task, the ``Prediction.features`` entry that the task's last layers read: what SMM eq. 9
    #: smooths over a video (inference.smoothing). Empty where no per-frame feature is read out (cnn-rnn).
    readout_features: ClassVar[dict[str, str]] = {}
    #: The paper's settings of this model.
    paper: ClassVar[PaperSettings] = PaperSettings()

    def __init__(self, schema: LabelSchema, config: dict[str, Any]):
        super().__init__()
        self.schema = schema
        self.config = config

    def load_backbone_weights(self, path: str | PathLike[str]) -> None:
        """Initialise every backbone of this model from a local ImageNet weights file."""
        for module in self.modules():
            if isinstance(module, Backbone):
                module.load_imagenet(path)

    def readout(self, task: str, feature: Tensor) -> Tensor:
        """``task``'s output from its (smoothed) feature, as forward() computes it: AU or EXPR logits,
        or VA in [-1, 1] (tanh)."""
        out = self.heads[task](feature)
        return torch.tanh(out) if task == "va" else out

    def readout_parts(self, task: str) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        """(feature name, readout) pairs whose outputs average to ``task``'s output; [] where there is none."""
        feature = self.readout_features.get(task)
        return [] if feature is None else [(feature, partial(self.readout, task))]

    def example_input(self, input_size: int, batch: int = 1, frames: int = 2) -> Tensor:
        """A zero input of the right layout; ``frames`` is the clip length of sequence models."""
        shape = {"BCHW": (batch, 3, input_size, input_size),
                 "BVCHW": (batch, 2, 3, input_size, input_size),
                 "BTCHW": (batch, frames, 3, input_size, input_size)}[self.input_layout]
        return torch.zeros(shape)
