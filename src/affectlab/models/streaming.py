"""The prior-aided streaming network (prior-aided-streaming-network.txt, Zhang et al., ABAW2, §3).

A prior model gives a 512-d expression embedding Emb (§3.2); three feature extractors and two
translation modules then run the tasks in the order AU -> EXPR -> VA (§3.3, Fig. 1).
"""
from __future__ import annotations

from os import PathLike

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectlab.errors import AffectlabError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models.backbones import Backbone
from affectlab.models.base import AffectModel, PaperSettings, Prediction
from affectlab.models.heads import mlp
from affectlab.models.registry import register_model


#: The prior models (§3.2): an expression embedding minus a face-recognition network's identity
#: embedding (dlib's CC0 ResNet, fixed), DLN's deviation module (minus a fixed copy of the expression
#: network's start), or none (Table 3, "w/o prior").
PRIORS: tuple[str, ...] = ("face-recognition", "deviation", "none")
#: The face-recognition network of ``prior="face-recognition"``, its weights bundled with the package,
#: and the input size it was trained at.
IDENTITY_NETWORK, IDENTITY_SIZE = "dlib_resnet", 150


def _fc(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU(inplace=True))


@register_model("streaming")
class StreamingNet(AffectModel):
    """Prior-aided streaming network (streaming paper §3.2-3.3, Fig. 1).

    - Prior model (§3.2): an image -> Emb ∈ R^512, an identity-invariant expression embedding.
      ``prior="deviation"`` (default) follows the deviation module of DLN [13]: the features of a
      trainable face network minus those of a fixed copy of its starting point (DLN subtracts the
      identity vector of a pre-trained face model), projected to 512: only what training moved away
      from the starting point, the expression, is left. The DLN weights and FECNet triplets are not
      public; the prior stage of configs/streaming.yaml trains this module with a triplet loss on
      the expression labels available (:func:`affectlab.losses.triplet_loss`), and it stays
      trainable afterwards, as in the paper. ``prior="face-recognition"``, closer to DLN, subtracts a
      fixed face-recognition network's identity embedding (dlib's CC0 ResNet, bundled; its 256
      pooled features projected to 512 by a trained linear map, as the two networks differ) from
      the expression embedding. ``prior="none"`` is the paper's "w/o prior" ablation
      (Table 3): one backbone, pooled and projected to 512.
    - Feature extractors (§3.3): Emb -> AU features in R^{n_au×16}, EXPR features in R^64 and
      VA features in R^64.
    - AU predictor: an MLP on the AU features gives S = {s_1..s_12}, the AU logits (eqs. 1-3 train it).
    - AU→EXPR module: translates the AU features to 64-d; concatenated with the EXPR features
      (128-d) it feeds the EXPR predictor (eq. 4).
    - {AU, EXPR}→VA module: translates the AU and EXPR features jointly to 64-d; concatenated with
      the VA features (128-d) it feeds the VA predictor, whose output goes through tanh (eqs. 5-6).

    ``stream=False`` is Table 3's "w/o streaming": no translation modules, each predictor reads its
    own task's features (64-d).
    The paper gives the feature sizes only; each extractor and translation module here is one FC
    layer with ReLU and each predictor an MLP with one hidden layer of ``hidden`` (64) units.
    ``features``: ``emb`` (B, 512), ``au_features`` (B, n_au, 16), ``expr_features`` and
    ``va_features`` (B, 128), the predictors' inputs.
    """

    #: Streaming §3.2-3.3 on a ResNet50 at 112 px (the paper cropped 224 px; its prior is not public).
    paper = PaperSettings({"backbone": "resnet50"}, 112)

    readout_features = {"au": "au_features", "expr": "expr_features", "va": "va_features"}

    def readout(self, task: str, feature: Tensor) -> Tensor:
        return super().readout(task, feature.flatten(-2) if task == "au" else feature)

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA, *, backbone: str = "mobilenet_v2", emb_dim: int = 512,
                 au_dim: int = 16, expr_dim: int = 64, va_dim: int = 64, hidden: int = 64, prior: str = "deviation",
                 stream: bool = True):
        if prior not in PRIORS:
            raise AffectlabError(f"unknown prior {prior!r}; expected {' or '.join(PRIORS)}")
        config = dict(backbone=backbone, emb_dim=emb_dim, au_dim=au_dim, expr_dim=expr_dim, va_dim=va_dim,
                      hidden=hidden, prior=prior)
        super().__init__(schema, config if stream else {**config, "stream": False})  # old checkpoints: no key
        n_au_features = schema.n_au * au_dim
        self.backbone = Backbone(backbone)
        if prior == "deviation":  # the fixed starting point whose features are subtracted: both branches
            self.identity_backbone = Backbone(backbone).requires_grad_(False)  # start equal (and load
            self.identity_backbone.load_state_dict(self.backbone.state_dict())  # the same ImageNet file)
        if prior == "face-recognition":  # a fixed face-recognition network: its identity embedding
            self.identity_backbone = Backbone(IDENTITY_NETWORK)
            self.identity_backbone.load_imagenet("bundled")
            self.identity_backbone.requires_grad_(False)
            self.identity_projection = nn.Linear(self.identity_backbone.out_channels, emb_dim)
        self.prior_projection = nn.Linear(self.backbone.out_channels, emb_dim)
        self.au_extractor = _fc(emb_dim, n_au_features)
        self.expr_extractor = _fc(emb_dim, expr_dim)
        self.va_extractor = _fc(emb_dim, va_dim)
        if stream:
            self.au_to_expr = _fc(n_au_features, expr_dim)
            self.au_expr_to_va = _fc(n_au_features + expr_dim, va_dim)
        joined = 2 if stream else 1
        self.heads = nn.ModuleDict({
            "au": mlp([n_au_features, hidden, schema.n_au]),
            "expr": mlp([joined * expr_dim, hidden, schema.n_expr]),
            "va": mlp([joined * va_dim, hidden, 2]),
        })

    def train(self, mode: bool = True) -> "StreamingNet":
        super().train(mode)
        if self.config["prior"] != "none":
            self.identity_backbone.eval()
        return self

    def load_backbone_weights(self, path: str | PathLike[str]) -> None:
        """The expression backbone's start (and, for ``deviation``, its fixed copy's); the face-recognition
        network keeps its own weights."""
        self.backbone.load_imagenet(path)
        if self.config["prior"] == "deviation":
            self.identity_backbone.load_imagenet(path)

    def prior_embedding(self, x: Tensor) -> Tensor:
        """Emb of §3.2: the expression embedding minus the identity embedding, both in ``emb_dim``: the
        fixed face-recognition network's (at its 150 px), or the fixed copy's (``deviation``, before
        projecting); without a prior, the face features projected."""
        face = self.backbone(x).mean((-2, -1))
        prior = self.config["prior"]
        if prior == "deviation":
            with torch.no_grad():
                identity = self.identity_backbone(x).mean((-2, -1))
            return self.prior_projection(face - identity)
        if prior == "face-recognition":
            with torch.no_grad():
                faces = F.interpolate(x, size=(IDENTITY_SIZE, IDENTITY_SIZE), mode="bilinear", align_corners=False)
                identity = self.identity_backbone(faces).mean((-2, -1))
            return self.prior_projection(face) - self.identity_projection(identity)
        return self.prior_projection(face)

    def forward(self, x: Tensor) -> Prediction:
        Emb = self.prior_embedding(x)
        F_au = self.au_extractor(Emb)
        F_expr = self.expr_extractor(Emb)
        F_va = self.va_extractor(Emb)
        if self.config.get("stream", True):
            expr_in = torch.cat([self.au_to_expr(F_au), F_expr], dim=-1)  # AU→EXPR
            va_in = torch.cat([self.au_expr_to_va(torch.cat([F_au, F_expr], dim=-1)), F_va], dim=-1)  # {AU, EXPR}→VA
        else:  # Table 3, "w/o streaming": each task from its own features
            expr_in, va_in = F_expr, F_va
        return Prediction(
            au=self.heads["au"](F_au),
            expr=self.heads["expr"](expr_in),
            va=torch.tanh(self.heads["va"](va_in)),
            features={"emb": Emb, "au_features": F_au.unflatten(-1, (self.schema.n_au, -1)),
                      "expr_features": expr_in, "va_features": va_in},
        )
