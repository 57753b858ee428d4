"""affectlab.train.run_folder: what --resume accepts as the same run."""
from __future__ import annotations

from affectlab.train.run_folder import same_run


def test_resume_accepts_other_train_settings_and_a_recipe_saved_before_versions():
    saved = {"name": "mini", "sources": {"a": {"path": "a.csv"}}, "train": {"device": "cpu"}}
    assert same_run(saved, {**saved, "train": {"device": "cuda"}, "version": 1})
    assert not same_run(saved, {**saved, "sources": {"a": {"path": "b.csv"}}, "version": 1})
