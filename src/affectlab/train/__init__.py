"""Training from partially labelled, multi-database data: recipes, the trainer, distillation, calibration.

    from affectlab.train import load_recipe, train
    recipe = load_recipe("configs/teacher-student.yaml", ["stages.student.repeat=2"])
    results = train(recipe, "runs/ts")

See :mod:`affectlab.train.config` for the recipe format and :mod:`affectlab.train.trainer` for the run
directory.
"""
from affectlab.train.config import ConfigError, Recipe, load_recipe
from affectlab.models.meta import InputSpec
from affectlab.train.fitting import StepInfo
from affectlab.train.trainer import train

__all__ = ["ConfigError", "InputSpec", "Recipe", "StepInfo", "load_recipe", "train"]
