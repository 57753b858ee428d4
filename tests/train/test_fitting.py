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


def test_backbone_lr_gives_the_pretrained_trunk_its_own_rate():
    """``optimizer.backbone_lr`` puts every backbone parameter, and nothing else, in a group at that rate;
    the heads' group comes first (the rate the log shows) at ``lr``. Without it there is one group."""
    import copy

    from affectlab.models import create_model
    from affectlab.models.backbones import Backbone
    from affectlab.train.config import load_recipe
    from affectlab.train.fitting import make_optimizer

    recipe = load_recipe(CONFIGS / "default.yaml", ["optimizer.backbone_lr=1e-5"])
    model = create_model("mtl-baseline", backbone="mobilenet_v2", va_bins=20)
    heads, trunk = make_optimizer(recipe, model).param_groups
    backbone = {id(p) for m in model.modules() if isinstance(m, Backbone) for p in m.parameters()}
    assert (heads["lr"], trunk["lr"]) == (3e-4, 1e-5)
    assert {id(p) for p in trunk["params"]} == backbone
    assert not backbone & {id(p) for p in heads["params"]}
    assert len(heads["params"]) + len(trunk["params"]) == len(list(model.parameters()))
    plain = copy.deepcopy(recipe)
    plain.optimizer.backbone_lr = None
    assert [g["lr"] for g in make_optimizer(plain, model).param_groups] == [3e-4]
