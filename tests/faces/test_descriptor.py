"""dlib's face descriptor on onnxruntime (affectlab.faces.descriptor), its graph against PyTorch, and the
rule that decides which faces are described, on real faces of the sample media."""
from __future__ import annotations

import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from reid_clips import MEDIA, face_photo, video_person

from affectlab.analyze.media import read_image
from affectlab.errors import AffectlabError
from affectlab.faces.descriptor import (
    DLIB_GRAPH,
    DLIB_WEIGHTS,
    MIN_EYE_DISTANCE,
    MIN_SHARPNESS,
    SAME_PERSON,
    FaceDescriptor,
    chips,
    describable,
    eye_distance,
    sharpness,
)


@pytest.fixture(scope="module")
def describe() -> FaceDescriptor:
    return FaceDescriptor()


@pytest.fixture(scope="module")
def photos(detector) -> dict[str, np.ndarray]:
    """Face photos: A twice (two moments of single_face.mp4), B (the other sample video), C (multi_face.jpg)."""
    a = video_person(detector, "single_face.mp4", [0, 60])
    b = video_person(detector, "WolfgangLanger_Pexels.mp4", [0])
    return {"A0": a[0], "A1": a[1], "B": b[0], "C": face_photo(detector, read_image(MEDIA / "multi_face.jpg"), 1)}


def landmarks_of(detector, image: np.ndarray) -> np.ndarray:
    found = detector.detect(image)
    assert len(found) == 1
    return found.landmarks


def test_graph_agrees_with_pytorch_on_real_faces(detector, photos, describe):
    """assets/dlib/dlib_resnet.onnx (make onnx-assets) against the converted network in PyTorch, and the
    PyTorch descriptor net against the backbone run as tests/models/test_dlib_resnet.py runs it."""
    import torch

    from affectlab.faces.descriptor_torch import DescriptorNet
    from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD
    from affectlab.models.backbones import Backbone

    faces = np.concatenate([chips(p, landmarks_of(detector, p)) for p in photos.values()])
    with torch.no_grad():
        torch_out = DescriptorNet()(torch.from_numpy(faces.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
        backbone = Backbone("dlib_resnet").eval()
        backbone.load_imagenet("bundled")
        x = torch.from_numpy(((faces / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)).float()
        fc = torch.from_numpy(np.asarray(DescriptorNet().fc.weight.detach()))
        trunk_out = (backbone(x).mean((2, 3)) @ fc.T).numpy()
    np.testing.assert_allclose(describe(faces), torch_out, atol=1e-4)
    np.testing.assert_allclose(torch_out, trunk_out, atol=1e-4)


def test_one_person_lies_within_dlibs_threshold_and_others_beyond(detector, photos, describe):
    d = {k: describe.describe(p, landmarks_of(detector, p))[0][0] for k, p in photos.items()}
    distance = lambda a, b: float(np.linalg.norm(d[a] - d[b]))  # noqa: E731
    assert distance("A0", "A1") < SAME_PERSON  # measured 0.32
    assert min(distance(a, b) for a, b in [("A0", "B"), ("A1", "B"), ("A0", "C"), ("B", "C")]) > SAME_PERSON  # >= 0.74


def test_small_and_blurred_faces_are_not_described(detector, photos, describe):
    photo = photos["A0"]
    five = landmarks_of(detector, photo)
    sharp = chips(photo, five)
    assert describable(five, sharp).all() and eye_distance(five)[0] >= MIN_EYE_DISTANCE
    blurred = cv2.GaussianBlur(photo, (0, 0), 3)
    blurred_five = landmarks_of(detector, blurred)
    assert sharpness(chips(blurred, blurred_five))[0] < MIN_SHARPNESS
    descriptors, ok = describe.describe(blurred, blurred_five)
    assert not ok.any() and np.isnan(descriptors).all()
    small = five * 0.5  # the same face at half its size
    assert not describable(small, sharp).any()


def test_a_graph_exported_from_other_weights_is_refused(tmp_path):
    import safetensors.torch

    weights = tmp_path / DLIB_WEIGHTS.name
    tensors = safetensors.torch.load_file(DLIB_WEIGHTS)
    safetensors.torch.save_file(tensors, str(weights), metadata={"note": "another conversion"})
    shutil.copy(DLIB_GRAPH, tmp_path / DLIB_GRAPH.name)
    with pytest.raises(AffectlabError, match="(exported from another|does not load with the) dlib_resnet.safetensors") as e:
        FaceDescriptor(tmp_path / DLIB_GRAPH.name, weights)(np.zeros((1, 150, 150, 3), np.uint8))
    assert "\n" not in str(e.value)


def test_descriptors_run_without_torch():
    code = ("import sys, numpy as np; from affectlab.faces.descriptor import FaceDescriptor; "
            "d = FaceDescriptor()(np.zeros((2, 150, 150, 3), np.uint8)); assert d.shape == (2, 128); "
            "assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
