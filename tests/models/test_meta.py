"""affectlab.models.meta: a checkpoint's header and metadata, read without torch."""
from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from affectlab.models import create_model, save_checkpoint
from affectlab.models.meta import (DEFAULT_CONTEXT, InputSpec, header_digest, read_checkpoint_meta, read_header,
                                   tensor_layout)
from affectlab.train.config import Data

DTYPES = {"F32": np.float32, "I64": np.int64}


def saved(path, **kwargs):
    torch.manual_seed(0)
    model = create_model("mtl-baseline", backbone="mobilenet_v2")
    return save_checkpoint(model, path, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3, **kwargs)


def test_tensor_layout_locates_every_tensor_in_the_file(tmp_path):
    path = saved(tmp_path / "m.safetensors")
    data, tensors = path.read_bytes(), load_file(str(path))
    layout = tensor_layout(path)
    assert set(layout) == set(tensors)
    for name, (dtype, shape, offset, length) in layout.items():
        raw = np.frombuffer(data[offset:offset + length], dtype=DTYPES[dtype]).reshape(shape)
        np.testing.assert_array_equal(raw, tensors[name].numpy())


def test_header_digest_follows_layout_and_metadata_not_weights(tmp_path):
    a = saved(tmp_path / "a.safetensors")
    torch.manual_seed(1)
    b = save_checkpoint(create_model("mtl-baseline", backbone="mobilenet_v2"), tmp_path / "b.safetensors",
                        input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
    c = saved(tmp_path / "c.safetensors", extra={"epoch": 1})
    assert a.read_bytes() != b.read_bytes() and header_digest(a) == header_digest(b)
    assert header_digest(a) != header_digest(c)
    assert read_header(a)[8:].decode().lstrip().startswith("{")
    assert read_checkpoint_meta(c).extra == {"epoch": 1}


def test_input_spec_reads_what_training_recorded(tmp_path):
    spec = InputSpec(64, margin=0.1, views=(0.0, 0.25), image_context=0.2, mean=(0.5,) * 3, std=(0.25,) * 3)
    path = saved(tmp_path / "m.safetensors", extra={"crop": spec.to_extra()})
    assert InputSpec.from_meta(read_checkpoint_meta(path)) == spec


def test_a_dlib_framed_model_records_its_template_and_the_analyzer_aligns_to_it(tmp_path):
    """``data.template: dlib``: the checkpoint carries the layout, so analyze aligns faces as training did."""
    from affectlab.analyze.analyzer import Analyzer
    from affectlab.models import align_template

    spec = InputSpec(64, template="dlib")
    path = saved(tmp_path / "m.safetensors", extra={"crop": spec.to_extra()}, align_template=align_template(64, "dlib"))
    assert InputSpec.from_meta(read_checkpoint_meta(path)).template == "dlib"
    assert np.allclose(Analyzer(path).template, align_template(64, "dlib"))
    assert InputSpec.from_meta(read_checkpoint_meta(saved(tmp_path / "old.safetensors"))).template == "arcface"


def test_input_spec_of_an_unrecorded_checkpoint_uses_training_defaults(tmp_path):
    """A checkpoint without a crop record is read with the margin training uses by default, not 0."""
    meta = read_checkpoint_meta(saved(tmp_path / "m.safetensors"))
    spec = InputSpec.from_meta(meta)
    assert (spec.size, spec.margin, spec.views, spec.mean, spec.std) == (64, Data().margin, (0.0,),
                                                                         (0.5,) * 3, (0.25,) * 3)
    assert InputSpec.from_meta(meta, n_views=2).views == (0.0, DEFAULT_CONTEXT)


def test_analyzer_frames_crops_by_the_checkpoints_spec(tmp_path):
    from affectlab.analyze.analyzer import Analyzer

    path = saved(tmp_path / "m.safetensors", extra={"crop": InputSpec(64, margin=0.12).to_extra()})
    analyzer = Analyzer(path, faces="crops")
    assert analyzer.spec == InputSpec.from_meta(read_checkpoint_meta(path)) and analyzer.spec.margin == 0.12


def test_a_crop_framing_round_trips_and_places_a_given_crops_face_on_the_template(tmp_path):
    """``data.crop_framing``: analyze --faces crops pads a tight crop out as training padded such crops."""
    import cv2

    from affectlab.analyze.analyzer import Analyzer
    from affectlab.faces.align import ARCFACE_112, scale_template

    framing = ((0.30, 0.21), (0.81, 0.20), (0.54, 0.46), (0.36, 0.69), (0.78, 0.68))  # SFEW's, roughly
    spec = InputSpec(64, margin=0.07, mean=(0.5,) * 3, std=(0.25,) * 3, crop_framing=framing)
    path = saved(tmp_path / "m.safetensors", extra={"crop": spec.to_extra()})
    assert InputSpec.from_meta(read_checkpoint_meta(path)) == spec
    image = np.zeros((90, 70, 3), np.uint8)  # a tight crop with its 5 points where the framing says
    for x, y in framing:
        cv2.circle(image, (round(x * 70), round(y * 90)), 2, (255, 255, 255), -1)
    near = lambda crop, x, y: crop[round(y) - 3:round(y) + 4, round(x) - 3:round(x) + 4].max() > 100  # noqa: E731
    on_template = scale_template(ARCFACE_112, 64)  # a similarity fit: within 3 px of each point
    framed = Analyzer(path, faces="crops")._crop(image, None)
    assert framed.shape == (64, 64, 3) and all(near(framed, x, y) for x, y in on_template)
    plain = saved(tmp_path / "plain.safetensors", extra={"crop": InputSpec(64, margin=0.07).to_extra()})
    resized = Analyzer(plain, faces="crops")._crop(image, None)  # no framing: the crop fills the input
    assert not any(near(resized, x, y) for x, y in on_template)
