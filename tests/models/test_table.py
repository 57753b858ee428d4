"""affectlab.models.table: parameter and multiply-add counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from affectlab.models import count_gflops, count_params, create_model, format_model_table, model_table
from affectlab.models import table
from affectlab.models.heads import RegionTransformer


@pytest.mark.parametrize("builder, size, expected", [("resnet50", 224, 4.1), ("inception_v3", 299, 5.7)])
def test_reference_counts_match_torchvision(builder, size, expected):
    """The published multiply-add counts of torchvision's models (4.09 and 5.71 GFLOPs)."""
    import torchvision.models

    kwargs = {"init_weights": False, "aux_logits": False} if builder == "inception_v3" else {}
    model = getattr(torchvision.models, builder)(weights=None, **kwargs)
    assert count_gflops(model, torch.zeros(1, 3, size, size)) == pytest.approx(expected, abs=0.05)


def test_counts_multiply_adds():
    assert count_gflops(nn.Linear(10, 20, bias=False), torch.zeros(1, 10)) == pytest.approx(200e-9)
    assert count_params(nn.Linear(10, 20)) == 220


def test_transformer_is_counted_in_eval_mode():
    """PyTorch's fused inference path for Transformer layers is invisible to the counter."""
    model = RegionTransformer(12, 16, 1, 8, 1024, 0.3).eval()
    assert count_gflops(model, torch.zeros(1, 12, 16)) * 1e9 >= 12 * 2 * 16 * 1024
    assert not model.training


def test_sequence_models_are_counted_per_frame():
    cnn, rnn = create_model("mtl-baseline"), create_model("cnn-rnn")
    per_image = table.model_row(cnn, 64)["gflops"]
    per_frame = table.model_row(rnn, 64)["gflops"]
    assert per_image < per_frame < 1.2 * per_image  # the same backbone plus three small GRUs


def test_model_table_rows_and_format(monkeypatch):
    from affectlab.models.base import PaperSettings
    from affectlab.models.registry import get_model_class

    for name in ("smm", "streaming"):
        monkeypatch.setattr(get_model_class(name), "paper", PaperSettings({"backbone": "mobilenet_v2"}, 64))
    rows = model_table(["smm", "streaming"])
    assert [r["name"] for r in rows] == ["smm", "streaming"]
    assert all(r["params"] > 1e6 and r["gflops"] > 0 and r["input_size"] == 64 for r in rows)
    text = format_model_table(rows)
    assert "smm" in text and "mobilenet_v2" in text and "64px" in text and "multiply-adds" in text


def test_the_stored_table_is_the_counted_one():
    """`affectlab models` reads the table stored with the package; it must be what a count gives
    (the three 112 px models are recounted here; tools/write_model_table.py rewrites it all)."""
    stored = {r["name"]: r for r in table.stored_table()}
    assert set(stored) == set(table.list_models())
    for row in model_table(["mtl-baseline", "streaming", "cnn-rnn"]):
        assert stored[row["name"]]["params"] == row["params"]
        assert stored[row["name"]]["gflops"] == pytest.approx(row["gflops"], rel=1e-9)


def test_models_command_builds_no_model(monkeypatch, capsys):
    """`affectlab models` took 16 s building and counting seven networks; it builds none now."""
    from affectlab.cli import main

    monkeypatch.setattr(table, "create_model", lambda *a, **k: pytest.fail("a model was built"))
    assert main(["models"]) == 0 and "context-ensemble" in capsys.readouterr().out
    assert table.stored_table(["nope"]) is None  # an unknown name is counted, and refused, as before
