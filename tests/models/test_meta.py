"""affectlab.models.meta: a checkpoint's header and metadata, read without torch."""
from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from affectlab.models import create_model, save_checkpoint
from affectlab.models.meta import header_digest, read_checkpoint_meta, read_header, tensor_layout

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
