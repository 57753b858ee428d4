"""Shared-backbone multitask CNN and CNN-RNN (teacher-student paper, Experiments and Fig. 4).

The same CNN is the SMM paper's multitask baseline (§5.1: "an InceptionV3 feature extractor
followed by parallel branches of FC layers ... 768×16 -> 16×C") and the per-frame network of the
multi-database distillation paper (ResNet50 at 112 px, §3.3).
"""
from __future__ import annotations

from torch import Tensor, nn

from affectlab.errors import AffectlabError
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models.backbones import Backbone
from affectlab.models.base import AffectModel, PaperSettings, Prediction
from affectlab.models.heads import mlp, va_outputs
from affectlab.models.registry import register_model


@register_model("mtl-baseline")
class MultitaskCNN(AffectModel):
    """The multitask CNN: backbone, global average pooling, then one branch of FC layers per task.

    Teacher-student paper (Experiments, Fig. 4): "a ResNet50 model as the feature extractor. We
    stack three MLPs on the top of the final conv layer"; SMM paper §5.1: the multitask baseline
    with an InceptionV3 feature extractor and "parallel branches of FC layers". Each branch is
    C_feat×``hidden`` -> ReLU -> ``hidden``×C, C the task's output size (SMM §5.1 uses hidden = 16
    on InceptionV3's 768 channels; the ReLU is our choice, two bare FCs would collapse into one).
    With ``va_bins`` > 0 (teacher-student uses 20), the VA branch outputs bin logits ``va_bins``
    (B, 2, n_bins) and ``va`` is the expectation of the bin centres (teacher-student eq. 3);
    otherwise ``va`` is tanh of a 2-d output.
    ``features["embedding"]``: the pooled backbone features (B, C_feat).
    """

    #: Teacher-student Experiments: ResNet50, 112 px, VA as 20 bins.
    paper = PaperSettings({"backbone": "resnet50", "va_bins": 20}, 112)

    readout_features = {"au": "embedding", "expr": "embedding", "va": "embedding"}

    def readout(self, task: str, feature: Tensor) -> Tensor:
        if task == "va":
            return va_outputs(self.heads["va"](feature), self.config["va_bins"])[0]
        return self.heads[task](feature)

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA, *, backbone: str = "mobilenet_v2", hidden: int = 16,
                 va_bins: int = 0):
        super().__init__(schema, dict(backbone=backbone, hidden=hidden, va_bins=va_bins))
        self.backbone = Backbone(backbone)
        C = self.backbone.out_channels
        self.heads = nn.ModuleDict({
            "au": mlp([C, hidden, schema.n_au]),
            "expr": mlp([C, hidden, schema.n_expr]),
            "va": mlp([C, hidden, 2 * va_bins or 2]),
        })

    def forward(self, x: Tensor) -> Prediction:
        embedding = self.backbone(x).mean((-2, -1))
        va, va_bins = va_outputs(self.heads["va"](embedding), self.config["va_bins"])
        return Prediction(au=self.heads["au"](embedding), expr=self.heads["expr"](embedding), va=va, va_bins=va_bins,
                          features={"embedding": embedding})


class BiGRUHead(nn.Module):
    """One task's temporal branch: a bidirectional GRU over the frame features, then an FC per frame."""

    def __init__(self, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, out_features)

    def forward(self, frames: Tensor) -> Tensor:
        return self.fc(self.gru(frames)[0])


@register_model("cnn-rnn")
class MultitaskCNNRNN(AffectModel):
    """The multitask CNN-RNN (teacher-student Fig. 4; multi-database paper §3.3 and Fig. 2b).

    Input (B, T, 3, H, W), T frames of a clip (``seq_len``: 32 in both papers; the GRUs take any T).
    The backbone encodes each frame (global average pooling), and one bidirectional GRU per task
    ("each GRU layer corresponds to one task") reads the sequence; an FC gives each frame's
    output, so every Prediction field is (B, T, ...). The papers initialise the backbone from the
    trained CNN (:meth:`init_from_cnn`) and fix it while training the GRUs (``freeze_backbone``,
    default True: its weights get no gradient and its BatchNorm statistics stay put).
    The GRU size is not given; ``hidden`` = 128 per direction. ``va_bins`` as in :class:`MultitaskCNN`.
    ``features["embedding"]``: per-frame backbone features (B, T, C_feat).
    """

    #: Teacher-student Fig. 4 / multi-database §3.3: the ResNet50 CNN at 112 px under the GRUs, 32-frame clips.
    paper = PaperSettings({"backbone": "resnet50", "va_bins": 20, "seq_len": 32}, 112)

    input_layout = "BTCHW"

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA, *, backbone: str = "mobilenet_v2", hidden: int = 128,
                 va_bins: int = 0, freeze_backbone: bool = True, seq_len: int = 32):
        super().__init__(schema, dict(backbone=backbone, hidden=hidden, va_bins=va_bins,
                                      freeze_backbone=freeze_backbone, seq_len=seq_len))
        self.backbone = Backbone(backbone)
        self.backbone.requires_grad_(not freeze_backbone)
        C = self.backbone.out_channels
        self.heads = nn.ModuleDict({
            "au": BiGRUHead(C, hidden, schema.n_au),
            "expr": BiGRUHead(C, hidden, schema.n_expr),
            "va": BiGRUHead(C, hidden, 2 * va_bins or 2),
        })

    def train(self, mode: bool = True) -> "MultitaskCNNRNN":
        super().train(mode)
        if self.config["freeze_backbone"]:
            self.backbone.eval()
        return self

    def init_from_cnn(self, cnn: MultitaskCNN) -> None:
        """Copy the backbone of a trained multitask CNN (teacher-student: "we use the parameter of the
        best CNN model to initialize the feature extractor in CNN-RNN model")."""
        if cnn.backbone.name != self.backbone.name:
            raise AffectlabError(f"the CNN's backbone is {cnn.backbone.name!r}, this model's is {self.backbone.name!r}")
        self.backbone.load_state_dict(cnn.backbone.state_dict())

    def frame_features(self, images: Tensor) -> Tensor:
        """The backbone's pooled features of single frames (N, 3, H, W) -> (N, C): what the GRUs read.

        With a frozen backbone they can be computed once per frame and given to :meth:`forward` as
        clips of features (multi-database §3.3: "extract features from each video frame")."""
        return self.backbone(images).mean((-2, -1))

    def forward(self, x: Tensor) -> Prediction:
        """Clips of frames (B, T, 3, H, W), or clips of their :meth:`frame_features` (B, T, C)."""
        if x.dim() == 3 and x.shape[-1] == self.backbone.out_channels:
            frames = x
        elif x.dim() == 5:
            frames = self.frame_features(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        else:
            raise AffectlabError(f"cnn-rnn takes clips (B, T, 3, H, W) or clip features (B, T, "
                                 f"{self.backbone.out_channels}); got {tuple(x.shape)}")
        va, va_bins = va_outputs(self.heads["va"](frames), self.config["va_bins"])
        return Prediction(au=self.heads["au"](frames), expr=self.heads["expr"](frames), va=va, va_bins=va_bins,
                          features={"embedding": frames})
