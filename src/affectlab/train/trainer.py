"""The trainer: runs a recipe's stages on one CPU, one GPU or many (``torchrun``), resumably.

It knows no paper: stages, losses, sampling and models all come from the recipe. :class:`Training`
orchestrates stages and their members in three rooms a reader can name:

- the run folder (:mod:`affectlab.train.run_folder`): opening, resume checks, progress, the member in
  progress' state, checkpoints and results;
- a member's data (:mod:`affectlab.train.member_data`): training rows, the confidence filter, pseudo
  labels, validation tables and scores, cached features;
- the fitting loop (:mod:`affectlab.train.fitting`): prepare, loop, step, early stop, save state, interrupts.

A stage trains one member, ``repeat`` members (``<stage>-<i>``, different seeds: the students of
teacher-student) or k-fold members (``<stage>-fold<i>``); ``combine`` stages assemble a model from
finished ones. ``--resume`` skips finished members and continues the one in progress exactly where
its last checkpoint left it.

Engineering: bf16 autocast on CUDA, channels_last on CPU and CUDA; DistributedDataParallel when launched by
``torchrun`` (NCCL on GPUs, gloo on CPUs), each rank taking its share of every group's quota; rank 0
evaluates, saves and logs.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from torch import nn

from affectlab.errors import first_line
from affectlab.devices import resolve_device
from affectlab.labels import AU_SETS, LabelSchema, expression_names, schema as make_schema
from affectlab.log import logger
from affectlab.models import AffectModel, create_model, load_model
from affectlab.train.config import ConfigError, Recipe
from affectlab.train.dist import Dist
from affectlab.train.fitting import Fitter, Hook, StepInfo, input_spec
from affectlab.train.member_data import MemberData
from affectlab.train.members import Member, members_of, stage_members
from affectlab.train.monitor import monitored
from affectlab.train.run_folder import RunFolder, flat_scores

__all__ = ["Hook", "StepInfo", "Training", "recipe_schema", "train"]

NO_UNSEEN_DATA = "not scored: every validation row was in some member's training data"


class Training:
    """One ``affectlab train``: a recipe, a run directory, and the processes running it."""

    def __init__(self, recipe: Recipe, out_dir: str | os.PathLike[str], *, resume: bool = False,
                 hooks: Sequence[Hook] = ()):
        self.recipe = recipe
        kind = resolve_device(recipe.train.device)
        self.dist = Dist.from_env(torch.device(kind).type)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if kind == "cuda" else kind)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.schema = recipe_schema(recipe)
        self.folder = RunFolder(Path(out_dir), recipe, self.dist, resume=resume)
        self.data = MemberData(recipe, self.schema, self.device, self.folder)
        self.fitter = Fitter(self.folder, self.data, self.schema, self.device, self.dist, hooks)

    def run(self) -> dict:
        """Every stage's members in order (those finished in an earlier run kept), then the ensembles
        and the final model."""
        try:
            for i, stage in enumerate(self.recipe.stages):
                for member in stage_members(self.recipe, stage, i):
                    if self.folder.done(member.name):
                        continue
                    if stage.combine:
                        result = self._combine(member)
                    else:
                        result = self.fitter.fit(member, self.data.training_data(member), self._model)
                    self.folder.complete(member.name, result)
                    if self.fitter.interrupted:
                        raise KeyboardInterrupt
            results = self._results()
        finally:
            self.folder.close()
            self.dist.close()
        return results

    def _results(self) -> dict:
        """Ensembles scored, the final model named, results.json written (rank 0)."""
        results = {"recipe": self.recipe.name, "paper": self.recipe.paper, "members": self.folder.progress["completed"],
                   "ensembles": {}}
        if self.dist.main:
            for name, ens in self.recipe.ensembles.items():
                members = [m for stage in ens.members for m in members_of(self.recipe, stage)]
                paths = [self.folder.member_path(m.name) for m in members]
                models = [load_model(p, device=str(self.device)) for p in paths]
                scores = self.data.validate(models, self.recipe, members, method=ens.method)
                results["ensembles"][name] = {"members": [str(p) for p in paths], "method": ens.method,
                                              "validation": scores}
                if not scores:
                    results["ensembles"][name]["note"] = NO_UNSEEN_DATA
                    logger.warning(f"ensemble {name!r}: {NO_UNSEEN_DATA}")
                self.folder.metrics.log("ensemble", name, 0, flat_scores(scores, "val"))
            final = self.recipe.final
            if final in self.recipe.ensembles:
                results["final"] = results["ensembles"][final]["members"]
            elif final is not None:
                members = [m.name for m in members_of(self.recipe, final)]
                if len(members) == 1:
                    results["final"] = [str(self.folder.final_copy(members[0]))]
                else:
                    results["final"] = [str(self.folder.member_path(m)) for m in members]
            self.folder.write_results(results)
        self.dist.barrier()
        return results

    # -- a member's model --
    def _model(self, member: Member) -> AffectModel:
        spec = member.recipe.model
        torch.manual_seed(member.seed)
        try:
            model = create_model(spec.name, self.schema, backbone_weights=spec.backbone_weights, **spec.config)
        except (TypeError, ValueError, RuntimeError) as e:  # a model.config value of the wrong type or size
            raise ConfigError(f"model {spec.name!r}: {first_line(e)} (check model.config)") from None
        if member.stage.init_from:
            source = self._best_member(member.stage.init_from)
            if member.fold is not None:
                self._check_init_without_fold(member, source)
            state = safetensors.torch.load_file(self.folder.member_path(source))
            own = model.state_dict()
            fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if not fits:
                raise ConfigError(f"stage {member.stage.name!r}: no weight of stage {member.stage.init_from!r} "
                                  f"fits model {spec.name!r}")
            model.load_state_dict(fits, strict=False)
        return model

    def _check_init_without_fold(self, member: Member, source: str) -> None:
        """k-fold (streaming §4.3.1): a fold member scored on its held-out fold must not start from weights
        that were trained on that fold."""
        init = next(m for m in members_of(self.recipe, member.stage.init_from) if m.name == source)
        rows = self.data.training_rows(init)
        drawn = np.isin(rows.names, [s for group in init.recipe.sampler.values() for s in group.sources])
        seen = set(rows.samples["path"][drawn]) & set(self.data.held_out(member)["path"])
        if seen:
            raise ConfigError(f"stage {member.stage.name!r}: member {member.name!r} starts from {source!r}, which "
                              f"trained on {len(seen)} row(s) of its held-out fold; initialise folds from a stage "
                              f"trained without the split sources (external data) or without init_from")

    def _best_member(self, stage_name: str) -> str:
        """The stage's member with the best validation P (its only member when it has one)."""
        members = [m.name for m in members_of(self.recipe, stage_name)]
        completed = self.folder.progress["completed"]
        scores = {m: monitored(completed.get(m, {}).get("validation", {}), "P") for m in members}
        return max(members, key=lambda m: -math.inf if math.isnan(scores[m]) else scores[m])

    # -- a combined model --
    def _combine(self, member: Member) -> dict:
        spec = member.stage.combine
        model = create_model(spec.model, self.schema, **member.recipe.model.config)
        for submodule, stage_name in spec.members.items():
            part = getattr(model, submodule, None)
            if not isinstance(part, nn.Module):
                raise ConfigError(f"stage {member.stage.name!r}: model {spec.model!r} has no submodule {submodule!r}")
            source = self.folder.member_path(members_of(self.recipe, stage_name)[0].name)
            part.load_state_dict(safetensors.torch.load_file(source))
        self.folder.save_member(member, model, input_spec(member, model), {})
        path = self.folder.member_path(member.name)
        scores = self.data.validate([load_model(path, device=str(self.device))], member.recipe,
                                    [member]) if self.dist.main else {}
        self.folder.metrics.log(member.stage.name, member.name, 0, flat_scores(scores, "val"))
        return {"path": str(path), "validation": scores}


def recipe_schema(recipe: Recipe) -> LabelSchema:
    """The recipe's label schema: its AU set and its expression classes."""
    try:
        base = make_schema(recipe.aus) if isinstance(recipe.aus, str) else make_schema(tuple(recipe.aus))
    except ValueError as e:
        raise ConfigError(f"aus: {e} (sets: {', '.join(AU_SETS)})") from None
    try:
        return LabelSchema(base.au_names, expression_names(recipe.expressions))
    except ValueError as e:
        raise ConfigError(f"expressions: {e}") from None


def train(recipe: Recipe, out_dir: str | os.PathLike[str], *, resume: bool = False,
          hooks: Sequence[Hook] = ()) -> dict:
    """Run every stage of ``recipe`` into ``out_dir``; returns what results.json holds."""
    return Training(recipe, out_dir, resume=resume, hooks=hooks).run()
