"""affectlab.onnxrt: the onnxruntime sessions affectlab runs."""
from __future__ import annotations

from importlib import resources

import numpy as np

from affectlab.onnxrt import cpu_session


def test_cpu_session_from_bytes_and_from_a_path_give_the_same_outputs():
    path = resources.files("affectlab").joinpath("assets/mtcnn/rnet.onnx")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 24, 24)).astype(np.float32)
    a = cpu_session(path.read_bytes()).run(None, {"image": x})
    b = cpu_session(str(path)).run(None, {"image": x})
    assert [o.shape for o in a] == [(3,), (3, 4)]
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert cpu_session(str(path)).get_providers() == ["CPUExecutionProvider"]
