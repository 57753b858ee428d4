"""SMM-EmotionNet and its MSS ablation (smm-emotionnet-sign-and-message.txt, Deng & Shi).

AUs are *sign vehicles*: localised, one metric space per AU. EXPR and VA are *messages*: inferred
from the whole face, in one shared space. Both branches start from the same U region features.

Symbols follow the paper: U regions, H AUs, D the region dimension; f^(u)(x) region u's feature,
F^(U)(x) all of them; S^(h)(x) the h-th AU's sign-vehicle feature (eq. 1); W_h, b_h its FC (eq. 2);
A^(u) the region-u transformation into the message space (eq. 3); M̄ the consensus message.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from affectlab.errors import AffectlabError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models.backbones import Backbone
from affectlab.models.base import AffectModel, PaperSettings, Prediction
from affectlab.models.heads import AUInnerProduct, ROIAttention, RegionTransformer
from affectlab.models.registry import register_model


class SignVehicleNet(AffectModel):
    """Parts I and II of SMM-EmotionNet (§3.1), shared by SMM, MSS and the context model.

    Part I: backbone feature map -> U ROI attention maps -> F^(U)(x), (B, U, D).
    Part II: the first H region features plus positional encoding through a Transformer ->
    sign-vehicle space S^(H)(x), (B, H, D) (eq. 1); one FC per AU gives y_h^AU (eq. 2).
    Regions beyond H (U > H) reach only the message space.
    """

    #: SMM §4.2 (and the context paper, §3): InceptionV3 at 299 px, its default options.
    paper = PaperSettings({}, 299)

    def __init__(self, schema: LabelSchema, config: dict[str, Any], U: int, H: int):
        """``config``: the subclass's options, among them backbone, D and the Transformer's size."""
        D = config["D"]
        if H != schema.n_au:
            raise AffectlabError(f"H={H} sign-vehicle spaces, but the label schema has {schema.n_au} AUs; "
                                 "H must equal the number of AUs")
        if U < H:
            raise AffectlabError(f"U={U} regions is fewer than the H={H} AUs; the paper needs U >= H")
        super().__init__(schema, config)
        self.U, self.H, self.D = U, H, D
        self.backbone = Backbone(config["backbone"])
        self.roi = ROIAttention(self.backbone.out_channels, U, D)
        self.transformer = RegionTransformer(H, D, config["n_layers"], config["n_heads"], config["dim_feedforward"],
                                             config["dropout"])
        self.heads = nn.ModuleDict({"au": AUInnerProduct(H, D)})

    def sign_vehicles(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(F^(U)(x), attention maps, S^(H)(x)) for a batch of faces."""
        F_U, attention = self.roi(self.backbone(x))
        S_H = self.transformer(F_U[:, : self.H])  # eq. 1
        return F_U, attention, S_H


@register_model("smm")
class SMMEmotionNet(SignVehicleNet):
    """SMM-EmotionNet: Sign-and-Message Multi-Emotion Net (smm paper §3.1, Fig. 1, eqs. 1-3).

    - Part I: InceptionV3 up to Mixed_6e (17×17×768 at 299 px), U ROI attention maps, one ROI
      embedding f^(u)(x) ∈ R^D per region (paper: U = 17, D = 16, §4.2).
    - Part II (sign-vehicle space): S^(H)(x) = Φ(F^(H)(x) + PE) (eq. 1) and
      y_h^AU = <W_h, S^(h)(x)> + b_h (eq. 2); H = number of AUs (12).
    - Part III (message space): M^(u)(x) = A^(u) f^(u)(x) with one D×D matrix per region (eq. 3),
      the consensus M̄^(U)(x) = 1/U Σ_u M^(u)(x), then one FC to the EXPR logits
      (ŷ_c = <W_c, M̄> + b_c) and one FC to VA, through tanh into [-1, 1].

    The paper leaves the Transformer's size open; the defaults (1 layer, 8 heads, feed-forward
    1024, GELU, sinusoidal PE) follow the authors' released code, dropout 0.1 is PyTorch's
    default. The ROI modules' layers are not given either (see :class:`ROIEmbedding`). Outputs ``features``:
    ``sign`` S^(H) (B, H, D), ``message`` M̄ (B, D), ``roi`` F^(U) (B, U, D), ``attention`` (B, U, h, w).
    For the temporal smoothing of §5.2 (eq. 9), smooth ``sign``/``message`` over frames and apply
    ``heads["au"]``, ``heads["expr"]`` and ``tanh(heads["va"](...))`` to the result.
    """

    readout_features = {"au": "sign", "expr": "message", "va": "message"}

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA, *, backbone: str = "inception_v3", U: int = 17,
                 H: int | None = None, D: int = 16, n_layers: int = 1, n_heads: int = 8, dim_feedforward: int = 1024,
                 dropout: float = 0.1):
        H = schema.n_au if H is None else H
        super().__init__(schema, dict(backbone=backbone, U=U, H=H, D=D, n_layers=n_layers, n_heads=n_heads,
                                      dim_feedforward=dim_feedforward, dropout=dropout), U, H)
        self.add_message_spaces()
        self.heads["expr"] = nn.Linear(D, schema.n_expr)
        self.heads["va"] = nn.Linear(D, 2)

    @staticmethod
    def transformation(U: int, D: int) -> nn.Parameter:
        """A^(u) ∈ R^{D×D} for u = 1..U (eq. 3), initialised like U separate ``nn.Linear(D, D)``."""
        bound = 1 / D**0.5
        return nn.Parameter(torch.empty(U, D, D).uniform_(-bound, bound))

    @staticmethod
    def consensus(A: Tensor, F_U: Tensor) -> Tensor:
        """M̄^(U)(x) = 1/U Σ_u A^(u) f^(u)(x): eq. 3 for every region, then the average (Fig. 3)."""
        M_u = torch.einsum("uij,buj->bui", A, F_U)
        return M_u.mean(1)

    def add_message_spaces(self) -> None:
        self.A = self.transformation(self.U, self.D)

    def messages(self, F_U: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(message for EXPR, message for VA, named features): one shared space here."""
        M_bar = self.consensus(self.A, F_U)
        return M_bar, M_bar, {"message": M_bar}

    def forward(self, x: Tensor) -> Prediction:
        F_U, attention, S_H = self.sign_vehicles(x)
        M_expr, M_va, message_features = self.messages(F_U)
        return Prediction(
            au=self.heads["au"](S_H),  # eq. 2
            expr=self.heads["expr"](M_expr),
            va=torch.tanh(self.heads["va"](M_va)),
            features={"sign": S_H, **message_features, "roi": F_U, "attention": attention},
        )


@register_model("mss")
class MSSEmotionNet(SMMEmotionNet):
    """The message-space-separated (MSS) variant of SMM-EmotionNet (smm paper §6, Fig. 4).

    Identical to :class:`SMMEmotionNet` except that EXPR and VA get separate message spaces: two
    sets of transformation matrices A_expr^(u) and A_va^(u) (eq. 3 for each), two consensus vectors
    M̄_expr and M̄_va (``features["message_expr"]``, ``features["message_va"]``).
    """

    readout_features = {"au": "sign", "expr": "message_expr", "va": "message_va"}

    def add_message_spaces(self) -> None:
        self.A_expr = self.transformation(self.U, self.D)
        self.A_va = self.transformation(self.U, self.D)

    def messages(self, F_U: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        M_expr, M_va = self.consensus(self.A_expr, F_U), self.consensus(self.A_va, F_U)
        return M_expr, M_va, {"message_expr": M_expr, "message_va": M_va}
