"""Decoding, face framing (alignment with landmarks, resize with margin, context views) and augmentation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affectlab.data.transforms import (Augmentation, UnreadableImage, augment, center_crop, decode_rgb, frame_face,
                                       load_size, normalise, sample_params)
from affectlab.faces.align import ARCFACE_112, DLIB_150
from affectlab.models import align_template
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD


def test_decode_gives_rgb_for_gray_and_alpha_images(tmp_path):
    Image.new("L", (5, 4), 90).save(tmp_path / "g.png")
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (5, 4), (200, 10, 50)).save(tmp_path / "c.png")
    assert decode_rgb(tmp_path / "g.png").shape == (4, 5, 3)
    assert decode_rgb(tmp_path / "a.png")[0, 0].tolist() == [10, 20, 30]
    assert decode_rgb(tmp_path / "c.png")[0, 0].tolist() == [200, 10, 50], "channels in RGB order"


@pytest.mark.parametrize("content", [b"", b"not an image", None])
def test_unreadable_files_raise_one_exception_type(tmp_path, content):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UnreadableImage):
        decode_rgb(path)


def test_truncated_jpeg_is_unreadable_or_decodes(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.jpg")
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[:20])
    with pytest.raises(UnreadableImage):
        decode_rgb(tmp_path / "t.jpg")


def test_unaligned_face_is_resized_to_load_size_and_center_cropped():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[10:30, 10:30] = 255  # a square in the middle half
    face = frame_face(image, None, size=50, margin=0.1)
    assert face.shape == (60, 60, 3) and load_size(50, 0.1) == 60
    crop = center_crop(face, 50)
    assert crop.shape == (50, 50, 3)
    assert crop[25, 25].tolist() == [255] * 3 and crop[0, 0].tolist() == [0] * 3


def test_a_view_with_less_context_takes_the_centre_of_an_unaligned_crop():
    image = np.zeros((60, 60, 3), dtype=np.uint8)
    image[20:40, 20:40] = 255  # the "face": the central third
    wide = frame_face(image, None, size=60, margin=0.0, context=0.5, image_context=0.5)
    tight = frame_face(image, None, size=60, margin=0.0, context=0.0, image_context=0.5)
    assert wide[5, 5].tolist() == [0, 0, 0] and (tight[15:45, 15:45] == 255).all()


def test_landmarks_align_the_face_to_the_model_template():
    """Dots drawn at the 5 landmark points land on the checkpoint's template after the central crop."""
    size, margin = 112, 0.07
    points = np.array([[70, 80], [130, 85], [100, 120], [75, 150], [125, 152]], dtype=float)
    lnd68 = np.tile(points.mean(0), (68, 1))
    lnd68[36:42], lnd68[42:48], lnd68[30], lnd68[48], lnd68[54] = points
    image = np.zeros((220, 200, 3), dtype=np.uint8)
    for k, (x, y) in enumerate(points):
        image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2, k % 3] = 255
    crop = center_crop(frame_face(image, lnd68, size, margin), size)
    template = np.array(align_template(size))
    for k, (x, y) in enumerate(template):
        patch = crop[int(round(y)) - 3 : int(round(y)) + 4, int(round(x)) - 3 : int(round(x)) + 4, k % 3]
        assert patch.max() > 100, f"landmark {k} not at its template point"
    assert np.allclose(template, ARCFACE_112, atol=0.01), "the models' and faces' 112 px templates agree"


def test_the_dlib_template_puts_the_landmarks_where_dlibs_face_chips_have_them():
    """``template="dlib"``: dlib's 150 px chip layout (eyes at 31 % of the height), scaled to the input."""
    size = 150
    points = np.array([[70, 80], [130, 85], [100, 120], [75, 150], [125, 152]], dtype=float)
    image = np.zeros((220, 200, 3), dtype=np.uint8)
    for k, (x, y) in enumerate(points):
        image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2, k % 3] = 255
    crop = center_crop(frame_face(image, points, size, 0.07, template="dlib"), size)
    for k, (x, y) in enumerate(DLIB_150):  # a similarity fit of 5 points: within a few pixels of each
        patch = crop[int(round(y)) - 4 : int(round(y)) + 5, int(round(x)) - 4 : int(round(x)) + 5, k % 3]
        assert patch.max() > 100, f"landmark {k} not at dlib's point"
    assert np.allclose(align_template(size, "dlib"), DLIB_150, atol=0.01)
    assert align_template(112, "dlib")[0][1] < align_template(112)[0][1] - 10, "dlib's eyes sit higher"


def test_an_unknown_template_is_refused():
    with pytest.raises(ValueError, match="template must be one of arcface, dlib"):
        frame_face(np.zeros((50, 50, 3), np.uint8), np.ones((5, 2)) * 25, 32, 0.0, template="openface")


def test_more_context_shrinks_an_aligned_face():
    lnd68 = np.tile([100.0, 100.0], (68, 1))
    lnd68[36:42], lnd68[42:48], lnd68[30], lnd68[48], lnd68[54] = [80, 90], [120, 90], [100, 110], [85, 130], [115, 130]
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[80:140, 75:125] = 255  # the face
    tight = center_crop(frame_face(image, lnd68, 64, 0.0, context=0.0), 64)
    wide = center_crop(frame_face(image, lnd68, 64, 0.0, context=0.5), 64)
    ratio = (wide > 127).sum() / (tight > 127).sum()
    assert ratio == pytest.approx(1 / 4, rel=0.15), "twice the side around the face: a quarter of the area"


def test_augmentation_is_a_function_of_its_generator_seed():
    image = np.random.default_rng(1).integers(0, 255, (72, 72, 3), dtype=np.uint8)
    aug = Augmentation(grayscale=0.5, blur=0.5)
    draw = lambda seed: augment(image, sample_params(aug, 64, 72, np.random.default_rng(seed)), 64)  # noqa: E731
    assert (draw(3) == draw(3)).all()
    assert draw(3).shape == (64, 64, 3) and draw(3).dtype == np.uint8
    assert any((draw(3) != draw(s)).any() for s in range(4, 8))


def test_identity_augmentation_is_a_crop_and_flip_only():
    image = np.random.default_rng(2).integers(0, 255, (10, 10, 3), dtype=np.uint8)
    aug = Augmentation(scale=(1.0, 1.0), flip=1.0, brightness=0, contrast=0, saturation=0, hue=0, grayscale=0, blur=0)
    params = sample_params(aug, 10, 10, np.random.default_rng(0))
    assert params.crop == (0, 0, 10) and params.flip
    assert (augment(image, params, 10) == image[:, ::-1]).all()


def test_normalise_takes_one_face_or_a_batch_to_channels_first():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0] = 255
    one = normalise(image, IMAGENET_MEAN, IMAGENET_STD)
    assert one.shape == (3, 2, 3) and one.dtype == np.float32
    assert np.allclose(one[0], (1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0])
    assert np.allclose(one[1], -IMAGENET_MEAN[1] / IMAGENET_STD[1])
    batch = normalise(np.stack([image, image[::-1]]), IMAGENET_MEAN, IMAGENET_STD)
    assert batch.shape == (2, 3, 2, 3) and np.array_equal(batch[0], one) and batch.flags.c_contiguous



def test_bad_augmentation_settings_are_refused():
    with pytest.raises(ValueError, match="probability"):
        Augmentation(flip=1.5)
    with pytest.raises(ValueError, match="scale"):
        Augmentation(scale=(1.2, 0.9))
