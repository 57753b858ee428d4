"""``affectlab compare``: its numbers are those of ``score --json`` / ``evaluate --json``, and the Table 4
ablation recipe trains SMM and MSS the same way."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from affectlab.cli import main
from affectlab.errors import DataError
from affectlab.interpret.compare import Run, comparison_json, comparison_rows, format_comparison, read_scores, run_names
from affectlab.train import load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def by_metric(table: dict) -> dict[tuple[str, str], list]:
    return {(r["section"], r["metric"]): r["values"] for r in table["rows"]}


def test_run_names_are_short_and_distinct():
    assert run_names(["runs/smm/eval.json", "runs/mss/eval.json"]) == ["smm/eval", "mss/eval"]
    assert run_names(["a/smm.json", "b/mss.safetensors"]) == ["smm", "mss"]
    assert run_names(["r/smm.json", "r/smm.safetensors"]) == ["smm.json", "smm.safetensors"]


def test_read_scores_refuses_other_json(tmp_path):
    (tmp_path / "x.json").write_text('{"runs": []}')
    with pytest.raises(DataError, match="not an evaluation JSON"):
        read_scores(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(DataError, match="not a JSON file"):
        read_scores(tmp_path / "y.json")


def test_rows_follow_the_scores_and_star_a_unique_best():
    a = {"n": {"au": 10, "va": 5}, "au": {"f1": {"AU1": 0.5, "AU2": None}, "f1_mean": 0.5, "accuracy": 0.8},
         "va": {"ccc_valence": 0.3, "ccc_arousal": 0.2}, "P_AU": 0.5, "P_VA": 0.25}
    b = {"n": {"au": 10}, "au": {"f1": {"AU1": 0.7, "AU2": 0.1}, "f1_mean": 0.4, "accuracy": 0.8}, "P_AU": 0.4}
    rows = {(r.section, r.metric): r.values for r in comparison_rows([Run("a", a), Run("b", b)])}
    assert rows[("AU", "F1 AU1")] == [0.5, 0.7] and rows[("AU", "F1 AU2")] == [None, 0.1]
    assert rows[("VA", "CCC-V")] == [0.3, None] and rows[("labelled rows", "AU")] == [10, 10]
    assert ("EXPR", "F1-EXPR (macro)") not in rows  # no run has it
    text = format_comparison([Run("a", a), Run("b", b)])
    assert "0.7000*" in text and "0.5000*" in text  # F1 AU1 (b) and the F1 mean (a)
    assert "0.8000*" not in text  # a tie stars nobody


def test_compare_shows_the_numbers_of_score_json(tmp_path, image, lines, capsys):
    for i in range(6):
        image(tmp_path / f"f{i}.png")
    header = "path,AU1,AU12,expression,valence,arousal"
    lines(tmp_path / "labels.csv",
          [header, *(f"f{i}.png,{i % 2},{(i // 2) % 2},{i % 3},{i / 10:.1f},{-i / 10:.1f}" for i in range(6))])
    lines(tmp_path / "a.csv", [header,
                               *(f"f{i}.png,0.{i + 2},0.7,{i % 2},{i / 12:.2f},{-i / 9:.2f}" for i in range(6))])
    lines(tmp_path / "b.csv", [header,
                               *(f"f{i}.png,0.6,0.{i + 1},{i % 3},0.1,{i / 20:.2f}" for i in range(6))])
    for name in ("a", "b"):
        assert main(["score", str(tmp_path / f"{name}.csv"), str(tmp_path / "labels.csv"), "--aus", "AU1,AU12",
                     "--json", str(tmp_path / f"{name}.json")]) == 0
    jsons = [str(tmp_path / f"{name}.json") for name in ("a", "b")]
    assert main(["compare", *jsons, "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    table = json.loads((tmp_path / "c.json").read_text())
    assert table["runs"] == ["a", "b"]
    for i, name in enumerate(("a", "b")):
        scores = json.loads((tmp_path / f"{name}.json").read_text())
        assert comparison_json([Run(name, scores)])["rows"] == [
            {**r, "values": [r["values"][i]]} for r in table["rows"]]
        assert f"{scores['P_MTL']:.4f}" in out


def test_ablation_recipe_is_smm_yaml_with_two_stages():
    smm, ablation = (yaml.safe_load((CONFIGS / f"{n}.yaml").read_text()) for n in ("smm", "smm-vs-mss"))
    assert {k for k in smm.keys() | ablation.keys() if smm.get(k) != ablation.get(k)} == {"name", "paper", "stages",
                                                                                        "final"}
    recipe = load_recipe(CONFIGS / "smm-vs-mss.yaml")
    models = {stage.name: recipe.for_stage(stage).model for stage in recipe.stages}
    assert {name: m.name for name, m in models.items()} == {"smm": "smm", "mss": "mss"}
    assert models["smm"].config == models["mss"].config
    assert [s.steps for s in recipe.stages] == [s["steps"] for s in smm["stages"]] * 2


def test_ablation_runs_and_compare_agrees_with_evaluate(tiny_data, tmp_path, capsys, imagenet_cache):
    """Train both stages for two steps on the tiny real sample, then compare the two checkpoints
    evaluated on the fly against the JSONs `affectlab evaluate` wrote for them."""
    ck, an = str(tiny_data["ckplus"]), str(tiny_data["affectnet"])
    sources = [f"sources.au.path={ck}", f"sources.expr.path={an}", f"sources.va.path={an}",
               f"validation.aff-wild2.path={an}"]
    plain = [f"{where}.{key}=null" for where in ("sources.au", "sources.expr", "sources.va", "validation.aff-wild2")
             for key in ("images", "split")] + [f"sources.{s}.downsample=1" for s in ("au", "expr", "va")]
    tiny = ["model.config.backbone=mobilenet_v2", "data.input_size=32", "data.workers=0", "data.eval_batch_size=40",
            "train.progress=false", "stages.smm.steps=2", "stages.mss.steps=2", "train.eval_every_steps=2",
            *(f"sampler.{g}.quota=2" for g in ("au", "expr", "va"))]
    run = tmp_path / "run"
    assert main(["train", str(CONFIGS / "smm-vs-mss.yaml"), "--out", str(run), *sources, *plain, *tiny]) == 0
    runs = [str(run / "smm.safetensors"), str(run / "mss.safetensors")]
    for path in runs:
        assert main(["evaluate", "--model", path, "--data", ck, "--workers", "0", "--device", "cpu",
                     "--json", str(Path(path).with_suffix(".json"))]) == 0
    capsys.readouterr()
    jsons = [str(Path(p).with_suffix(".json")) for p in runs]
    assert main(["compare", *jsons, *runs, "--data", ck, "--device", "cpu", "--json", str(tmp_path / "c.json")]) == 0
    table = json.loads((tmp_path / "c.json").read_text())
    assert table["runs"] == ["smm.json", "mss.json", "smm.safetensors", "mss.safetensors"]
    values = by_metric(table)
    assert values[("AU", "F1-AU (mean)")][0] is not None
    for metric, (smm_json, mss_json, smm_ckpt, mss_ckpt) in values.items():
        assert (smm_json, mss_json) == pytest.approx((smm_ckpt, mss_ckpt)), metric


def test_compare_takes_a_training_run(tmp_path, capsys):
    """A run folder (or its results.json) is what a user has after train: its final model's
    validation scores; with --data, that model evaluated there."""
    from train.train_world import build_world, mini_recipe

    world = build_world(tmp_path / "world")
    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 2}]", extra="final: main")
    run = tmp_path / "runs" / "mini"
    assert main(["train", str(path), "--out", str(run)]) == 0
    validation = json.loads((run / "results.json").read_text())["members"]["main"]["validation"]["labelled"]
    capsys.readouterr()
    assert main(["compare", str(run), str(run / "results.json"), "--json", str(tmp_path / "c.json")]) == 0
    table = by_metric(json.loads((tmp_path / "c.json").read_text()))
    assert table[("P (eq. 8)", "P_MTL")] == pytest.approx([validation["P_MTL"]] * 2)
    assert main(["compare", str(run), "--data", str(world.labelled), "--device", "cpu",
                 "--json", str(tmp_path / "d.json")]) == 0
    table = by_metric(json.loads((tmp_path / "d.json").read_text()))
    assert table[("P (eq. 8)", "P_MTL")] == pytest.approx([validation["P_MTL"]], abs=1e-6)
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    assert "without results.json: not a finished training run" in capsys.readouterr().err
