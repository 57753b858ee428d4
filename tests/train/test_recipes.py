"""Every recipe in configs/ runs end to end on the tiny world, through the overrides users type."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch

from affectlab.cli import main
from affectlab.models import load_model
from affectlab.models.meta import InputSpec
from affectlab.train import load_recipe

from train_world import CONFIGS, TINY, recipe_overrides

PAPERS = ["smm", "teacher-student", "multi-database", "streaming", "context-ensemble"]
RECIPES = [*PAPERS, "smm-vs-mss", "default"]
#: The papers of ABAW 2020-2021 classify the seven basic expressions (no Other).
SEVEN_CLASSES = {"teacher-student", "multi-database", "streaming"}


def test_one_recipe_per_paper_and_every_recipe_runs_here():
    assert set(PAPERS) <= {p.stem for p in CONFIGS.glob("*.yaml")} == set(RECIPES)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_loads_and_cites_its_paper(path):
    """Every recipe in configs/ parses as written and cites its paper's sections or equations."""
    recipe = load_recipe(path)
    assert recipe.name == path.stem and re.search(r"§|eqs?\. \d", recipe.paper)


def test_paper_hyper_parameters_are_written_in():
    smm = load_recipe(CONFIGS / "smm.yaml")
    o = smm.optimizer
    assert (o.name, o.lr, o.momentum, smm.scheduler.name) == ("sgd", 1e-3, 0.9, "cosine")
    assert [g.quota for g in smm.sampler.values()] == [24, 24, 24] and smm.stages[0].steps == 300_000
    assert smm.data.input_size == 299 and {s.downsample for s in smm.sources.values()} == {8}
    ts = load_recipe(CONFIGS / "teacher-student.yaml")
    assert (ts.optimizer.name, ts.optimizer.lr, ts.scheduler.step_epochs, ts.scheduler.gamma) == ("adam", 1e-4, 3, 0.1)
    teacher, student, rnn_teacher, rnn_student = ts.stages
    assert (teacher.epochs, student.epochs, student.repeat) == (8, 3, 5)
    assert rnn_student.repeat == 5 and rnn_teacher.init_from == rnn_student.init_from == "student"
    rnn = ts.for_stage(rnn_student)
    assert (rnn.model.name, rnn.model.config["seq_len"]) == ("cnn-rnn", 32) and set(rnn.sources) == {
        "affwild2_au", "affwild2_expr", "affwild2_va"}
    assert {s.downsample for s in rnn.sources.values()} == {1}, "a GRU clip is consecutive frames"
    assert (student.distill.lam, student.distill.T, ts.data.input_size) == (0.6, 1.5, 112)
    assert {t: term.weight for t, term in ts.loss.terms.items()} == {"au": 8, "expr": 1, "va": 1}
    md = load_recipe(CONFIGS / "multi-database.yaml")
    assert list(md.sampler) == ["expr", "va", "expr_va"] and md.stages[0].early_stopping.patience == 5
    assert sum(g.quota for g in md.sampler.values()) == 64  # §4.1: CNN batch 64
    gru = md.for_stage(md.stages[2])
    assert sum(g.quota for g in gru.sampler.values()) == 16 and md.stages[2].cache_features  # §4.1: RNN batch 16
    st = load_recipe(CONFIGS / "streaming.yaml")
    batch = sum(g.quota for g in st.sampler.values())
    assert (st.optimizer.lr, batch, st.scheduler.name) == (0.002, 80, "cosine-restarts")
    # §3.4 filters DFEW's expressions by the Aff-Wild2 model's confidence, not AffectNet's
    assert [n for n, s in st.sources.items() if s.confident] == ["dfew"] and st.sources["dfew"].confident.threshold == 0.8
    ce = load_recipe(CONFIGS / "context-ensemble.yaml")
    assert (ce.optimizer.lr, ce.sampler["all"].quota, ce.stages[0].epochs) == (1e-3, 24, 50)


#: What each recipe's run must produce: its members and ensembles.
MEMBERS = {
    "smm": (["static"], []),
    "teacher-student": (["teacher", "student-0", "student-1", "rnn-teacher", "rnn-student-0", "rnn-student-1"],
                        ["students", "rnn-students"]),
    "multi-database": (["teacher", "student", "gru-teacher", "gru-student"], []),
    "streaming": (["prior", "affwild2", "original", "fold-fold0", "fold-fold1", "pseudo"], ["vote"]),
    "context-ensemble": (["face", "context", "ensemble"], []),
    "smm-vs-mss": (["smm", "mss"], []),
    "default": (["teacher", "student", "distilled"], []),
}


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_end_to_end(name, world, tmp_path):
    out = tmp_path / "run"
    code = main(["train", str(CONFIGS / f"{name}.yaml"), "--out", str(out), *TINY, *recipe_overrides(world, name)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["final"], "the recipe names its final model(s)"
    classes = 7 if name in SEVEN_CLASSES else 8
    for path in results["final"]:
        model = load_model(path)
        assert model.checkpoint_meta.extra["recipe"] == name
        size = model.checkpoint_meta.input_size
        shape = {"BCHW": (1, 3), "BTCHW": (1, 2, 3), "BVCHW": (1, 2, 3)}[model.input_layout] + (size, size)
        with torch.no_grad():
            assert model.schema.n_expr == classes and model(torch.zeros(shape)).expr.shape[-1] == classes
    scored = [m["validation"] for m in [*results["members"].values(), *results["ensembles"].values()]
              if "note" not in m]
    assert all(any(k.startswith("P_") for k in v) for s in scored for v in s.values())
    members, ensembles = MEMBERS[name]
    assert list(results["members"]) == members and list(results["ensembles"]) == ensembles
    log = pd.read_csv(out / "metrics.csv")
    assert set(log["member"]) >= set(members) and (log["name"] == "train/loss").any()
    if name == "streaming":  # §4.3.1: each fold member validates on its held-out fold only; §3.4 pseudo labels
        folds = [results["members"][f"fold-fold{i}"]["validation"] for i in (0, 1)]
        assert all(f"fold{i}" in v for i, v in enumerate(folds))
        # the fold stage trains on the Aff-Wild2 validation video too: the member that did is not scored on it,
        # the one that did not scores it in its fold's table only (each row once)
        assert not any("aff-wild2" in v for v in folds)
        assert list(results["members"]["original"]["validation"]) == ["aff-wild2"]
        vote = results["ensembles"]["vote"]  # together the members saw every row
        assert vote["validation"] == {} and "not scored" in vote["note"]
        assert log["name"].str.startswith("pseudo/").any()
        pseudo = log[(log["member"] == "pseudo") & (log["name"] == "pseudo/unlabelled_rows")]["value"]
        assert pseudo.iloc[0] == 6, "the training videos' unannotated frames reach the teacher's pseudo labels"
        dropped = log[(log["member"] == "pseudo") & (log["name"] == "filter/unlabelled_not_training_video")]["value"]
        assert dropped.iloc[0] == 12, "no frame of the validation video is pseudo-labelled"
        assert log["name"].str.startswith("filter/dfew_expr").any(), "external expressions filtered by confidence"
    if name == "default":  # the bundled model: the teacher+student ensemble distilled into one network
        model = load_model(out / "model.safetensors")
        assert model.checkpoint_meta.extra["stage"] == "distilled"
        assert InputSpec.of(model).crop_framing == tuple(map(tuple, load_recipe(CONFIGS / "default.yaml").data.crop_framing))
        # the wild faces reach the student and distilled stages only, their labels filtered by the teacher
        filtered = log[log["name"].str.startswith("filter/lfw")]
        assert set(filtered["member"]) == {"student", "distilled"}
        kept = filtered[filtered["name"].str.endswith("_expr_kept")].groupby("member")["value"].sum()
        masked = filtered[filtered["name"].str.endswith("_expr_masked")].groupby("member")["value"].sum()
        assert ((kept + masked) == 2 * len(pd.read_csv(world.expr))).all()  # lfw and lfw_film: every labelled row
    if name == "context-ensemble":  # face and context nets joined into one two-view model
        model = load_model(out / "ensemble.safetensors")
        assert model.model_name == "context-ensemble" and model.checkpoint_meta.extra["crop"]["views"] == [0.0, 0.2]


ABLATIONS = sorted((CONFIGS / "ablations").glob("*.yaml"))


def test_the_papers_ablations_are_recipes():
    """Streaming Table 3 (w/o prior, w/o streaming), multi-database Table 1 (T in {1, 2}) and Table 2
    (no sharing), teacher-student Table 1 (single-task, imbalanced and balanced)."""
    assert {p.stem for p in ABLATIONS} == {"streaming-without-prior", "streaming-without-streaming",
                                           "multi-database-two-tasks", "multi-database-no-sharing",
                                           "teacher-student-single-task"}
    assert load_recipe(CONFIGS / "ablations" / "streaming-without-streaming.yaml").model.config["stream"] is False
    assert load_recipe(CONFIGS / "ablations" / "streaming-without-prior.yaml").model.config["prior"] == "none"
    two = load_recipe(CONFIGS / "ablations" / "multi-database-two-tasks.yaml")
    assert list(two.sampler) == ["expr", "va"] and sum(g.quota for g in two.sampler.values()) == 64
    no_sharing = load_recipe(CONFIGS / "ablations" / "multi-database-no-sharing.yaml")
    student = no_sharing.for_stage(no_sharing.stages[1])
    assert [g.tasks for g in student.sampler.values()] == [["expr"], ["va"], ["expr", "va"]]  # eq. 9
    single = load_recipe(CONFIGS / "ablations" / "teacher-student-single-task.yaml")
    balance = [(s.name, [(t, g.balance) for t, g in single.for_stage(s).sampler.items()]) for s in single.stages]
    assert balance == [("au-imbalanced", [("au", "none")]), ("au-balanced", [("au", "ml-ros")]),
                       ("expr-imbalanced", [("expr", "none")]), ("expr-balanced", [("expr", "classes")]),
                       ("va-imbalanced", [("va", "none")]), ("va-balanced", [("va", "va-bins")])]


@pytest.mark.parametrize("path", ABLATIONS, ids=lambda p: p.stem)
def test_every_ablation_runs_end_to_end(path, world, tmp_path):
    """Each ablation on the tiny world, with its paper recipe's overrides (two steps per stage)."""
    recipe = load_recipe(path)
    base = next(p for p in PAPERS if path.stem.startswith(p))
    stages = {s.name for s in recipe.stages}
    present = {"stages": stages, "sampler": set(recipe.sampler)}
    given = [o for o in recipe_overrides(world, base) if o.split(".")[1] in present.get(o.split(".")[0], [o.split(".")[1]])]
    steps = [f"stages.{s}.steps=2" for s in stages if f"stages.{s}.steps" not in " ".join(given)]
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), *TINY, *given, *steps]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["members"]) >= stages - {"fold"} and results["recipe"] == path.stem
    scored = [m["validation"] for m in results["members"].values() if "note" not in m]
    assert scored and all(any(k.startswith("P_") for k in v) for s in scored for v in s.values())
