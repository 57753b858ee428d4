"""A member's training rows: what reaches its batches."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from affectlab.train import load_recipe, train
from affectlab.train.config import ConfigError
from affectlab.train.member_data import MemberData

from train_world import mini_recipe


def pseudo_recipe(world, tmp_path, unlabelled: str = "videos_of: affwild2"):
    """Aff-Wild2 training videos plus a folder of every frame (the validation video's included, an
    extra frame of a training video and a video of neither split), pseudo-labelled by mined rules."""
    frames = tmp_path / "cropped_aligned"
    shutil.copytree(world.frames, frames)
    shutil.copy(frames / "v1" / "00001.jpg", frames / "v1" / "00013.jpg")
    (frames / "test9").mkdir()
    shutil.copy(frames / "v1" / "00001.jpg", frames / "test9" / "00001.jpg")
    path = mini_recipe(world, tmp_path, stages="""
  - {name: pseudo, steps: 4, pseudo_labels: {rules: {min_support: 1}}}
""")
    text = path.read_text()
    text = text[:text.index("sources:")] + f"""sources:
  affwild2: {{path: {world.abaw}, images: {frames}, split: train}}
  unlabelled: {{path: {frames}, tasks: [], {unlabelled}}}
validation:
  aff-wild2: {{path: {world.abaw}, images: {frames}, split: validation}}
sampler:
  labelled: {{sources: [affwild2], quota: 2}}
  unlabelled: {{sources: [unlabelled], quota: 2}}
""" + text[text.index("data:"):]
    path.write_text(text)
    return load_recipe(path)


def test_no_validation_frame_reaches_a_training_batch(world, tmp_path, monkeypatch):
    """Streaming §3.4's unlabelled frames come from training videos only: the validation video's frames
    (and a video of neither split) never reach the pseudo stage's rows, let alone a batch."""
    tables, batches = {}, []
    rows = MemberData.training_data
    monkeypatch.setattr(MemberData, "training_data",
                        lambda self, member: tables.setdefault(member.name, rows(self, member)))
    train(pseudo_recipe(world, tmp_path), tmp_path / "run", hooks=[lambda i: batches.append(i.index)])
    samples = tables["pseudo"].samples
    videos = set(samples["video"])
    assert videos == {"v1", "v2", "v3"}
    assert str((tmp_path / "cropped_aligned" / "v1" / "00013.jpg").resolve()) in set(samples["path"])
    seen = samples.iloc[np.concatenate(batches)]
    assert len(seen) == 16 and not seen["video"].isin(["v4", "test9"]).any()


def test_videos_of_names_another_training_source(world, tmp_path):
    with pytest.raises(ConfigError, match="videos_of names 'nothing'"):
        train(pseudo_recipe(world, tmp_path, "videos_of: nothing"), tmp_path / "run")


def fold_recipe(world, tmp_path, first: str = "{name: first, steps: 2}"):
    """k = 2 over Aff-Wild2's training and validation videos (streaming §4.3.1), after a first stage."""
    path = mini_recipe(world, tmp_path, stages=f"""
  - {first}
  - {{name: fold, steps: 2, init_from: first, folds: {{sources: [affwild2], k: 2, by: video}},
     overrides: {{sources: {{affwild2: {{split: null}}}}}}}}
""")
    text = path.read_text()
    text = text[:text.index("sources:")] + f"""sources:
  affwild2: {{path: {world.abaw}, images: {world.frames}, split: train}}
  stills: {{path: {world.expr}, tasks: [expr]}}
validation:
  aff-wild2: {{path: {world.abaw}, images: {world.frames}, split: validation}}
sampler:
  all: {{sources: [affwild2, stills], quota: 2}}
""" + text[text.index("data:"):]
    path.write_text(text)
    return load_recipe(path)


def test_a_fold_members_validation_scores_each_row_once(world, tmp_path):
    """The held-out fold holds the validation video's rows: they are scored in the fold's table only,
    so ``all`` (early stopping, the best member) counts no row twice."""
    from affectlab.train.members import members_of
    from affectlab.train.trainer import Training

    recipe = fold_recipe(world, tmp_path)
    training = Training(recipe, tmp_path / "run")
    held_out_v4 = 0
    for member in members_of(recipe, "fold"):
        tables = training.data.validation_tables(member.recipe, [member])
        paths = np.concatenate([t["path"].to_numpy() for t in tables.values()])
        assert len(paths) == len(set(paths))
        held_out_v4 += int(tables[f"fold{member.fold}"]["video"].eq("v4").any())
    training.folder.close()
    assert held_out_v4 == 1


def test_a_fold_member_never_starts_from_weights_trained_on_its_fold(world, tmp_path, capsys):
    """A first stage trained on Aff-Wild2 saw every fold; one trained on external data only did not."""
    with pytest.raises(ConfigError, match="trained on .* row\\(s\\) of its held-out fold"):
        train(fold_recipe(world, tmp_path), tmp_path / "run")
    (tmp_path / "ext").mkdir()
    external = "{name: first, steps: 2, overrides: {sampler: {all: {sources: [stills]}}}}"
    results = train(fold_recipe(world, tmp_path / "ext", external), tmp_path / "ext" / "run")
    assert list(results["members"]) == ["first", "fold-fold0", "fold-fold1"]

