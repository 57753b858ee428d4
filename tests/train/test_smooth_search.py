"""``affectlab calibrate smoothing``: μ of SMM eq. 9 per task by grid search with cross-validation over videos,
stored in the checkpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from affectlab.inference.smoothing import checkpoint_mu
from affectlab.cli import main
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models import AffectModel, Prediction, create_model, load_model, registry, save_checkpoint


class NoisyValence(AffectModel):
    """Valence read off a frame's blue channel; its ``message`` feature is that reading (registered per test)."""

    model_name = "test-noisy-valence"
    readout_features = {"va": "message"}

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA):
        super().__init__(schema, {})
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> Prediction:
        blue = (x[:, 2] * IMAGENET_STD[2] + IMAGENET_MEAN[2]).mean((1, 2))
        v = (blue * 2 - 1)[:, None] * self.gain
        n = len(x)
        return Prediction(au=torch.zeros(n, self.schema.n_au), expr=torch.zeros(n, 8), va=v.expand(-1, 2),
                          features={"message": v})

    def readout(self, task: str, feature: torch.Tensor) -> torch.Tensor:
        return feature.expand(-1, 2)


@pytest.fixture
def noisy_videos(tmp_path, monkeypatch):
    """4 videos of steady valence, seen through frame-to-frame noise: smoothing can only help."""
    monkeypatch.setitem(registry._MODELS, NoisyValence.model_name, NoisyValence)
    rng = np.random.default_rng(0)
    rows = []
    for i, level in enumerate([-0.6, -0.1, 0.3, 0.7]):
        for frame in range(1, 31):
            seen = np.clip(level + rng.normal(0, 0.3), -1, 1)
            name = f"v{i}_{frame}.png"
            Image.new("RGB", (8, 8), (0, 0, int(round((seen + 1) / 2 * 255)))).save(tmp_path / name)
            rows.append(f"{name},v{i},{frame},{level},{level}")
    (tmp_path / "frames.csv").write_text("path,video,frame,valence,arousal\n" + "\n".join(rows) + "\n")
    ckpt = save_checkpoint(NoisyValence(), tmp_path / "m.safetensors", input_size=8, mean=IMAGENET_MEAN,
                           std=IMAGENET_STD, extra={"note": "kept"})
    return tmp_path, ckpt


def test_search_prefers_smoothing_noisy_frames_and_stores_mu(noisy_videos, capsys):
    folder, ckpt = noisy_videos
    code = main(["calibrate", "smoothing", "--model", str(ckpt), "--data", str(folder / "frames.csv"), "--mu", "0,4,9",
                 "--workers", "0", "--write", "--json", str(folder / "s.json")])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads((folder / "s.json").read_text())["va"]
    assert result["scores"]["0.0"] < result["scores"]["4.0"] < result["scores"]["9.0"] and result["mu"] == 9
    assert [f["fold"] for f in result["folds"]] == [0, 1, 2] and all(f["mu"] == 9 for f in result["folds"])
    assert "chosen" in out and "VA CCC cross-validation" in out
    model = load_model(ckpt)
    assert checkpoint_mu(model) == {"va": 9.0} and model.checkpoint_meta.extra["note"] == "kept"


def test_output_writes_a_copy_and_leaves_the_original(noisy_videos, capsys):
    folder, ckpt = noisy_videos
    assert main(["calibrate", "smoothing", "--model", str(ckpt), "--data", str(folder / "frames.csv"), "--mu", "0,1",
                 "--workers", "0", "--output", str(folder / "smoothed.safetensors")]) == 0
    assert checkpoint_mu(load_model(folder / "smoothed.safetensors")) == {"va": 1.0}
    assert checkpoint_mu(load_model(ckpt)) == {}


def test_abaw_videos_with_a_real_model(world, tmp_path, capsys):
    model = create_model("smm", backbone="mobilenet_v2")
    ckpt = save_checkpoint(model, tmp_path / "smm.safetensors", input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    code = main(["calibrate", "smoothing", "--model", str(ckpt), "--data", str(world.abaw), "--images", str(world.frames),
                 "--split", "train", "--mu", "0,3", "--workers", "0", "--write"])
    assert code == 0, capsys.readouterr().err
    assert set(checkpoint_mu(load_model(ckpt))) == {"au", "expr", "va"}


def test_stills_cannot_be_smoothed(world, tmp_path, capsys):
    ckpt = save_checkpoint(create_model("smm", backbone="mobilenet_v2"), tmp_path / "smm.safetensors", input_size=32,
                           mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert main(["calibrate", "smoothing", "--model", str(ckpt), "--data", str(world.labelled)]) == 2
    err = capsys.readouterr().err
    assert "holds no video frames" in err and err.count("\n") == 1
