"""The fitting loop's checks of what a member trains on."""
from __future__ import annotations

from affectlab.cli import main

from train_world import CONFIGS, TINY, recipe_overrides


def test_a_clip_is_consecutive_frames(world, tmp_path, capsys):
    """Teacher-student's CNN-RNN trains on 32 consecutive frames: a temporal stage on a downsampled source
    (whose neighbouring rows are 5 frames apart) is refused in one line."""
    overrides = [*TINY, *recipe_overrides(world, "teacher-student"), "stages.rnn-teacher.overrides.sources.affwild2_va.downsample=5"]
    code = main(["train", str(CONFIGS / "teacher-student.yaml"), "--out", str(tmp_path / "run"), *overrides])
    err = capsys.readouterr().err
    assert code != 0 and "a clip is 4 consecutive frames, but source 'affwild2_va' is downsampled" in err
