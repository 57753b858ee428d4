"""The ``dlib_resnet`` backbone and tools/convert_dlib_resnet.py.

The conversion (the package's bundled file) is checked without dlib, by what the network was
trained for: on real CK+ faces framed as dlib frames them, descriptors of one person lie closer
than dlib's 0.6 and those of different people farther.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch

from affectlab.errors import DataError
from affectlab.models import Backbone
from affectlab.models.backbones import BUNDLED_WEIGHTS

REPO = Path(__file__).resolve().parents[2]
DLIB_RESNET = BUNDLED_WEIGHTS["dlib_resnet"]


def load_tool():
    spec = importlib.util.spec_from_file_location("convert_dlib_resnet", REPO / "tools" / "convert_dlib_resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_weights_name_the_file_and_the_converter(tmp_path):
    path = tmp_path / "dlib_resnet.pt"
    with pytest.raises(DataError) as e:
        Backbone("dlib_resnet").load_imagenet(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and "tools/convert_dlib_resnet.py" in message


def test_other_weights_are_refused(tmp_path):
    path = tmp_path / "mobilenet.pt"
    torch.save(Backbone("mobilenet_v2").body.state_dict(), path)
    with pytest.raises(DataError, match="does not fit backbone 'dlib_resnet'") as e:
        Backbone("dlib_resnet").load_imagenet(path)
    assert str(path) in str(e.value)


def test_reader_decodes_dlibs_integers_and_floats():
    reader = load_tool().Reader(bytes([0x02, 0x80, 0x12, 0x81, 0x11, 0x00, 0x03, 0x9A, 0x99, 0x99, 0x81, 0x18]))
    assert (reader.int(), reader.int(), reader.int()) == (4736, -17, 0)
    assert reader.float() == pytest.approx(0.6)  # dlib's distance threshold, as stored in the model file


def test_architecture_matches_dlibs_anet_type():
    """The expected layer list (from dnn_face_recognition_ex.cpp) names every weight of the backbone."""
    tool = load_tool()
    codes, layers = tool.expected_layers()
    convs = [layer for layer in layers if layer[0] == "con"]
    assert len(convs) == 29 and codes.count(2) == len(layers)
    fake = [{"kind": "con", "weight": np.zeros(1), "bias": np.zeros(1)} if layer[0] == "con" else
            {"kind": "affine", "weight": np.zeros(1), "bias": np.zeros(1)} for layer in layers
            if layer[0] in ("con", "affine")] + [{"kind": "fc", "weight": np.zeros(1)}]
    own = set(Backbone("dlib_resnet").body.state_dict())
    assert set(tool.to_state_dict(fake)) - {"fc.weight"} == own


def test_bundled_weights_load():
    state = safetensors.torch.load_file(DLIB_RESNET)
    backbone = Backbone("dlib_resnet")
    backbone.load_imagenet("bundled")
    assert torch.equal(backbone.body.conv1.weight, state["conv1.weight"]) and state["fc.weight"].shape == (128, 256)
    assert all(t.dtype == torch.float32 for t in state.values())


def test_a_converted_pt_file_still_loads(tmp_path):
    path = tmp_path / "dlib_resnet.pt"
    torch.save(safetensors.torch.load_file(DLIB_RESNET), path)
    backbone = Backbone("dlib_resnet")
    backbone.load_imagenet(path)
    assert torch.equal(backbone.body.layer5[0].conv2.weight, safetensors.torch.load_file(DLIB_RESNET)["layer5.0.conv2.weight"])


def test_a_corrupt_safetensors_file_is_one_line(tmp_path):
    path = tmp_path / "dlib_resnet.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(DataError, match="cannot read as a safetensors weights file") as e:
        Backbone("dlib_resnet").load_imagenet(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_bundled_is_refused_in_one_line_for_a_backbone_without_bundled_weights():
    from affectlab.errors import AffectlabError

    with pytest.raises(AffectlabError, match="no bundled weights") as e:
        Backbone("mobilenet_v2").load_imagenet("bundled")
    assert "\n" not in str(e.value)


def descriptors(weights: Path, faces: np.ndarray) -> np.ndarray:
    """dlib's 128-D face descriptors: the backbone's map, averaged, through the converted ``fc``."""
    from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD

    backbone = Backbone("dlib_resnet").eval()
    backbone.load_imagenet(weights)
    fc = safetensors.torch.load_file(weights)["fc.weight"]
    x = (faces / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    x = torch.from_numpy(x.transpose(0, 3, 1, 2)).float()
    with torch.no_grad():
        return torch.cat([backbone(x[i:i + 32]).mean((2, 3)) @ fc.T for i in range(0, len(x), 32)]).numpy()


def test_same_person_is_closer_than_dlibs_threshold(shared_data):
    """CK+ peak frames (one per sequence, so a "same" pair is two different expressions of one
    subject), 48 px gray crops upscaled 4x, MTCNN's 5 points aligned onto dlib's chip framing."""
    import cv2
    from PIL import Image

    from affectlab.faces import MTCNN
    from affectlab.faces.align import DLIB_150, align_face

    root = shared_data / "ckplus"
    table = pd.read_csv(root / "labels.csv")
    table = table[table["frames_from_peak"] == 0].reset_index(drop=True)
    detector, faces, found = MTCNN(), [], []
    for i, path in enumerate(table["path"]):
        gray = np.asarray(Image.open(root / path).convert("RGB"))
        image = cv2.resize(gray, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        detections = detector.detect(image)
        if len(detections):
            faces.append(align_face(image, detections.landmarks[0], DLIB_150, 150))
            found.append(i)
    assert len(found) >= 0.95 * len(table)
    subject = table["subject"].to_numpy()[found]
    embedding = descriptors(DLIB_RESNET, np.stack(faces))
    upper = np.triu_indices(len(found), 1)
    distance = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)[upper]
    same = (subject[:, None] == subject[None])[upper]
    same_d, other_d = distance[same], distance[~same]
    accuracy = ((same_d < 0.6).mean() + (other_d >= 0.6).mean()) / 2
    # measured (244 faces, 278 same / 29,368 different pairs): medians 0.44 and 0.75, balanced accuracy
    # 0.977 (TPR 0.996, TNR 0.957); all 732 frames, other sequences only: 0.975
    assert np.median(same_d) < 0.5 < 0.65 < np.median(other_d)
    assert accuracy > 0.93, f"balanced verification accuracy {accuracy:.3f} at dlib's 0.6"
