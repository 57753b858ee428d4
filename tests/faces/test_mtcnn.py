"""MTCNN on the real sample media and on AffectNet faces with annotated landmarks."""
from __future__ import annotations

from itertools import combinations
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from affectlab.errors import AffectlabError
from affectlab.faces import MTCNN, box_iou, landmarks68_to_5
from affectlab.faces.mtcnn import nms, pyramid_scales

Media = Callable[[str], np.ndarray]  # the `media` fixture: file name -> RGB image


def assert_plausible_face(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> None:
    """Box face-sized and (nearly) inside the image; landmarks inside it, in anatomical order."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    assert -0.02 * w <= x1 < x2 <= 1.02 * w and -0.02 * h <= y1 < y2 <= 1.02 * h
    assert 0.5 < (y2 - y1) / (x2 - x1) < 2
    assert np.all((landmarks >= box[:2]) & (landmarks <= box[2:]))
    left_eye, right_eye, nose, left_mouth, right_mouth = landmarks
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_single_face(detector: MTCNN, media: Media) -> None:
    image = media("single_face.jpg")
    faces = detector.detect(image)
    assert len(faces) == 1 and faces.scores[0] > 0.9
    assert faces.boxes.shape == (1, 4) and faces.landmarks.shape == (1, 5, 2)
    assert 0.15 < (faces.boxes[0, 2] - faces.boxes[0, 0]) / image.shape[1] < 0.8
    assert_plausible_face(image, faces.boxes[0], faces.landmarks[0])


def test_multi_face_finds_the_five_people_once_each(detector: MTCNN, media: Media) -> None:
    image = media("multi_face.jpg")
    faces = detector.detect(image)
    # face centres marked by eye on the 1000x667 photo, left to right
    centres = np.array([[262, 115], [362, 295], [476, 260], [582, 370], [737, 355]])
    for cx, cy in centres:
        inside = (faces.boxes[:, 0] < cx) & (cx < faces.boxes[:, 2]) & (faces.boxes[:, 1] < cy) & (cy < faces.boxes[:, 3])
        assert inside.sum() == 1, f"face at {(cx, cy)} found {inside.sum()} times"
    assert all(box_iou(a, b)[0, 0] < 0.5 for a, b in combinations(faces.boxes, 2))
    assert np.all(np.diff(faces.scores) <= 0)
    for box, landmarks in zip(faces.boxes, faces.landmarks):
        assert_plausible_face(image, box, landmarks)


def test_no_face_in_landscape(detector: MTCNN, media: Media) -> None:
    faces = detector.detect(media("free-mountain-vector-01.jpg"))
    assert len(faces) == 0
    assert faces.boxes.shape == (0, 4) and faces.scores.shape == (0,) and faces.landmarks.shape == (0, 5, 2)


def test_gray_image_repeated_to_three_channels(detector: MTCNN, media: Media) -> None:
    gray = np.asarray(Image.fromarray(media("single_face.jpg")).convert("L"))
    faces = detector.detect(np.repeat(gray[:, :, None], 3, axis=2))
    assert len(faces) == 1 and faces.scores[0] > 0.9


def test_grayscale_photo_face_found_with_loose_thresholds(media: Media) -> None:
    """The soldier's grainy, shouting half-profile scores ~0.37, far below MTCNN's default
    cut-offs (facenet-pytorch misses it too); with loose ones the 2560x1912 gray photo yields it once."""
    image = media("BWPictureHuman.jpg")
    assert image.shape == (1912, 2560, 3)
    faces = MTCNN(thresholds=(0.3, 0.3, 0.3)).detect(image)
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    on_face = (835 < centres[:, 0]) & (centres[:, 0] < 1060) & (340 < centres[:, 1]) & (centres[:, 1] < 580)
    assert on_face.sum() == 1


def test_rgba_image_dropped_to_rgb(detector: MTCNN, media: Media) -> None:
    image = media("Image_with_alpha.png")
    faces = detector.detect(image)
    assert len(faces) == 1 and faces.scores[0] > 0.9
    assert_plausible_face(image, faces.boxes[0], faces.landmarks[0])


def test_batch_matches_single_images(detector: MTCNN, media: Media) -> None:
    images = [media(name) for name in ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg")]
    images.append(images[1][:, ::-1].copy())  # same size as images[1]: shares its P-Net passes
    for batched, image in zip(detector.detect_batch(images), images):
        single = detector.detect(image)
        assert len(batched) == len(single) == 1
        np.testing.assert_allclose(batched.boxes, single.boxes, atol=1e-2)
        np.testing.assert_allclose(batched.landmarks, single.landmarks, atol=1e-2)
    assert detector.detect_batch([]) == []


def test_mirrored_image_mirrors_the_landmarks(detector: MTCNN, media: Media) -> None:
    """Checks the image-axis convention: flipping the image swaps left and right points."""
    image = media("single_face.jpg")
    width = image.shape[1]
    original, mirrored = detector.detect(image), detector.detect(image[:, ::-1].copy())
    expected = original.landmarks[0][[1, 0, 2, 4, 3]] * [-1, 1] + [width - 1, 0]
    face_width = original.boxes[0, 2] - original.boxes[0, 0]
    assert np.linalg.norm(mirrored.landmarks[0] - expected, axis=1).max() < 0.1 * face_width


def test_affectnet_detection_and_landmarks(detector: MTCNN, affectnet_sample) -> None:
    """MTCNN's points against those derived from AffectNet's 68 (224x224 images).

    Measured on this sample: median 5.8 px, 90th percentile 13.7 px. Much of the tail is the
    annotation (68-point sets visibly shifted off the face), and MTCNN's eye points sit ~4 px
    above the eye-contour means (pupil centre vs contour centroid).
    """
    errors, found = [], 0
    for image, landmarks68 in affectnet_sample:
        faces = detector.detect(image)
        if len(faces):
            found += 1
            errors.append(np.linalg.norm(faces.landmarks[0] - landmarks68_to_5(landmarks68), axis=1))
    assert found >= 0.95 * len(affectnet_sample)
    assert np.median(errors) < 8 and np.percentile(errors, 90) < 20


def test_rejects_wrong_image_layout(detector: MTCNN) -> None:
    with pytest.raises(AffectlabError, match="HxWx3 uint8"):
        detector.detect(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(AffectlabError, match="HxWx3 uint8"):
        detector.detect(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(AffectlabError, match="factor"):
        MTCNN(factor=1.2)


def test_tiny_image_has_no_pyramid_and_no_faces(detector: MTCNN) -> None:
    assert pyramid_scales(10, 10, 20, 0.709) == []
    assert len(detector.detect(np.zeros((10, 10, 3), dtype=np.uint8))) == 0


def test_pyramid_covers_min_face_to_short_side() -> None:
    scales = pyramid_scales(360, 640, 20, 0.709)
    assert scales[0] == pytest.approx(12 / 20)
    assert 360 * scales[-1] >= 12 > 360 * scales[-1] * 0.709
    np.testing.assert_allclose(np.diff(np.log(scales)), np.log(0.709))


def test_nms_union_min_and_groups() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 6, 6], [0, 0, 10, 10]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]  # nested small box survives union overlap
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [0]
    groups = np.array([0, 0, 0, 1])  # the last box is in another image
    assert nms(boxes, scores, 0.5, groups=groups).tolist() == [0, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
