"""The face-and-context ensemble (ensemble-with-context.txt, Haider et al., ABAW4).

One network (§3, Fig. 1) is trained twice: on the tight face crop and on the face with the context
around it; the ensemble averages the two (§4, Tables 1-4: the ensemble beats either alone).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Sequence

import torch
from torch import Tensor

from affectlab.errors import AffectlabError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models.base import AffectModel, PaperSettings, Prediction
from affectlab.models.heads import mlp
from affectlab.models.registry import register_model
from affectlab.models.smm import SignVehicleNet


@register_model("context")
class ContextNet(SignVehicleNet):
    """InceptionV3 features, attention, Transformer, per-AU classifiers, VA and EXPR MLPs (context §3).

    The paper builds on the previous year's winner (SMM-EmotionNet's parts I and II): InceptionV3
    gives a 768×17×17 map, an attention module per region gives each region's embedding, and a
    Transformer learns the correlations between the regions. Its outputs feed "a separate
    classifier" per AU (here SMM eq. 2, y_h = <W_h, S^(h)> + b_h), a valence/arousal predictor of
    two fully connected layers (tanh output) and an expression MLP of three fully connected layers.

    Where the paper is silent: one region per AU (U = H = n_au), D = 16, the Transformer as in
    SMM (1 layer, 8 heads, feed-forward 1024, dropout 0.1); the VA and EXPR
    heads read the mean of the Transformer outputs (``features["embedding"]``, (B, D)), with
    hidden sizes ``va_hidden`` (128) and ``expr_hidden`` (512, 128).
    """

    readout_features = {"au": "sign", "expr": "embedding", "va": "embedding"}

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA, *, backbone: str = "inception_v3", D: int = 16,
                 n_layers: int = 1, n_heads: int = 8, dim_feedforward: int = 1024, dropout: float = 0.1,
                 va_hidden: int = 128, expr_hidden: Sequence[int] = (512, 128)):
        if len(expr_hidden) != 2:
            raise AffectlabError(f"expr_hidden must give the 2 hidden sizes of the 3-layer EXPR MLP, got {expr_hidden}")
        super().__init__(schema, dict(backbone=backbone, D=D, n_layers=n_layers, n_heads=n_heads,
                                      dim_feedforward=dim_feedforward, dropout=dropout, va_hidden=va_hidden,
                                      expr_hidden=list(expr_hidden)), U=schema.n_au, H=schema.n_au)
        self.heads["va"] = mlp([D, va_hidden, 2])
        self.heads["expr"] = mlp([D, *expr_hidden, schema.n_expr])

    def forward(self, x: Tensor) -> Prediction:
        F_U, attention, S_H = self.sign_vehicles(x)
        pooled = S_H.mean(1)
        return Prediction(
            au=self.heads["au"](S_H),
            expr=self.heads["expr"](pooled),
            va=torch.tanh(self.heads["va"](pooled)),
            features={"sign": S_H, "embedding": pooled, "roi": F_U, "attention": attention},
        )


@register_model("context-ensemble")
class ContextEnsemble(AffectModel):
    """Average of a :class:`ContextNet` on the tight face crop and one on the face with context.

    Input: (B, 2, 3, H, W), view 0 the tight face crop, view 1 the crop with surrounding context,
    both resized to the same H×W (``VIEWS``). One tensor keeps the batch contract (``image``) and
    lets a dataset stack the two crops of a frame. Output: the mean of the two members' AU and EXPR
    logits (a normalised geometric mean of their probabilities) and of their VA; ``features``
    holds each member's features prefixed ``face_`` / ``context_``. Options are ContextNet's and
    apply to both members; :meth:`from_members` joins two separately trained models, as the paper does.
    """

    #: Context §3: two InceptionV3 models at 299 px.
    paper = PaperSettings({}, 299)

    def readout_parts(self, task: str) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        """Each member's readout, on its prefixed features: their outputs average like forward()'s."""
        return [(f"{view}_{feature}", fn)
                for view in self.VIEWS for feature, fn in getattr(self, view).readout_parts(task)]

    input_layout = "BVCHW"
    VIEWS: ClassVar[tuple[str, str]] = ("face", "context")
    member_class: ClassVar[type[ContextNet]] = ContextNet

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA, **options: object):
        face = self.member_class(schema, **options)
        super().__init__(schema, dict(face.config))
        self.face = face
        self.context = self.member_class(schema, **options)

    @classmethod
    def from_members(cls, face: ContextNet, context: ContextNet) -> "ContextEnsemble":
        """An ensemble holding copies of two trained ContextNets of the same configuration."""
        if face.config != context.config or face.schema != context.schema:
            raise AffectlabError("the face and context models differ in configuration or labels; cannot ensemble them")
        ensemble = cls(face.schema, **face.config)
        ensemble.face.load_state_dict(face.state_dict())
        ensemble.context.load_state_dict(context.state_dict())
        return ensemble

    def forward(self, x: Tensor) -> Prediction:
        if x.dim() != 5 or x.shape[1] != 2:
            raise AffectlabError(f"context-ensemble takes (B, 2, 3, H, W) (face, context); got {tuple(x.shape)}")
        p_face, p_context = self.face(x[:, 0]), self.context(x[:, 1])
        return Prediction(
            au=(p_face.au + p_context.au) / 2,
            expr=(p_face.expr + p_context.expr) / 2,
            va=(p_face.va + p_context.va) / 2,
            features={**{f"face_{k}": v for k, v in p_face.features.items()},
                      **{f"context_{k}": v for k, v in p_context.features.items()}},
        )
