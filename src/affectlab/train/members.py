"""The members a recipe's stages train: one model, ``repeat`` models or k-fold models per stage."""
from __future__ import annotations

from dataclasses import dataclass

from affectlab.train.config import Recipe, Stage


@dataclass
class Member:
    """One model a stage trains."""

    stage: Stage
    recipe: Recipe
    name: str
    seed: int
    fold: int | None = None


def stage_members(recipe: Recipe, stage: Stage, stage_index: int) -> list[Member]:
    """A stage's members: ``<stage>`` alone, ``<stage>-<i>`` (``repeat``: different seeds, the students of
    teacher-student) or ``<stage>-fold<i>`` (k-fold), each seeded by its stage's place and its own."""
    recipe = recipe.for_stage(stage)
    base = recipe.seed + 1000 * stage_index
    if stage.folds is not None:
        return [Member(stage, recipe, f"{stage.name}-fold{i}", base + i, i) for i in range(stage.folds.k)]
    if stage.repeat > 1:
        return [Member(stage, recipe, f"{stage.name}-{i}", base + i) for i in range(stage.repeat)]
    return [Member(stage, recipe, stage.name, base)]


def members_of(recipe: Recipe, stage_name: str) -> list[Member]:
    """The members of the stage named ``stage_name``."""
    index, stage = next((i, s) for i, s in enumerate(recipe.stages) if s.name == stage_name)
    return stage_members(recipe, stage, index)
