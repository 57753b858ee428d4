"""``affectlab evaluate`` on a manifest whose answers are known, its agreement with ``affectlab score``,
and ensemble combination (mean and vote)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from affectlab.cli import main
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD
from affectlab.labels import DEFAULT_SCHEMA, LabelSchema
from affectlab.models import AffectModel, Prediction, registry, save_checkpoint
from affectlab.inference.batch import combine_outputs


class ColourOracle(AffectModel):
    """Reads its answers off the face's colour: red picks the class, green the AUs, blue the valence.
    Registered only while a test needs it (``known``), so the registry other tests see stays the same."""

    model_name = "test-colour-oracle"

    def __init__(self, schema: LabelSchema = DEFAULT_SCHEMA):
        super().__init__(schema, {})
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> Prediction:
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        rgb = ((x * std + mean) * 255).mean((2, 3))
        k = ((rgb[:, 0] - 10) / 30).round().clamp(0, 7).long()
        v = rgb[:, 2] / 255 * 2 - 1
        return Prediction(au=(rgb[:, 1:2] / 255 * 20 - 10).expand(-1, self.schema.n_au) * self.gain,
                          expr=F.one_hot(k, 8).float() * 10, va=torch.stack([v, -v], 1))


#: 8 faces: predicted class (red), AUs on (green), valence (blue); and their labels.
PRED_CLASS = [0, 1, 2, 3, 4, 4, 6, 7]
TRUE_CLASS = [0, 1, 2, 3, 4, 5, 6, 7]
AU_ON = [1, 1, 1, 0, 0, 0, 0, 0]
AU_TRUE = [1, 1, 1, 1, 0, 0, 0, 0]
BLUE = [0, 40, 80, 120, 160, 200, 240, 255]


@pytest.fixture
def known(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._MODELS, ColourOracle.model_name, ColourOracle)
    rows = []
    for i in range(8):
        Image.new("RGB", (20, 20), (10 + 30 * PRED_CLASS[i], 255 * AU_ON[i], BLUE[i])).save(tmp_path / f"f{i}.png")
        v = BLUE[i] / 255 * 2 - 1
        rows.append(f"f{i}.png," + ",".join([str(AU_TRUE[i])] * 12) + f",{TRUE_CLASS[i]},{v:.6f},{v:.6f}")
    header = "path," + ",".join(DEFAULT_SCHEMA.au_names) + ",expression,valence,arousal"
    (tmp_path / "labels.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    ckpt = save_checkpoint(ColourOracle(), tmp_path / "oracle.safetensors", input_size=16, mean=IMAGENET_MEAN,
                           std=IMAGENET_STD)
    return tmp_path, ckpt


def test_evaluate_prints_and_writes_the_known_scores(known, capsys):
    folder, ckpt = known
    code = main(["evaluate", "--model", str(ckpt), "--data", str(folder / "labels.csv"), "--workers", "0",
                 "--json", str(folder / "scores.json"), "--predictions", str(folder / "pred.csv")])
    out = capsys.readouterr().out
    assert code == 0
    scores = json.loads((folder / "scores.json").read_text())
    f1_au = 2 * 3 / (2 * 3 + 0 + 1)  # per AU: 3 true positives, 1 miss, no false alarm
    assert scores["n"] == {"au": 8, "expr": 8, "va": 8}
    assert scores["au"]["f1"]["AU1"] == pytest.approx(f1_au) and scores["au"]["accuracy"] == pytest.approx(7 / 8)
    f1_expr = {**{c: 1.0 for c in DEFAULT_SCHEMA.expr_names}, "Happiness": 2 / 3, "Sadness": 0.0}
    assert scores["expr"]["f1"] == pytest.approx(f1_expr)
    assert scores["expr"]["accuracy"] == pytest.approx(7 / 8)
    assert scores["P_EXPR"] == pytest.approx((6 + 2 / 3) / 8)
    assert scores["va"]["ccc_valence"] == pytest.approx(1.0, abs=1e-6)
    v = np.array(BLUE) / 255 * 2 - 1  # arousal: predicted -v against the label v
    ccc_a = -2 * v.var() / (2 * v.var() + (2 * v.mean()) ** 2)
    assert scores["va"]["ccc_arousal"] == pytest.approx(ccc_a, abs=1e-6)
    assert scores["P_MTL"] == pytest.approx(f1_au + (6 + 2 / 3) / 8 + (1 + ccc_a) / 2, abs=1e-6)
    assert "F1 macro 0.8333" in out and "accuracy 0.8750" in out and "CCC valence 1.0000" in out


def test_evaluate_and_score_share_one_code_path(known, capsys):
    """The predictions evaluate writes, scored by `affectlab score`, give the same JSON."""
    folder, ckpt = known
    main(["evaluate", "--model", str(ckpt), "--data", str(folder / "labels.csv"), "--workers", "0",
          "--json", str(folder / "a.json"), "--predictions", str(folder / "pred.csv")])
    evaluate_out = capsys.readouterr().out
    main(["score", str(folder / "pred.csv"), str(folder / "labels.csv"), "--json", str(folder / "b.json")])
    assert json.loads((folder / "a.json").read_text()) == json.loads((folder / "b.json").read_text())
    assert capsys.readouterr().out == evaluate_out


def test_unreadable_images_are_left_out_with_a_warning(known, capsys):
    folder, ckpt = known
    (folder / "f5.png").write_bytes(b"garbage")
    assert main(["evaluate", "--model", str(ckpt), "--data", str(folder / "labels.csv"), "--workers", "0",
                 "--json", str(folder / "s.json")]) == 0
    assert "1 unreadable image(s) left out" in capsys.readouterr().err
    scores = json.loads((folder / "s.json").read_text())
    assert scores["n"]["expr"] == 7 and scores["expr"]["accuracy"] == 1.0


def test_evaluate_errors_are_one_line(known, capsys):
    folder, _ = known
    assert main(["evaluate", "--model", str(folder / "none.safetensors"), "--data", str(folder / "labels.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.safetensors" in err


def test_mean_and_vote_ensembles():
    def out(au, expr, va):
        return {"au": np.log(np.array(au) / (1 - np.array(au))), "expr": np.log(np.array(expr)), "va": np.array(va)}

    members = [out([[0.9]], [[0.6, 0.3, 0.1]], [[0.2, 0.0]]),
               out([[0.4]], [[0.2, 0.7, 0.1]], [[0.4, 0.0]]),
               out([[0.4]], [[0.1, 0.45, 0.45]], [[0.0, 0.3]])]
    mean = combine_outputs(members, "mean")
    assert mean["au"][0, 0] == pytest.approx(1.7 / 3) and mean["expr"].argmax() == 1
    assert mean["va"][0].tolist() == pytest.approx([0.2, 0.1])
    vote = combine_outputs(members, "vote")
    assert vote["au"][0, 0] == pytest.approx(1 / 3), "one of three says present: absent"
    assert vote["expr_id"][0] == 1 and vote["expr"][0].tolist() == pytest.approx([1 / 3, 2 / 3, 0])
    tie = combine_outputs(members[:2] + [out([[0.9]], [[0.8, 0.1, 0.1]], [[0, 0]])], "vote")
    assert tie["expr_id"][0] == 0 and tie["au"][0, 0] == pytest.approx(2 / 3)
    # a real tie, one vote each for classes 0 and 1: the mean probability (0.4 against 0.5) decides
    even = combine_outputs(members[:2], "vote")
    assert even["expr"][0].tolist() == pytest.approx([0.5, 0.5, 0]) and even["expr_id"][0] == 1
