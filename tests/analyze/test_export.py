"""affectlab.analyze.export: the bundled graph that reads its weights from the checkpoint beside it."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from affectlab.inference import backends
from affectlab.analyze.export import export_bundled_graph
from affectlab.inference.backends import OnnxBackend, TorchBackend, open_backend
from affectlab.errors import AffectlabError
from affectlab.models import create_model, load_model, read_checkpoint_meta, save_checkpoint

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def save(path, seed: int, **kwargs):
    torch.manual_seed(seed)
    return save_checkpoint(create_model("mtl-baseline", backbone="mobilenet_v2"), path, input_size=64, mean=MEAN,
                           std=STD, **kwargs)


def crops(n: int = 5) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A checkpoint and its exported graph, installed as the bundled model."""
    model, graph = save(tmp_path / "default.safetensors", 0), tmp_path / "default.onnx"
    export_bundled_graph(model, graph)
    monkeypatch.setattr(backends, "DEFAULT_MODEL", model)
    monkeypatch.setattr(backends, "DEFAULT_GRAPH", graph)
    return model, graph


def test_the_graph_holds_no_weights_and_runs_them_from_the_checkpoint(bundle):
    model, graph = bundle
    assert graph.stat().st_size < 0.1 * model.stat().st_size
    backend = open_backend()
    assert isinstance(backend, OnnxBackend)
    a, b = TorchBackend(load_model(model))(crops()), backend(crops())
    for k in ("au", "expr", "va"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-4)


def test_new_weights_in_the_same_layout_are_what_the_graph_runs(bundle, tmp_path):
    """Retrained weights, same architecture and metadata: the same header, so the graph stays right."""
    model, _ = bundle
    save(tmp_path / "other.safetensors", 1)
    shutil.copy(tmp_path / "other.safetensors", model)
    a, b = TorchBackend(load_model(model))(crops()), open_backend()(crops())
    np.testing.assert_allclose(a.expr, b.expr, atol=1e-4)


def test_a_graph_from_another_checkpoint_is_never_run(bundle, tmp_path):
    model, _ = bundle
    save(tmp_path / "other.safetensors", 1, extra={"epoch": 3})  # another header: other offsets, other metadata
    shutil.copy(tmp_path / "other.safetensors", model)
    with pytest.warns(UserWarning, match="exported from another default.safetensors.*make onnx-assets"):
        backend = open_backend()
    assert isinstance(backend, TorchBackend) and backend.meta == read_checkpoint_meta(model)


def test_a_missing_graph_falls_back_to_pytorch(bundle):
    bundle[1].unlink()
    with pytest.warns(UserWarning, match="default.onnx is missing"):
        assert isinstance(open_backend(), TorchBackend)


def test_the_graph_must_lie_beside_its_checkpoint(tmp_path):
    model = save(tmp_path / "m.safetensors", 0)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(AffectlabError, match="beside its checkpoint"):
        export_bundled_graph(model, tmp_path / "elsewhere" / "m.onnx")
