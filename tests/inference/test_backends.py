"""affectlab.inference.backends: crops to probabilities on PyTorch and onnxruntime, chosen in one place."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from affectlab.analyze.export import export_onnx
from affectlab.inference.backends import Backend, OnnxBackend, TorchBackend, open_backend
from affectlab.data.transforms import normalise
from affectlab.errors import AffectlabError, DataError
from affectlab.models import create_model, load_model, save_checkpoint

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("mtl-baseline", backbone="mobilenet_v2")
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    save_checkpoint(model, path, input_size=64, mean=MEAN, std=STD)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """Exported (and checked against PyTorch by export_onnx itself) once for the module."""
    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "m.onnx")


def crops(n: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_torch_backend_matches_the_model(checkpoint):
    model = load_model(checkpoint)
    batch = crops(3)
    scores = TorchBackend(model)(batch)
    with torch.no_grad():
        p = model(torch.from_numpy(normalise(batch, MEAN, STD)))
    np.testing.assert_allclose(scores.au, torch.sigmoid(p.au).numpy(), atol=1e-6)
    np.testing.assert_allclose(scores.expr, torch.softmax(p.expr, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(scores.expr.sum(1), 1, atol=1e-6)
    assert scores.va.shape == (3, 2) and np.all(np.abs(scores.va) <= 1)


def test_onnx_export_agrees_with_pytorch(checkpoint, exported):
    onnx_backend = open_backend(exported)
    assert isinstance(onnx_backend, OnnxBackend) and onnx_backend.meta.input_size == 64
    batch = crops(7)  # another batch size than the export's example
    a, b = open_backend(checkpoint)(batch), onnx_backend(batch)
    for k in ("au", "expr", "va"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-5)


def test_onnx_without_affectlab_metadata_is_refused(exported, tmp_path):
    import onnx

    stripped = onnx.load(str(exported))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(tmp_path / "plain.onnx"))
    with pytest.raises(DataError, match="without affectlab metadata"):
        open_backend(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DataError, match="junk.onnx: not a loadable ONNX model"):
        open_backend(tmp_path / "junk.onnx")
    with pytest.raises(AffectlabError, match="CPU"):
        open_backend(exported, device="cuda")


def test_sequence_models_are_refused_with_a_reason(tmp_path):
    model = create_model("cnn-rnn", backbone="mobilenet_v2")
    save_checkpoint(model, tmp_path / "seq.safetensors", input_size=64, mean=MEAN, std=STD)
    with pytest.raises(AffectlabError, match="BTCHW"):
        open_backend(tmp_path / "seq.safetensors")


def test_bf16_stays_within_the_documented_tolerance_on_real_faces(media_faces):
    """bf16 autocast (``--precision bf16``) moves the default model's outputs only a little: on the sample
    faces, the mean |bf16 - fp32| over every output is within the tolerance ``--help`` and the README state."""
    import re
    from pathlib import Path

    from affectlab.cli.analyze import BF16_TOLERANCE
    from affectlab.inference.backends import DEFAULT_MODEL

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (written,) = re.findall(r"outputs within ([0-9.]+) of fp32 on average", readme)
    model = load_model(DEFAULT_MODEL)
    fp32 = TorchBackend(model)(media_faces)
    bf16 = TorchBackend(model, precision="bf16")(media_faces)
    diff = np.concatenate([np.abs(getattr(fp32, k) - getattr(bf16, k)).ravel() for k in ("au", "expr", "va")])
    assert 0 < diff.mean() <= BF16_TOLERANCE == float(written) and diff.max() < 0.2  # > 0: bf16 really ran
    assert (fp32.expr.argmax(1) == bf16.expr.argmax(1)).mean() >= 0.75


def test_unknown_precision_and_bf16_onnx_are_refused(checkpoint, exported):
    with pytest.raises(AffectlabError, match="unknown precision 'fp16'"):
        open_backend(checkpoint, precision="fp16")
    with pytest.raises(AffectlabError, match="fp32"):
        open_backend(exported, precision="bf16")


def test_shipped_onnx_graph_is_the_shipped_model(media_faces):
    """assets/default.onnx must be exported from assets/default.safetensors: after replacing the model,
    `make onnx-assets` (make default-model runs it). Same outputs as PyTorch on real faces within 1e-4."""
    from affectlab.inference.backends import DEFAULT_MODEL, bundled_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stale graph warns: fail with its message
        backend = bundled_onnx()
    assert backend is not None
    a, b = TorchBackend(load_model(DEFAULT_MODEL))(media_faces), backend(media_faces)
    for k in ("au", "expr", "va"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-4, err_msg=k)


def test_default_backend_runs_onnx_where_it_can():
    assert isinstance(open_backend(), OnnxBackend)
    assert isinstance(open_backend(precision="bf16"), TorchBackend)
    assert isinstance(open_backend(features=True), TorchBackend)  # temporal smoothing needs the features


def test_precision_reaches_the_backend_on_every_path(checkpoint):
    """Through open_backend and through the Analyzer alike: bf16 is not dropped on the way."""
    from affectlab.analyze.analyzer import Analyzer

    assert open_backend(checkpoint, precision="bf16").precision == "bf16"
    assert Analyzer(checkpoint, faces="crops", precision="bf16").backend.precision == "bf16"
    assert Analyzer(None, faces="crops", precision="bf16").backend.precision == "bf16"


def test_both_backends_keep_the_contract(checkpoint, exported):
    """One contract: meta, a call on crops, the PyTorch model or None; onnxruntime refuses features in one line."""
    torch_backend, onnx_backend = open_backend(checkpoint), open_backend(exported)
    assert isinstance(torch_backend, Backend) and isinstance(onnx_backend, Backend)
    assert torch_backend.model is not None and onnx_backend.model is None
    assert torch_backend.meta.input_size == onnx_backend.meta.input_size
    with pytest.raises(AffectlabError, match="no features"):
        onnx_backend(crops(2), ["message"])


def test_onnxruntime_error_without_a_message_is_one_line(tmp_path, monkeypatch):
    """onnxruntime may raise with an empty message; the error still names the file, in one line."""
    from affectlab import onnxrt

    def fail(path):
        raise RuntimeError()

    monkeypatch.setattr(onnxrt, "cpu_session", fail)
    with pytest.raises(DataError, match=r"m\.onnx: not a loadable ONNX model \(RuntimeError\)$"):
        OnnxBackend(tmp_path / "m.onnx")
