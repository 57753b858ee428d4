"""The MediaPipe face mesh and iris model on onnxruntime (affectlab.faces.mesh), on real faces."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from affectlab.data.sampling import assign_folds

from affectlab.analyze.media import read_image
from affectlab.faces import landmarks68_to_5
from affectlab.faces.mesh import N_MESH, face_meshes, ibug_map, irises

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"


@pytest.fixture(scope="module")
def single_face(detector):
    image = read_image(MEDIA / "single_face.jpg")
    found = detector.detect(image)
    assert len(found) >= 1
    return image, found.boxes[0], found.landmarks[0]


def test_ibug_map_is_affine_and_tame():
    """Each iBUG point is an affine combination of mesh vertices (weights sum to 1: it moves with the
    face under any similarity), with no weight large enough to amplify the mesh's noise."""
    vertices, weights = ibug_map()
    assert vertices.shape == weights.shape == (68, 16) and vertices.min() >= 0 and vertices.max() < N_MESH
    assert np.allclose(weights.sum(axis=1), 1.0) and np.abs(weights).max() < 3.0


def test_mesh_lies_on_the_face(single_face):
    image, box, five = single_face
    (mesh,) = face_meshes(image, [box], [five[:2]])
    assert mesh.points.shape == (N_MESH, 3) and mesh.presence > 0.9
    pts = mesh.ibug68
    iod = np.linalg.norm(five[0] - five[1])
    # the mesh's eye centres, nose tip and mouth corners agree with MTCNN's five points
    assert np.linalg.norm(landmarks68_to_5(pts) - five, axis=1).max() < 0.2 * iod
    x1, y1, x2, y2 = box
    pad = 0.25 * (x2 - x1)
    assert (pts[:, 0] > x1 - pad).all() and (pts[:, 0] < x2 + pad).all()
    assert (pts[:, 1] > y1 - pad).all() and (pts[:, 1] < y2 + pad).all()


def test_mesh_turns_with_the_image(single_face):
    """Rotating the image by 30 degrees about the face moves the points by the same rotation."""
    image, box, five = single_face
    (mesh,) = face_meshes(image, [box], [five[:2]])
    centre = tuple(float(v) for v in mesh.points[:, :2].mean(axis=0))
    m = cv2.getRotationMatrix2D(centre, 30, 1.0)
    turned = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]))
    moved_box_centre = m[:, :2] @ np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) + m[:, 2]
    half = (box[2] - box[0]) / 2
    moved_box = np.r_[moved_box_centre - half, moved_box_centre + half]
    moved_eyes = five[:2] @ m[:, :2].T + m[:, 2]
    (again,) = face_meshes(turned, [moved_box], [moved_eyes])
    expected = mesh.ibug68 @ m[:, :2].T + m[:, 2]
    iod = np.linalg.norm(five[0] - five[1])
    assert np.linalg.norm(again.ibug68 - expected, axis=1).mean() < 0.05 * iod


def test_bad_boxes_do_not_crash(single_face):
    """A face cut by the image edge and a tiny face still give finite points (the crop is padded black)."""
    image, box, five = single_face
    x1, y1, x2, y2 = (int(v) for v in box)
    cut = np.ascontiguousarray(image[:, (x1 + x2) // 2:])
    shift = np.array([(x1 + x2) // 2, 0])
    (half,) = face_meshes(cut, [np.r_[box[:2] - shift, box[2:] - shift]], [five[:2] - shift])
    assert np.isfinite(half.points).all()
    tiny = cv2.resize(image, None, fx=0.05, fy=0.05, interpolation=cv2.INTER_AREA)
    (small,) = face_meshes(tiny, [box * 0.05], [five[:2] * 0.05])
    assert np.isfinite(small.points).all()
    assert face_meshes(image, []) == []


def test_irises_lie_between_the_eye_corners(single_face):
    image, box, five = single_face
    meshes = face_meshes(image, [box], [five[:2]])
    (eyes,) = irises(image, meshes)
    pts = meshes[0].points
    for k, (a, b) in enumerate(((33, 133), (362, 263))):
        p, q = pts[a, :2], pts[b, :2]
        width = np.linalg.norm(q - p)
        assert np.linalg.norm(eyes.centers[k] - (p + q) / 2) < 0.35 * width
    assert np.isfinite(eyes.contours).all() and eyes.iris.shape == (2, 5, 3)


def test_landmarks_near_affectnet_annotations(shared_data, detector):
    """Median NME (outer-eye-corner normalised) on 40 AffectNet faces of the fold the iBUG map was not
    fitted on (the default recipe's validation fold): 0.058 median on the whole fold (bench/landmarks.py)."""
    labels = pd.read_csv(shared_data / "affectnet" / "labels.csv")
    labels = labels[assign_folds(labels["path"], 5) == 4].iloc[:40]  # the recipe's {by: path, folds: 5, keep: [4]}
    truth = labels[[f"lnd_{a}{i}" for i in range(68) for a in "xy"]].to_numpy(np.float64).reshape(-1, 68, 2)
    errors = []
    for path, t in zip(labels["path"], truth):
        image = read_image(shared_data / "affectnet" / path)
        found = detector.detect(image)
        if not len(found):
            continue
        k = found.nearest(landmarks68_to_5(t))
        (mesh,) = face_meshes(image, [found.boxes[k]], [found.landmarks[k][:2]])
        errors.append(np.linalg.norm(mesh.ibug68 - t, axis=1).mean() / np.linalg.norm(t[36] - t[45]))
    assert len(errors) >= 35
    assert np.median(errors) < 0.07


def test_mesh_imports_neither_torch_nor_tensorflow():
    code = ("import sys, numpy as np\n"
            "from affectlab.faces.mesh import face_meshes, irises\n"
            "img = np.zeros((200, 200, 3), np.uint8)\n"
            "m = face_meshes(img, [np.array([50, 50, 150, 150.])])\n"
            "irises(img, m)\n"
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _with_prelu(model_bytes: bytes) -> bytes:
    """The shipped graph with each ``a x + (1 - a) relu(x)`` written back as the PRelu it stands for (as the
    TFLite model has it): the reference the shipped form must match."""
    import onnx
    from onnx import helper

    model = onnx.load_from_string(model_bytes)
    nodes, by_output = [], {n.output[0]: n for n in model.graph.node}
    for node in model.graph.node:
        if node.op_type == "Add" and node.input[0].endswith("_ax") and node.input[1].endswith("_rest"):
            mul = by_output[node.input[0]]
            nodes.append(helper.make_node("PRelu", [mul.input[0], mul.input[1]], list(node.output)))
        elif not (node.output[0].endswith(("_relu", "_ax", "_rest"))):
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


@pytest.mark.parametrize("name, size", [("face_landmark", 192), ("iris_landmark", 64)])
def test_prelu_rewrite_changes_outputs_only_by_float_rounding(single_face, name, size):
    """The models' PReLUs run as Relu, Mul and Add (twice as fast on onnxruntime); on real crops of a
    face the outputs stay within float rounding of PRelu's."""
    from importlib import resources

    from affectlab.faces.mesh import crop, roi_from_box
    from affectlab.onnxrt import cpu_session

    image, box, five = single_face
    shipped = resources.files("affectlab").joinpath(f"assets/mediapipe/{name}.onnx").read_bytes()
    assert b"PRelu" not in shipped
    roi = roi_from_box(box, five[:2])
    crops = np.stack([crop(image, roi, size), crop(image, roi, size, flip=True)]).transpose(0, 3, 1, 2)
    ours = cpu_session(shipped).run(None, {"image": np.ascontiguousarray(crops)})
    reference = cpu_session(_with_prelu(shipped)).run(None, {"image": np.ascontiguousarray(crops)})
    for a, b in zip(ours, reference):
        assert np.abs(a - b).max() < 1e-3 * max(1.0, np.abs(b).max() / 100)


def test_faces_of_many_images_in_one_batch_are_those_of_each_image(single_face):
    """Faces of several frames go through the models together: the same points as one image at a time."""
    from affectlab.faces.geometry import face_geometry

    image, box, five = single_face
    shifted = np.ascontiguousarray(np.roll(image, (7, -5), axis=(0, 1)))
    moved_box, moved_eyes = box + np.array([-5, 7, -5, 7]), five[:2] + np.array([-5, 7])
    together = face_geometry([image, shifted], [box, moved_box], [five[:2], moved_eyes])
    alone = face_geometry(image, [box], [five[:2]]) + face_geometry(shifted, [moved_box], [moved_eyes])
    assert together[0].keys() == alone[0].keys()
    for a, b in zip(together, alone):
        assert np.allclose(list(a.values()), list(b.values()), rtol=0, atol=1e-6, equal_nan=True)
