"""Recipes: YAML into checked dataclasses, key=value overrides, stage overrides, one-line errors."""
from __future__ import annotations

import re

import pytest

from affectlab.cli import main
from affectlab.train.config import RECIPE_VERSION, ConfigError, apply_override, build_recipe, load_recipe

from train_world import CONFIGS, mini_recipe

MINIMAL = """
name: mini
version: 1
paper: "x §1"
sources:
  a: {path: a.csv, tasks: [au]}
  b: {path: b.csv}
sampler:
  g: {sources: [a], quota: 4, require: [au], balance: ml-ros}
model: {name: mtl-baseline}
loss: {terms: {au: {fn: weighted_bce}}}
stages:
  - {name: teacher, epochs: 2}
  - name: student
    steps: 5
    distill: {teacher: teacher}
    overrides: {sampler: {g: {quota: 8}}, optimizer: {lr: 0.5}}
"""


@pytest.fixture
def mini(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(MINIMAL)
    return path


def test_defaults_fill_in_and_values_are_typed(mini):
    r = load_recipe(mini)
    assert r.sources["b"].tasks == ["au", "expr", "va"] and r.sources["a"].downsample == 1
    assert r.sampler["g"].balance == "ml-ros" and r.data.augment.flip == 0.5
    assert r.stages[1].distill.lam == 0.6 and r.stages[1].distill.T == 1.5


def test_overrides_address_any_value(mini):
    r = load_recipe(mini, ["optimizer.lr=1e-3", "stages.student.steps=7", "stages.0.epochs=1.5",
                           "sources.a.tasks=[au,va]", "model.config.va_bins=20", "data.augment=null",
                           "sources.b=null", "validation.v={path: v.csv, split: valid}"])
    assert r.optimizer.lr == 1e-3, "YAML 1.1 reads 1e-3 as text; float fields accept it"
    assert r.stages[1].steps == 7 and r.stages[0].epochs == 1.5 and r.sources["a"].tasks == ["au", "va"]
    assert r.model.config == {"va_bins": 20} and r.data.augment is None
    assert "b" not in r.sources and r.validation["v"].split == "valid"


def test_one_data_root_moves_every_source(mini):
    r = load_recipe(mini, ["data_root=/datasets", "validation.v={path: v, images: frames}",
                           "sources.b.path=/elsewhere/b.csv", "sources.a.subset={keep: [0], by: subject, like: c}"])
    assert r.sources["a"].path == "/datasets/a.csv" and r.sources["b"].path == "/elsewhere/b.csv"
    assert r.sources["a"].subset.like == "/datasets/c"
    assert (r.validation["v"].path, r.validation["v"].images) == ("/datasets/v", "/datasets/frames")
    assert load_recipe(mini).sources["a"].path == "a.csv"
    student = r.for_stage(r.stages[1])  # stage recipes are rebuilt from the raw recipe: resolved once
    assert student.sources["a"].path == "/datasets/a.csv"


def test_data_root_leaves_the_recipe_as_written(mini):
    """data_root is joined when the recipe is built, into new sources: the recipe as written (what a run
    saves and compares on --resume) keeps its paths, and building it again joins them once."""
    r = load_recipe(mini, ["data_root=/datasets"])
    assert r.raw["sources"]["a"]["path"] == "a.csv" and r.raw["data_root"] == "/datasets"
    again = build_recipe(r.raw)
    assert again.sources == r.sources and again.sources["a"].path == "/datasets/a.csv"


@pytest.mark.parametrize("version, message", [
    (None, f"no recipe format version; this affectlab reads version {RECIPE_VERSION} recipes"),
    (RECIPE_VERSION + 1, f"recipe format version {RECIPE_VERSION + 1}; this affectlab reads version {RECIPE_VERSION}"),
])
def test_a_recipe_of_another_format_is_one_line(tmp_path, capsys, version, message):
    path = tmp_path / "old.yaml"
    path.write_text(MINIMAL.replace("version: 1\n", "" if version is None else f"version: {version}\n"))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: {message}" in err


def test_every_paper_recipe_is_of_the_current_format():
    assert all(load_recipe(path).version == RECIPE_VERSION for path in CONFIGS.glob("*.yaml"))


def test_data_root_in_a_recipe_is_read_from_the_recipe_folder(mini, tmp_path, monkeypatch):
    """Wherever the run starts; --data-root (an override) is read from the working directory."""
    monkeypatch.chdir(tmp_path.parent)
    mini.write_text(MINIMAL + "data_root: ../data\n")
    assert load_recipe(mini).sources["a"].path == str(tmp_path.parent / "data" / "a.csv")
    assert load_recipe(mini, ["data_root=mine"]).sources["a"].path == "mine/a.csv"
    default = load_recipe(CONFIGS / "default.yaml")  # ../shared/data beside the repository, as the README says
    assert default.data_root == str(CONFIGS.parents[1] / "shared" / "data")


def test_non_finite_numbers_are_refused(mini):
    for value in ("nan", "inf", "-.inf", ".nan"):
        with pytest.raises(ConfigError, match=rf"optimizer.lr: expected a finite number, got "):
            load_recipe(mini, [f"optimizer.lr={value}"])


def test_without_validation_early_stopping_is_off_and_said(mini, capsys):
    """Decided when the recipe loads, not at the first evaluation of a run."""
    from affectlab.log import show_messages

    show_messages()  # as the CLI shows them
    r = load_recipe(mini, ["stages.teacher.early_stopping={patience: 2}"])
    assert r.stages[0].early_stopping is None
    err = capsys.readouterr().err
    assert "affectlab: stage 'teacher': no validation data, so no early stopping (on P): it runs all its steps" in err
    r = load_recipe(mini, ["stages.teacher.early_stopping={patience: 2}", "validation.v={path: v.csv}"])
    assert r.stages[0].early_stopping.patience == 2


def test_the_smoke_run_of_the_makefile_is_a_small_default_recipe():
    """``make train-smoke``: configs/default.yaml with the Makefile's overrides loads, small and validated."""
    import shlex

    text = (CONFIGS.parent / "Makefile").read_text().replace("\\\n", " ")
    overrides = shlex.split(re.search(r"^SMOKE := (.*)$", text, re.M).group(1))
    r = load_recipe(CONFIGS / "default.yaml", overrides)
    assert [s.steps for s in r.stages] == [10, 10, 10] and r.data.input_size == 64
    assert list(r.validation) == ["ckplus"] and all(s.early_stopping is not None for s in r.stages)
    assert sum(g.quota for g in r.sampler.values()) == 16
    for stage in ("student", "distilled"):  # and a fiftieth of the wild faces those stages add
        later = r.for_stage(next(s for s in r.stages if s.name == stage))
        assert {later.sources[n].subset.folds for n in ("lfw", "lfw_film")} == {50}
        assert sum(g.quota for g in later.sampler.values()) == 20


def test_every_paper_recipe_takes_its_data_from_data_root():
    for path in CONFIGS.glob("*.yaml"):
        r = load_recipe(path, ["data_root=/d"])
        assert all(s.path.startswith("/d/") for s in [*r.sources.values(), *r.validation.values()]), path.stem


def test_folds_name_the_sources_they_split(mini):
    with pytest.raises(ConfigError, match="folds.sources names unknown sources"):
        load_recipe(mini, ["stages.teacher.folds={sources: [nope], k: 2}"])


def test_stage_overrides_apply_to_that_stage_only(mini):
    r = load_recipe(mini)
    student = r.for_stage(r.stages[1])
    assert student.sampler["g"].quota == 8 and student.optimizer.lr == 0.5
    assert r.sampler["g"].quota == 4 and r.for_stage(r.stages[0]) is r


@pytest.mark.parametrize("override, message", [
    ("sampler.g.qouta=3", "sampler.g: unknown key 'qouta'; known: sources, quota"),
    ("sampler.g.quota=many", "sampler.g.quota: expected a whole number, got 'many'"),
    ("sampler.g.balance=smote", "balance must be one of none, ml-ros, classes, va-bins"),
    ("sampler.g.require=[]", "balance ml-ros needs require: [au, ...]"),
    ("sampler.g.sources=[c]", "sampler group 'g' names unknown sources ['c']"),
    ("stages.nobody.steps=3", "no item 'nobody'; items: ['teacher', 'student']"),
    ("stages.student.distill.teacher=student", "must be earlier stages"),
    ("loss.terms.pose={fn: x}", "loss terms must be one of au, expr, va"),
    ("optimizer", "is not key=value"),
])
def test_bad_values_name_the_key(mini, override, message):
    with pytest.raises(ConfigError) as e:
        load_recipe(mini, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsources: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_recipe(bad)
    bad.write_text("name: x\nversion: 1\n")
    with pytest.raises(ConfigError, match="missing key 'paper'"):
        load_recipe(bad)


def test_override_into_a_scalar_is_refused():
    raw = {"optimizer": {"lr": 1.0}}
    with pytest.raises(ConfigError, match="optimizer.lr is a value"):
        apply_override(raw, "optimizer.lr.x=3")


def test_cli_reports_recipe_errors_in_one_line(capsys, tmp_path):
    code = main(["train", str(CONFIGS / "smm.yaml"), "--out", str(tmp_path / "r"), "sampler.au.quota=lots"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "sampler.au.quota: expected a whole number" in err


def test_cli_names_a_missing_dataset(capsys, tmp_path):
    code = main(["train", str(CONFIGS / "smm.yaml"), "--out", str(tmp_path / "r"), "sources.au.path=/no/such/dir"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "/no/such/dir" in err and err.count("\n") == 0


def test_a_loss_that_does_not_fit_the_model_is_a_one_line_error(world, tmp_path, capsys):
    path = mini_recipe(world, tmp_path)
    assert main(["train", str(path), "--out", str(tmp_path / "r"), "loss.terms.va.fn=va_bins"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a model with VA bins" in err


def test_a_stage_set_to_null_is_left_out(mini):
    r = load_recipe(mini, ["stages.student=null"])
    assert [s.name for s in r.stages] == ["teacher"]


@pytest.mark.parametrize("override, message", [
    ("data.input_size=0", "data: input_size must be >= 16, got 0"),
    ("data.input_size=-32", "data: input_size must be >= 16, got -32"),
    ("data.eval_batch_size=0", "data: eval_batch_size must be >= 1"),
    ("data.workers=-1", "data: workers must be >= 0"),
    ("data.margin=-0.2", "data: margin must be >= 0"),
    ("train.log_every=0", "train: log_every must be >= 1"),
    ("train.checkpoint_every=0", "train: checkpoint_every must be >= 1"),
    ("train.eval_every_steps=0", "train: eval_every_steps must be >= 1"),
    ("stages.student.steps=-5", "stages.1: steps must be >= 1"),
    ("stages.teacher.epochs=0", "stages.0: epochs must be > 0"),
    ("stages.student.distill.T=0", "stages.1.distill: T must be > 0"),
    ("optimizer.lr=-0.1", "optimizer: lr must be > 0"),
    ("scheduler.gamma=0", "scheduler: gamma must be > 0"),
])
def test_impossible_values_are_refused_with_their_key(mini, override, message):
    """A zero or negative size or count stops at the recipe check, naming the key (not in a DataLoader)."""
    with pytest.raises(ConfigError) as e:
        load_recipe(mini, [override])
    assert str(e.value) == f"{mini}: {message}" or str(e.value).startswith(f"{mini}: {message}")


def test_validation_null_turns_validation_off(mini):
    """``validation=null`` (or any empty-by-default section set to null) means none."""
    assert load_recipe(mini, ["validation=null"]).validation == {}
    assert load_recipe(mini, ["ensembles=null"]).ensembles == {}
    with pytest.raises(ConfigError, match="sources: a value is required"):
        load_recipe(mini, ["sources=null"])  # a section without a default still needs a value


@pytest.mark.parametrize("override, message", [
    ("loss.terms.au.fn=weighted_bcee", "loss of au must be one of weighted_bce, circle"),
    ("loss.terms.au.fn=ccc", "loss 'ccc' is an va loss, not a au loss"),
    ("model.config={hiden: 3}", "model 'mtl-baseline' has no option 'hiden'; options: backbone, hidden, va_bins"),
    ("model.name=resnet", "model must be one of cnn-rnn"),
    ("loss.reduce=groups", "loss.reduce: must be one of batch, group, got 'groups'"),
    ("optimizer.name=adamx", "optimizer.name: must be one of sgd, adam, adamw"),
    ("stages.student.distill.teacher_outputs=offline", "teacher_outputs: must be one of online, cached"),
    ("stages.student.distill.teacher=[]", "distill.teacher names no stage"),
    ("data.crop_framing=[[0.3, 0.4]]", "crop_framing is 5 [x, y] points as fractions of the image"),
])
def test_recipes_are_checked_when_loaded(mini, override, message):
    """A misspelt loss or model option stops at load, before any data is read, naming the key
    and the valid values."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_recipe(mini, [override])


def test_a_recipe_extends_another_by_what_it_changes(tmp_path):
    """extends: sections merge into the other recipe, lists replace; a chain of extends is refused."""
    configs = CONFIGS
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {configs / 'smm.yaml'}\nname: child\noptimizer: {{lr: 0.5}}\n"
                     "stages: [{name: only, steps: 1}]\nfinal: only\n")
    recipe, smm = load_recipe(child), load_recipe(configs / "smm.yaml")
    assert (recipe.name, recipe.optimizer.lr, recipe.optimizer.momentum) == ("child", 0.5, smm.optimizer.momentum)
    assert [s.name for s in recipe.stages] == ["only"] and recipe.sources == smm.sources
    assert "extends" not in recipe.raw and recipe.raw["sampler"] == smm.raw["sampler"]
    grandchild = tmp_path / "grandchild.yaml"
    grandchild.write_text("extends: child.yaml\nname: g\n")
    with pytest.raises(ConfigError, match="extends child.yaml, which extends another recipe"):
        load_recipe(grandchild)
