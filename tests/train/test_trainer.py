"""The trainer: exact resume, unreadable images, early stopping, clips, cached teachers, run directories."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import safetensors.torch
import torch

from affectlab.cli import main
from affectlab.errors import AffectlabError
from affectlab.models import list_models, load_model
from affectlab.train import load_recipe, train

from train_world import mini_recipe


class Interrupt(Exception):
    pass


def stop_at(step: int):
    def hook(info):
        if info.step == step:
            raise Interrupt
    return hook


def weights(path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(world, tmp_path):
    """Stopped after step 5 (last checkpoint: step 4) and resumed, a run matches one never stopped:
    sampler position, optimiser and scheduler state and the RNG (SMM's Transformer has dropout) all resume."""
    recipe = load_recipe(mini_recipe(world, tmp_path, model="smm", config="{backbone: mobilenet_v2}",
                                     stages="[{name: a, steps: 3}, {name: b, steps: 7, init_from: a}]"),
                         ["data.workers=2"])
    train(recipe, tmp_path / "whole")
    with pytest.raises(Interrupt):
        train(recipe, tmp_path / "split", hooks=[stop_at(5)])
    assert (tmp_path / "split" / "state.pt").exists() and (tmp_path / "split" / "a.safetensors").exists()
    with pytest.raises(AffectlabError, match="pass --resume"):
        train(recipe, tmp_path / "split")
    seen = []
    train(recipe, tmp_path / "split", resume=True, hooks=[lambda info: seen.append((info.member, info.step))])
    assert seen[0] == ("b", 5), "the finished stage is skipped; stage b continues after its step-4 checkpoint"
    whole, split = weights(tmp_path / "whole" / "b.safetensors"), weights(tmp_path / "split" / "b.safetensors")
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    log = pd.read_csv(tmp_path / "split" / "metrics.csv")
    losses = log[(log["member"] == "b") & (log["name"] == "train/loss")]
    assert losses["step"].tolist() == list(range(1, 8)), "steps logged after the checkpoint are not duplicated"
    assert not (tmp_path / "split" / "state.pt").exists()


def test_resume_refuses_a_changed_recipe(world, tmp_path):
    path = mini_recipe(world, tmp_path)
    with pytest.raises(Interrupt):
        train(load_recipe(path), tmp_path / "run", hooks=[stop_at(3)])
    with pytest.raises(AffectlabError, match="differs from the one this run started with"):
        train(load_recipe(path, ["optimizer.lr=0.5"]), tmp_path / "run", resume=True)
    train(load_recipe(path, ["train.log_every=5"]), tmp_path / "run", resume=True)  # train.* may change


@pytest.fixture
def corrupt_world(world, tmp_path):
    """The world's expression manifest with one image that cannot be decoded."""
    folder = tmp_path / "data"
    shutil.copytree(world.root / "stills", folder / "stills")
    (folder / "stills" / "s03.png").write_bytes(b"\x89PNG broken")
    shutil.copy(world.expr, folder / "expr.csv")
    return folder / "expr.csv"


def test_unreadable_images_are_counted_and_skipped(world, corrupt_world, tmp_path, capsys):
    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 12}]")
    code = main(["train", str(path), "--out", str(tmp_path / "run"), f"sources.expr.path={corrupt_world}",
                 "train.amp=bf16", "train.channels_last=on"])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("skipping unreadable image") == 1 and "s03.png" in err
    progress = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert progress["completed"]["main"]["unreadable_images"] == 1
    assert load_model(tmp_path / "run" / "main.safetensors").checkpoint_meta.extra["unreadable_images"][0].endswith(
        "s03.png")


def test_unreadable_images_can_stop_the_run_with_the_file_named(world, corrupt_world, tmp_path, capsys):
    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 12}]")
    code = main(["train", str(path), "--out", str(tmp_path / "run"), f"sources.expr.path={corrupt_world}",
                 "data.on_corrupt=fail"])
    err = [line for line in capsys.readouterr().err.splitlines() if "starts from random weights" not in line]
    assert code == 2 and len(err) == 1 and "s03.png: not a decodable image" in err[0]


def test_early_stopping_keeps_the_best_weights(world, tmp_path):
    """A monitor that never improves (a row count) stops after `patience` evaluations and restores the first."""
    stages = "[{name: main, steps: 20, early_stopping: {patience: 2, monitor: n.expr}}]"
    path = mini_recipe(world, tmp_path, stages=stages)
    results = train(load_recipe(path, ["train.eval_every_steps=1"]), tmp_path / "stopped")
    assert results["members"]["main"]["steps"] == 3
    train(load_recipe(path, ["stages.main.steps=1", "stages.main.early_stopping=null"]), tmp_path / "one")
    best, one = weights(tmp_path / "stopped" / "main.safetensors"), weights(tmp_path / "one" / "main.safetensors")
    assert all(torch.equal(best[k], one[k]) for k in best)


def test_early_stopping_needs_its_metric(world, tmp_path):
    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 4, early_stopping: {monitor: va.ccc_nope}}]")
    with pytest.raises(AffectlabError, match="va.ccc_nope"):
        train(load_recipe(path), tmp_path / "run")


def test_sequence_models_train_on_clips(world, tmp_path):
    """cnn-rnn takes clips of consecutive frames; a CNN stage initialises its backbone (teacher-student Fig. 4)."""
    path = mini_recipe(world, tmp_path, stages="""
  - {name: cnn, steps: 2}
  - name: rnn
    steps: 2
    init_from: cnn
    overrides: {model: {name: cnn-rnn, config: {backbone: mobilenet_v2, seq_len: 3}}}
""")
    abaw = [f"sources.va.path={world.abaw}", f"sources.va.images={world.frames}", "sources.va.split=train",
            f"validation.labelled.path={world.abaw}", f"validation.labelled.images={world.frames}",
            "validation.labelled.split=validation"]
    results = train(load_recipe(path, abaw), tmp_path / "run")
    cnn, rnn = weights(tmp_path / "run" / "cnn.safetensors"), weights(tmp_path / "run" / "rnn.safetensors")
    assert torch.equal(cnn["backbone.body.features.0.0.weight"], rnn["backbone.body.features.0.0.weight"]), \
        "frozen backbone, initialised from the CNN"
    assert results["members"]["rnn"]["validation"]["labelled"]["n"]["va"] == 12


def test_temporal_stage_caches_each_frames_features_once(world, tmp_path, monkeypatch):
    """Multi-database §3.3 / teacher-student CNN-RNN: the best CNN's frozen features, computed once per
    frame, feed GRUs trained on clips and scored per frame; a GRU student distils from a GRU teacher."""
    from affectlab.models.multitask import MultitaskCNNRNN

    seen = []
    original = MultitaskCNNRNN.frame_features
    monkeypatch.setattr(MultitaskCNNRNN, "frame_features", lambda self, x: seen.append(len(x)) or original(self, x))
    rnn = "{model: {name: cnn-rnn, config: {backbone: mobilenet_v2, seq_len: 4}}}"
    path = mini_recipe(world, tmp_path, stages=f"""
  - {{name: cnn, steps: 2, repeat: 2}}
  - {{name: rnn-teacher, steps: 3, init_from: cnn, cache_features: true, overrides: {rnn}}}
  - {{name: rnn-student, steps: 3, init_from: cnn, cache_features: true, overrides: {rnn},
     distill: {{teacher: rnn-teacher}}}}
""")
    abaw = [f"sources.va.path={world.abaw}", f"sources.va.images={world.frames}", "sources.va.split=train",
            f"validation.labelled.path={world.abaw}", f"validation.labelled.images={world.frames}",
            "validation.labelled.split=validation"]
    results = train(load_recipe(path, abaw), tmp_path / "run")
    train_rows = results["members"]["rnn-teacher"]["training_rows"]
    assert sum(seen) == 2 * (train_rows + 12), "each training and validation frame once per GRU stage"
    best = max(("cnn-0", "cnn-1"), key=lambda m: results["members"][m]["validation"]["labelled"]["P_MTL"])
    cnn, rnn_w = weights(tmp_path / "run" / f"{best}.safetensors"), weights(tmp_path / "run" / "rnn-student.safetensors")
    assert torch.equal(cnn["backbone.body.features.0.0.weight"], rnn_w["backbone.body.features.0.0.weight"])
    assert results["members"]["rnn-student"]["validation"]["labelled"]["n"]["va"] == 12


def test_a_cached_feature_student_needs_a_teacher_on_the_same_features(world, tmp_path):
    path = mini_recipe(world, tmp_path, stages="""
  - {name: cnn, steps: 2}
  - {name: t, steps: 2}
  - {name: s, steps: 2, init_from: cnn, cache_features: true, distill: {teacher: t}}
""")
    with pytest.raises(AffectlabError, match="must cache the same CNN's"):
        load_recipe(path)


def test_cached_teacher_outputs(world, tmp_path):
    path = mini_recipe(world, tmp_path, config="{backbone: mobilenet_v2, va_bins: 20}", stages="""
  - {name: teacher, steps: 2}
  - {name: student, steps: 2, distill: {teacher: teacher, teacher_outputs: cached}}
""")
    seen = []
    train(load_recipe(path, ["loss.terms.va.fn=va_bins"]), tmp_path / "run", hooks=[lambda i: seen.append(i.losses)])
    assert {"au_kd", "expr_kd", "va_kd"} <= set(seen[-1])


@pytest.mark.parametrize("outputs", ["cached", "online"])
def test_an_ensemble_of_stages_teaches_a_student(world, tmp_path, monkeypatch, outputs):
    """distill.teacher may name several stages: the student learns their averaged outputs."""
    from affectlab.train import fitting

    path = mini_recipe(world, tmp_path, config="{backbone: mobilenet_v2, va_bins: 20}", stages=f"""
  - {{name: teacher, steps: 2}}
  - {{name: student, steps: 2, distill: {{teacher: teacher, teacher_outputs: {outputs}}}}}
  - {{name: distilled, steps: 2, distill: {{teacher: [teacher, student], teacher_outputs: {outputs}}}}}
""")
    taught = []
    ensemble = fitting.ensemble_teacher
    monkeypatch.setattr(fitting, "ensemble_teacher", lambda outs: taught.append(len(outs)) or ensemble(outs))
    seen = []
    results = train(load_recipe(path, ["loss.terms.va.fn=va_bins"]), tmp_path / "run",
                    hooks=[lambda i: seen.append((i.stage, set(i.losses)))])
    assert 2 in taught and "distilled" in results["members"]
    assert {"au_kd", "expr_kd", "va_kd"} <= next(losses for stage, losses in seen if stage == "distilled")


def test_task_weights_reach_the_students_loss(world, tmp_path, monkeypatch):
    from affectlab.train import fitting

    path = mini_recipe(world, tmp_path, stages="""
  - {name: teacher, steps: 2}
  - {name: student, steps: 2, distill: {teacher: teacher, task_weights: true}}
""")
    seen = []
    loss = fitting.student_loss
    monkeypatch.setattr(fitting, "student_loss", lambda *a: seen.append(a[-1]) or loss(*a))
    train(load_recipe(path, ["loss.terms.au.weight=8"]), tmp_path / "run")
    assert seen and all(w is not None and w["au"] == 8 for w in seen)


def test_a_distill_teacher_must_be_earlier_stages(world, tmp_path):
    path = mini_recipe(world, tmp_path, stages="""
  - {name: teacher, steps: 2}
  - {name: student, steps: 2, distill: {teacher: [teacher, later]}}
  - {name: later, steps: 2}
""")
    with pytest.raises(AffectlabError, match="later"):
        load_recipe(path)


def test_cached_teacher_outputs_are_those_of_the_batch_rows(world, tmp_path, monkeypatch):
    """The student's soft labels for a batch are the teacher's outputs on exactly the batch's table rows."""
    from affectlab.labels import DEFAULT_SCHEMA
    from affectlab.train import data as tdata
    from affectlab.train.distill import CachedTeacher
    from affectlab.models.meta import InputSpec
    from affectlab.inference.batch import collect_outputs

    path = mini_recipe(world, tmp_path, stages="""
  - {name: teacher, steps: 2}
  - {name: student, steps: 3, distill: {teacher: teacher, teacher_outputs: cached}}
""")
    looked_up, batches = [], []
    call = CachedTeacher.__call__
    monkeypatch.setattr(CachedTeacher, "__call__",
                        lambda self, index: looked_up.append((index.tolist(), call(self, index).expr)) or call(self, index))
    recipe = load_recipe(path)
    train(recipe, tmp_path / "run", hooks=[lambda i: batches.append(i.index) if i.stage == "student" else None])
    assert [rows for rows, _ in looked_up] == batches
    teacher = load_model(tmp_path / "run" / "teacher.safetensors")
    samples = tdata.read_sources(recipe.sources, DEFAULT_SCHEMA, {}).samples
    rows = batches[0]
    expected = collect_outputs(teacher, samples.iloc[rows].reset_index(drop=True), InputSpec.of(teacher))["expr"]
    assert torch.allclose(looked_up[0][1], torch.from_numpy(expected), atol=1e-4)


def test_resume_refuses_when_the_training_data_changed(world, tmp_path, capsys):
    """Exact resume needs the same rows: a label file edited since the checkpoint stops the resume."""
    import shutil as sh

    au = tmp_path / "au.csv"
    sh.copyfile(world.au, au)
    lines = au.read_text().splitlines()
    au.write_text("\n".join(line.replace("stills/", f"{world.root}/stills/", 1) for line in lines) + "\n")
    path = mini_recipe(world, tmp_path)
    with pytest.raises(Interrupt):
        train(load_recipe(path, [f"sources.au.path={au}"]), tmp_path / "run", hooks=[stop_at(3)])
    au.write_text("\n".join(au.read_text().splitlines()[:-4]) + "\n")  # four rows fewer
    capsys.readouterr()
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--resume", f"sources.au.path={au}"]) == 2
    assert "the training data changed since this checkpoint" in capsys.readouterr().err


ARCHITECTURES = {  # name -> overrides beyond the small backbone
    "mtl-baseline": [], "cnn-rnn": ["model.config.seq_len=2", "model.config.freeze_backbone=false"], "smm": [],
    "mss": [], "context": [], "context-ensemble": ["data.views=[0.0,0.25]", "data.input_size=40"], "streaming": [],
}


def test_every_registered_architecture_is_covered():
    assert set(list_models()) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_trains_on_partially_labelled_sources(name, world, tmp_path):
    path = mini_recipe(world, tmp_path, model=name, stages="[{name: main, steps: 2}]")
    results = train(load_recipe(path, ARCHITECTURES[name] + ["train.eval_every_steps=100"]), tmp_path / "run")
    scores = results["members"]["main"]["validation"]["labelled"]
    assert {"P_AU", "P_EXPR", "P_VA"} <= set(scores)
    assert load_model(tmp_path / "run" / "main.safetensors").model_name == name


def _step_setup(seed: int = 0):
    """A small model, its objective and optimiser, and one labelled batch of 32 px images."""
    from affectlab.labels import DEFAULT_SCHEMA
    from affectlab.models import create_model
    from affectlab.train.config import Loss, LossTerm
    from affectlab.train.objective import Objective

    torch.manual_seed(seed)
    model = create_model("mtl-baseline", backbone="mobilenet_v2").train()
    labels = pd.DataFrame({**{a: [0.0, 1.0] for a in DEFAULT_SCHEMA.au_names}, "expr": [0, 3], "valence": 0.0,
                           "arousal": 0.0})
    terms = {"au": LossTerm("weighted_bce"), "expr": LossTerm("ce"), "va": LossTerm("ccc")}
    objective = Objective(Loss(terms, "batch"), DEFAULT_SCHEMA, labels, has_va_bins=False)
    g = torch.Generator().manual_seed(seed)
    n, n_au = 6, DEFAULT_SCHEMA.n_au
    batch = {"image": torch.randn(n, 3, 32, 32, generator=g),
             "au": torch.randint(0, 2, (n, n_au), generator=g).float(), "au_mask": torch.ones(n, n_au, dtype=torch.bool),
             "expr": torch.randint(0, 8, (n,), generator=g), "expr_mask": torch.ones(n, dtype=torch.bool),
             "expr_soft": torch.zeros(n, 8), "expr_soft_mask": torch.zeros(n, dtype=torch.bool),
             "va": torch.rand(n, 2, generator=g) * 2 - 1, "va_mask": torch.ones(n, 2, dtype=torch.bool),
             "group": torch.zeros(n, dtype=torch.long), "index": torch.arange(n)}
    return model, objective, torch.optim.SGD(model.parameters(), lr=0.05), batch


@pytest.mark.parametrize("amp,channels_last", [(False, False), (True, True)])
def test_training_step_lowers_the_loss_on_its_batch(amp, channels_last):
    from affectlab.train.fitting import training_step

    model, objective, optimizer, batch = _step_setup()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    tasks = torch.ones(1, 3, dtype=torch.bool)
    losses = [training_step(model, batch, objective, optimizer, tasks, amp=amp, channels_last=channels_last)[0].item()
              for _ in range(8)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_training_step_clips_gradients_and_needs_distill_settings_for_a_teacher():
    from affectlab.train.fitting import training_step

    model, objective, optimizer, batch = _step_setup()
    before = [p.detach().clone() for p in model.parameters()]
    training_step(model, batch, objective, optimizer, torch.ones(1, 3, dtype=torch.bool), grad_clip=1e-3)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert 0 < moved.norm() <= 0.05 * 1e-3 * 1.001  # SGD lr 0.05 times a gradient clipped to norm 1e-3
    teacher = lambda b, image: model(image)  # noqa: E731
    with pytest.raises(ValueError, match="distill settings"):
        training_step(model, batch, objective, optimizer, torch.ones(1, 3, dtype=torch.bool), teacher=teacher)


def test_a_run_from_random_weights_says_so(world, tmp_path, capsys):
    assert main(["train", str(mini_recipe(world, tmp_path)), "--out", str(tmp_path / "run")]) == 0
    assert "main: mtl-baseline starts from random weights" in capsys.readouterr().err


def test_external_expressions_kept_where_a_finished_model_is_confident(world, tmp_path):
    """Streaming §3.4: external expression labels filtered by a finished model at a threshold."""
    def masked(threshold: float) -> float:
        path = mini_recipe(world, tmp_path, extra="", stages=f"""
  - {{name: first, steps: 2, overrides: {{sources: {{expr: {{confident: null}}}}}}}}
  - {{name: second, steps: 2}}
""")
        out = tmp_path / f"run{threshold}"
        train(load_recipe(path, [f"sources.expr.confident={{stage: first, threshold: {threshold}}}"]), out)
        log = pd.read_csv(out / "metrics.csv")
        return log[(log["member"] == "second") & (log["name"] == "filter/expr_expr_masked")]["value"].iloc[0]

    assert masked(0.001) == 0
    with pytest.raises(AffectlabError, match="sampler group 'expr': no row of expr is labelled"):
        masked(0.999)  # a model two steps old is sure of nothing: every label masked


def test_a_filter_by_a_stage_that_has_not_run_is_refused(world, tmp_path):
    path = mini_recipe(world, tmp_path, stages="[{name: first, steps: 2}]")
    with pytest.raises(AffectlabError, match="comes before"):
        train(load_recipe(path, ["sources.expr.confident={stage: first}"]), tmp_path / "run")


# --- run directories a user damaged, and interrupted runs ----------------------------------------------


def stopped_run(world, folder, step: int = 3):
    """A mini run stopped after ``step`` (its state.pt saved at step 2)."""
    path = mini_recipe(world, folder)
    with pytest.raises(Interrupt):
        train(load_recipe(path), folder / "run", hooks=[stop_at(step)])
    return load_recipe(path), folder / "run"


def state_fault(kind: str, state, marker):
    import bad_inputs as bad

    if kind == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, state)
    elif kind == "code":
        bad.code_running_pickle(state, marker)
    elif kind == "plain-pickle":
        bad.plain_pickle(state, marker)
    elif kind == "text":
        state.write_text("not a state\n")
    elif kind == "other-model":
        saved = torch.load(state, weights_only=True)
        saved["model"] = {"w": torch.zeros(1)}
        torch.save(saved, state)
    else:
        raise ValueError(kind)


@pytest.mark.parametrize("kind, message", [
    ("truncated", "damaged training state"), ("text", "damaged training state"),
    ("foreign", "not an affectlab training state (no 'member')"),
    ("code", "not a training state: it holds Python objects other than tensors (refused, not run)"),
    ("plain-pickle", "not a training state: it holds Python objects other than tensors (refused, not run)"),
    ("other-model", "does not fit this run's model or optimiser"),
])
def test_a_damaged_state_file_is_one_line_and_never_runs_code(world, tmp_path, capsys, kind, message):
    """--resume with a damaged or foreign state.pt names the file; the run is kept, no code runs."""
    recipe, out = stopped_run(world, tmp_path)
    state, marker = out / "state.pt", tmp_path / "code-ran"
    state_fault(kind, state, marker)
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()  # what the interrupted run printed
    code = main(["train", str(tmp_path / "mini.yaml"), "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == err.strip().splitlines()[0] and "Traceback" not in err
    assert err.startswith(f"affectlab: error: {state}: {message}") and "move it away" in err
    assert not marker.exists(), "the pickle's code ran"
    assert sorted(p.name for p in out.iterdir()) == before and state.exists()  # nothing of the run is lost


def test_resume_without_a_run_is_refused(world, tmp_path, capsys):
    """--resume on a folder without a run would start a fresh full training; it is one line instead."""
    path = mini_recipe(world, tmp_path)
    for folder in (tmp_path / "typo", tmp_path):
        code = main(["train", str(path), "--out", str(folder), "--resume", "train.progress=false"])
        err = capsys.readouterr().err
        assert code == 2 and "no run to resume" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "typo").exists() and not (tmp_path / "metrics.csv").exists()


def test_ctrl_c_saves_the_state_of_the_last_step(world, tmp_path, capsys):
    """Ctrl-C between checkpoints saves the state; --resume continues from that step."""
    import signal

    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 6}]", extra="")
    ctrl_c = lambda info: info.step == 3 and signal.raise_signal(signal.SIGINT)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        train(load_recipe(path, ["train.checkpoint_every=100"]), tmp_path / "run", hooks=[ctrl_c])
    assert "stopped after step 3 of 6; its state is saved: continue with --resume" in capsys.readouterr().err
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["step"] == 3
    seen = []
    train(load_recipe(path, ["train.checkpoint_every=100"]), tmp_path / "run", resume=True,
          hooks=[lambda info: seen.append(info.step)])
    assert seen == [4, 5, 6]
    train(load_recipe(path, ["train.checkpoint_every=100"]), tmp_path / "whole")
    whole, split = weights(tmp_path / "whole" / "main.safetensors"), weights(tmp_path / "run" / "main.safetensors")
    assert all(torch.equal(whole[k], split[k]) for k in whole)


KILLED_RUN = ["train.eval_every_steps=1000", "train.checkpoint_every=3"]


@pytest.fixture(scope="module")
def never_stopped(world, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights of the 24-step mini run, never stopped."""
    folder = tmp_path_factory.mktemp("whole")
    path = mini_recipe(world, folder, stages="[{name: main, steps: 24}]")
    train(load_recipe(path, KILLED_RUN), folder / "run")
    return weights(folder / "run" / "main.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_killed_or_interrupted_train_resumes_bit_identically(world, tmp_path, capsys, never_stopped, how):
    """``affectlab train`` killed (or Ctrl-C'd) part-way, then ``--resume``d, ends with exactly the
    weights of a run never stopped, with the same seed."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 24}]")
    args = ["train", str(path), *KILLED_RUN, "--out", str(tmp_path / "cut")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "affectlab.cli", *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "cut" / "state.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if how == "SIGKILL" else 130) and "Traceback" not in err, err
    assert not (tmp_path / "cut" / "main.safetensors").exists(), "the run finished before it was stopped"
    assert (tmp_path / "cut" / "state.pt").exists()
    assert main([*args, "--resume"]) == 0, capsys.readouterr().err
    cut = weights(tmp_path / "cut" / "main.safetensors")
    assert never_stopped.keys() == cut.keys() and all(torch.equal(never_stopped[k], cut[k]) for k in cut)


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_sigterm_saves_the_state_and_leaves_no_loader_worker(world, tmp_path):
    """SIGTERM, as a job scheduler sends it, stops ``affectlab train`` as Ctrl-C does: a line saying so,
    the last step's state saved for --resume, and the DataLoader's worker processes gone with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 400}]")
    args = ["train", str(path), "train.eval_every_steps=1000", "train.checkpoint_every=3", "data.workers=2",
            "--out", str(tmp_path / "cut")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "affectlab.cli", *args], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "cut" / "state.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = _children(proc.pid)
    assert len(workers) >= 2, "the DataLoader workers were not running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert "its state is saved: continue with --resume" in err and "affectlab: interrupted (SIGTERM)" in err
    assert not (tmp_path / "cut" / "main.safetensors").exists(), "the run finished before it was stopped"
    time.sleep(1)
    assert not [p for p in workers if _alive(p)]


def _alive(pid: int) -> bool:
    """``pid`` runs (exists and is not a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_training_without_validation(world, tmp_path, capsys):
    """One override turns validation off; the run trains and reports no scores."""
    path = mini_recipe(world, tmp_path, stages="[{name: main, steps: 2}]")
    assert main(["train", str(path), "validation=null", "--out", str(tmp_path / "run")]) == 0
    assert "main" in capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["members"]["main"]["validation"] == {} and (tmp_path / "run" / "main.safetensors").exists()
