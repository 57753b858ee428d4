"""The trainer: runs a recipe's stages on one CPU, one GPU or many (``torchrun``), resumably.

It knows no paper: stages, losses, sampling and models all come from the recipe. A run directory
holds everything::

    recipe.yaml      the recipe as run (overrides applied)
    state.pt         the member in progress: step, weights, optimiser, scheduler, RNG, early stopping
    progress.json    finished members, their checkpoints and validation scores
    <member>.safetensors   each trained model (affectlab.load_model reads it)
    metrics.csv      stage, member, step, name, value (losses, learning rate, validation scores)
    results.json     per member and ensemble validation scores, and the final model(s)

A stage trains one member, ``repeat`` members (``<stage>-<i>``, different seeds: the students of
teacher-student) or k-fold members (``<stage>-fold<i>``); ``combine`` stages assemble a model from
finished ones. ``--resume`` skips finished members and continues the one in progress exactly where
its last checkpoint left it: batches are a pure function of the step (affectlab.data.sampling) and
augmentation a pure function of the sample's stream position, so the resumed run ends with the
same weights as an uninterrupted one.

Engineering: bf16 autocast on CUDA, channels_last on CPU and CUDA; DistributedDataParallel when launched by
``torchrun`` (NCCL on GPUs, gloo on CPUs), each rank taking its share of every group's quota; rank 0
evaluates, saves and logs.
"""
from __future__ import annotations

import csv
import math
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import safetensors.torch
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from affectlab.data.dataset import FaceDataset
from affectlab.data.table import soft_columns
from affectlab.data.sampling import MultiSourceBatchSampler
from affectlab.errors import AffectlabError, DataError
from affectlab.labels import AU_SETS, LabelSchema, expression_names, schema as make_schema
from affectlab.devices import resolve_device
from affectlab.inference.batch import collect_outputs, evaluate, frame_features
from affectlab.inference.outputs import expr_probabilities
from affectlab.log import logger
from affectlab.jsonfile import json_ready, write_atomic, write_json
from affectlab.models import AffectModel, Prediction, create_model, load_model, save_checkpoint
from affectlab.models.meta import InputSpec
from affectlab.scoring import score_tables
from affectlab.train import data as tdata
from affectlab.train.config import ConfigError, Confident, Distill, Recipe, Stage
from affectlab.train.distill import CachedTeacher, ensemble_teacher, student_loss
from affectlab.train.monitor import monitor_value
from affectlab.train.objective import Objective, flatten_time, label_masks
from affectlab.train.pseudo import apply_rules, mine_au_expr_rules, teacher_labels


NO_UNSEEN_DATA = "not scored: every validation row was in some member's training data"


@dataclass
class StepInfo:
    """What a hook sees after every optimiser step (on every rank): ``index`` holds this rank's table rows."""

    stage: str
    member: str
    step: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    index: list[int]
    model: nn.Module


Hook = Callable[[StepInfo], None]


@dataclass
class EarlyStop:
    """Early stopping's state: the best monitored score so far, its step and weights, evaluations since."""

    best: float = -math.inf
    best_step: int = 0
    bad: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def to_state(self) -> dict:
        """A plain dict of numbers and tensors (what state.pt may hold)."""
        return {"best": self.best, "best_step": self.best_step, "bad": self.bad, "best_state": self.best_state}

    @classmethod
    def from_state(cls, state: dict) -> "EarlyStop":
        return cls(**state)


@dataclass
class Member:
    """One model a stage trains."""

    stage: Stage
    recipe: Recipe
    name: str
    seed: int
    fold: int | None = None


@dataclass
class Fitting:
    """A member in training: what its steps need, and the step it has reached."""

    member: Member
    model: AffectModel
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    spec: InputSpec
    objective: Objective
    pools: list
    probe: MultiSourceBatchSampler  # the sampler's identity (its rows), stored in state.pt
    group_tasks: torch.Tensor
    steps_per_epoch: int
    total: int
    channels_last: bool
    optimizer: torch.optim.Optimizer
    scheduler: object
    teacher: Callable[[dict, torch.Tensor], Prediction] | None
    step: int
    early: EarlyStop
    val_frames: dict[str, np.ndarray] | None


# --- processes and devices ----------------------------------------------------------------------


@dataclass
class Dist:
    """This process's place in a ``torchrun`` launch (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this run started the process group, so it ends it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_kind: str) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
        return cls(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")), owns)

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def share(self, value: object) -> object:
        """Rank 0's ``value`` on every rank."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


# --- small files ----------------------------------------------------------------------------------


def _flat(scores: dict, prefix: str) -> dict[str, float]:
    """Nested scores -> {"prefix/a/b": value} for the metrics log."""
    out: dict[str, float] = {}
    for k, v in scores.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}/{k}"))
        elif isinstance(v, (int, float)) and v is not None:
            out[f"{prefix}/{k}"] = float(v)
    return out


class MetricsLog:
    """metrics.csv in long form (stage, member, step, name, value), plus TensorBoard when it is installed."""

    COLUMNS = ("time", "stage", "member", "step", "name", "value")

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled, self.tb = path, enabled, None
        if not enabled:
            return
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(self.COLUMNS)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tb = SummaryWriter(str(path.parent / "tensorboard"))

    def forget_after(self, member: str, step: int) -> None:
        """On resume: drop what the interrupted run logged after its last checkpoint."""
        if not self.enabled:
            return
        df = pd.read_csv(self.path, dtype={"member": str, "stage": str})
        df = df.dropna(subset=["step", "name"])  # a line cut short by a killed run
        df = df[(df["member"] != member) | (df["step"] <= step)]
        df.to_csv(self.path, index=False)

    def log(self, stage: str, member: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        now = time.time()
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            for name, value in values.items():
                writer.writerow((f"{now:.3f}", stage, member, step, name, value))
        if self.tb is not None:
            for name, value in values.items():
                self.tb.add_scalar(f"{member}/{name}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# --- the run ----------------------------------------------------------------------------------------


class Training:
    """One ``affectlab train``: a recipe, a run directory, and the processes running it."""

    def __init__(self, recipe: Recipe, out_dir: str | os.PathLike[str], *, resume: bool = False,
                 hooks: Sequence[Hook] = ()):
        self.recipe, self.out, self.hooks = recipe, Path(out_dir), list(hooks)
        kind = resolve_device(recipe.train.device)
        self.dist = Dist.from_env(torch.device(kind).type)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if kind == "cuda" else kind)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.schema = recipe_schema(recipe)
        self.cache: tdata.TableCache = {}
        self._rows: dict[str, tdata.SourceTables] = {}  # each member's training rows, once
        self.progress = self._open(resume)
        self.metrics = MetricsLog(self.out / "metrics.csv", self.dist.main)
        self.interrupted = False  # Ctrl-C came during a member's last step: stop once it is saved

    # -- run directory --
    def _open(self, resume: bool) -> dict:
        progress_file = self.out / "progress.json"
        recipe_file = self.out / "recipe.yaml"
        check_run_folder(self.out)
        if progress_file.exists() and not resume:
            raise AffectlabError(f"{self.out} already holds a run; pass --resume to continue it "
                                 "or choose another --out")
        if resume:
            check_resumable(self.out)
        if resume and recipe_file.exists():
            saved = _read_recipe_file(recipe_file)
            if _without_train(saved) != _without_train(self.recipe.raw):
                raise ConfigError(f"{recipe_file}: the recipe differs from the one this run started with "
                                  "(only train.* settings may change on --resume)")
        self.dist.barrier()
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_atomic(recipe_file, lambda p: p.write_text(yaml.safe_dump(self.recipe.raw, sort_keys=False)))
        self.dist.barrier()
        if resume and progress_file.exists():
            return _read_progress(progress_file)
        return {"recipe": self.recipe.name, "completed": {}}

    def member_path(self, member: str) -> Path:
        return self.out / f"{member}.safetensors"

    def stage_members(self, stage_name: str) -> list[str]:
        return [m.name for m in self.stage_member_list(stage_name)]

    def stage_member_list(self, stage_name: str) -> list[Member]:
        index, stage = next((i, s) for i, s in enumerate(self.recipe.stages) if s.name == stage_name)
        return self.members(stage, index)

    def members(self, stage: Stage, stage_index: int) -> list[Member]:
        recipe = self.recipe.for_stage(stage)
        base = recipe.seed + 1000 * stage_index
        if stage.folds is not None:
            return [Member(stage, recipe, f"{stage.name}-fold{i}", base + i, i) for i in range(stage.folds.k)]
        if stage.repeat > 1:
            return [Member(stage, recipe, f"{stage.name}-{i}", base + i) for i in range(stage.repeat)]
        return [Member(stage, recipe, stage.name, base)]

    # -- everything --
    def run(self) -> dict:
        try:
            for i, stage in enumerate(self.recipe.stages):
                for member in self.members(stage, i):
                    if member.name in self.progress["completed"] and self.member_path(member.name).exists():
                        continue
                    result = self._combine(member) if stage.combine else self._fit(member)
                    self.progress["completed"][member.name] = result
                    if self.dist.main:
                        write_json(self.out / "progress.json", self.progress)
                    self.dist.barrier()
                    if self.interrupted:
                        raise KeyboardInterrupt
            results = self._results()
        finally:
            self.metrics.close()
            self.dist.close()
        return results

    def _results(self) -> dict:
        """Ensembles scored, the final model named, results.json written (rank 0)."""
        results = {"recipe": self.recipe.name, "paper": self.recipe.paper, "members": self.progress["completed"],
                   "ensembles": {}}
        if self.dist.main:
            for name, ens in self.recipe.ensembles.items():
                members = [m for stage in ens.members for m in self.stage_member_list(stage)]
                paths = [self.member_path(m.name) for m in members]
                models = [load_model(p, device=str(self.device)) for p in paths]
                scores = self._validate(models, self.recipe, members, method=ens.method)
                results["ensembles"][name] = {"members": [str(p) for p in paths], "method": ens.method,
                                              "validation": scores}
                if not scores:
                    results["ensembles"][name]["note"] = NO_UNSEEN_DATA
                    logger.warning(f"ensemble {name!r}: {NO_UNSEEN_DATA}")
                self.metrics.log("ensemble", name, 0, _flat(scores, "val"))
            final = self.recipe.final
            if final in self.recipe.ensembles:
                results["final"] = results["ensembles"][final]["members"]
            elif final is not None:
                members = self.stage_members(final)
                if len(members) == 1:
                    target = self.out / "model.safetensors"
                    write_atomic(target, lambda p: shutil.copyfile(self.member_path(members[0]), p))
                    results["final"] = [str(target)]
                else:
                    results["final"] = [str(self.member_path(m)) for m in members]
            write_json(self.out / "results.json", results)
        self.dist.barrier()
        return results

    # -- data --
    def _training_rows(self, member: Member) -> tdata.SourceTables:
        """The member's training rows: its recipe's sources, minus its held-out fold, with the
        expression labels of ``confident`` sources kept where a finished model is sure of them."""
        if member.name not in self._rows:
            self._rows[member.name] = self._read_training_rows(member)
        return self._rows[member.name]

    def _read_training_rows(self, member: Member) -> tdata.SourceTables:
        tables = tdata.read_sources(member.recipe.sources, self.schema, self.cache)
        for name, source in member.recipe.sources.items():
            if source.confident is not None:
                tables = self._keep_confident(member, tables, name, source.confident)
        if member.fold is None:
            return tables
        keep = tdata.fold_of_rows(tables, member.stage.folds) != member.fold
        return tdata.SourceTables(tables.samples[keep].reset_index(drop=True), tables.names[keep], tables.skipped)

    def _keep_confident(self, member: Member, tables: tdata.SourceTables, name: str,
                        spec: Confident) -> tdata.SourceTables:
        """Streaming §3.4: a source's expression labels where ``spec.stage``'s model gives the labelled
        class at least ``spec.threshold`` ("images that achieve a high confidence on the original
        Aff-Wild2-trained model"); the others masked."""
        if spec.stage not in self._finished_stages():
            raise ConfigError(f"source {name!r} is filtered by stage {spec.stage!r}'s model, which stage "
                              f"{member.stage.name!r} comes before")
        rows = np.flatnonzero((tables.names == name) & (tables.samples["expr"].to_numpy() >= 0))
        if len(rows) == 0:
            return tables
        sub = tables.samples.iloc[rows]
        probs = expr_probabilities(self._outputs(self._single_model(spec.stage), sub, member.recipe)["expr"])
        unsure = probs[np.arange(len(rows)), sub["expr"].to_numpy()] < spec.threshold
        samples = tables.samples.copy()
        samples.loc[samples.index[rows[unsure]], "expr"] = -1
        soft = [c for c in soft_columns(self.schema) if c in samples]
        samples.loc[samples.index[rows[unsure]], soft] = np.nan
        self.metrics.log(member.stage.name, member.name, 0, {f"filter/{name}_expr_kept": float((~unsure).sum()),
                                                             f"filter/{name}_expr_masked": float(unsure.sum())})
        return tdata.SourceTables(samples, tables.names, tables.skipped)

    def _finished_stages(self) -> set[str]:
        return {s.name for s in self.recipe.stages
                if all(m in self.progress["completed"] for m in self.stage_members(s.name))}

    def _training_data(self, member: Member) -> tdata.SourceTables:
        """The member's training rows with pseudo labels where its stage adds them."""
        tables = self._training_rows(member)
        if member.stage.pseudo_labels is not None:
            tables = self._pseudo_label(member, tables)
        return tables

    def _validation(self, recipe: Recipe, members: Sequence[Member]) -> dict[str, pd.DataFrame]:
        """The validation tables of model(s) trained as ``members``: a fold member's own held-out fold,
        and the recipe's validation sources without any row a fold member trained on (k-fold trains
        on the Aff-Wild2 validation videos; an ensemble's fold members together may have seen every
        row). Other members train on their recipe's training sources, which validation is kept apart
        from by the recipe (an Aff-Wild2 frame may train one task and validate another)."""
        tables = {name: tdata.read_one(src, self.schema, self.cache).samples for name, src in recipe.validation.items()}
        if len(members) == 1 and members[0].fold is not None:
            member = members[0]
            all_rows = tdata.read_sources(member.recipe.sources, self.schema, self.cache)
            held_out = tdata.fold_of_rows(all_rows, member.stage.folds) == member.fold
            tables[f"fold{member.fold}"] = all_rows.samples[held_out].reset_index(drop=True)
        seen = set().union(*(self._training_rows(m).samples["path"] for m in members if m.fold is not None))
        tables = {k: v[~v["path"].isin(seen)].reset_index(drop=True) for k, v in tables.items()}
        return {k: v for k, v in tables.items() if len(v)}

    def _pseudo_label(self, member: Member, tables: tdata.SourceTables) -> tdata.SourceTables:
        """Streaming §3.4: fill missing labels from mined AU→EXPR rules and a confident teacher."""
        spec = member.stage.pseudo_labels
        samples, names = tables.samples, tables.names
        labelled = np.zeros(len(samples), dtype=bool)
        for task in ("au", "expr", "va"):
            labelled |= tdata.labelled(samples, self.schema, task)
        # a folder of every frame (unlabelled source) repeats the labelled ones: those keep their own labels
        repeat = ~labelled & samples["path"].isin(set(samples["path"][labelled])).to_numpy()
        samples, names = samples[~repeat].reset_index(drop=True), names[~repeat]
        added: dict[str, float] = {"pseudo/unlabelled_rows": float((~labelled).sum() - repeat.sum())}
        if spec.rules is not None:
            rules = mine_au_expr_rules(samples, self.schema, spec.rules.min_support, spec.rules.min_confidence)
            samples, n = apply_rules(samples, self.schema, rules)
            added.update({"pseudo/rules": float(len(rules)), "pseudo/expr_from_rules": float(n)})
        if spec.teacher is not None:
            teacher = self._single_model(spec.teacher)
            outputs = self._outputs(teacher, samples, member.recipe)
            samples, counts = teacher_labels(samples, self.schema, outputs["au"], outputs["expr"], spec.threshold,
                                             tuple(spec.tasks))
            added.update({f"pseudo/{k}_from_teacher": float(v) for k, v in counts.items()})
        self.metrics.log(member.stage.name, member.name, 0, added)
        return tdata.SourceTables(samples, names, tables.skipped)

    def _single_model(self, stage_name: str) -> AffectModel:
        members = self.stage_members(stage_name)
        if len(members) != 1:
            raise ConfigError(f"stage {stage_name!r} has {len(members)} members; a teacher must be a single model")
        return load_model(self.member_path(members[0]), schema=self.schema, device=str(self.device))

    def _outputs(self, model: AffectModel, samples: pd.DataFrame, recipe: Recipe) -> dict[str, np.ndarray]:
        """A finished model's raw outputs on every row (teacher soft labels, pseudo labels)."""
        return collect_outputs(model, samples, InputSpec.of(model), batch_size=recipe.data.eval_batch_size,
                               workers=recipe.data.workers, device=self.device, autocast=self._amp(recipe))

    def _amp(self, recipe: Recipe) -> bool:
        return use_amp(recipe, self.device)

    # -- model --
    def _model(self, member: Member) -> AffectModel:
        spec = member.recipe.model
        torch.manual_seed(member.seed)
        try:
            model = create_model(spec.name, self.schema, backbone_weights=spec.backbone_weights, **spec.config)
        except (TypeError, ValueError, RuntimeError) as e:  # a model.config value of the wrong type or size
            raise ConfigError(f"model {spec.name!r}: {_first_line(e)} (check model.config)") from None
        if member.stage.init_from:
            state = safetensors.torch.load_file(self.member_path(self._best_member(member.stage.init_from)))
            own = model.state_dict()
            fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if not fits:
                raise ConfigError(f"stage {member.stage.name!r}: no weight of stage {member.stage.init_from!r} "
                                  f"fits model {spec.name!r}")
            model.load_state_dict(fits, strict=False)
        return model

    def _best_member(self, stage_name: str) -> str:
        """The stage's member with the best validation P (its only member when it has one)."""
        members = self.stage_members(stage_name)
        scores = {m: self._monitor(self.progress["completed"].get(m, {}).get("validation", {}), "P") for m in members}
        return max(members, key=lambda m: -math.inf if math.isnan(scores[m]) else scores[m])

    def _frame_features(self, member: Member, model: AffectModel, samples: pd.DataFrame,
                        spec: InputSpec) -> np.ndarray:
        """Each row's frame features from the member's frozen CNN, once per frame (``cache_features``)."""
        if not hasattr(model, "frame_features") or not model.config.get("freeze_backbone", False):
            raise ConfigError(f"stage {member.stage.name!r}: cache_features needs a temporal model with a "
                              f"frozen CNN (cnn-rnn, freeze_backbone: true), not {model.model_name!r}")
        return frame_features(model, samples, spec, batch_size=member.recipe.data.eval_batch_size,
                              workers=member.recipe.data.workers, device=self.device, autocast=self._amp(member.recipe))

    def _input_spec(self, member: Member, model: AffectModel) -> InputSpec:
        data = member.recipe.data
        layout_views = {"BVCHW": 2}.get(model.input_layout, 1)
        if len(data.views) != layout_views:
            raise ConfigError(f"model {model.model_name!r} takes {layout_views} view(s) per face; "
                              f"data.views has {len(data.views)}")
        clip = int(model.config["seq_len"]) if model.input_layout == "BTCHW" else 0
        return InputSpec(data.input_size, data.margin, tuple(data.views), data.image_context, clip,
                         model.paper.mean, model.paper.std, data.crop_framing)

    def _save(self, member: Member, model: AffectModel, spec: InputSpec, extra: dict) -> None:
        if self.dist.main:
            save_checkpoint(model, self.member_path(member.name), input_size=spec.size, mean=spec.mean,
                            std=spec.std, extra={"recipe": self.recipe.name, "paper": self.recipe.paper,
                                                     "stage": member.stage.name, "member": member.name,
                                                     "crop": spec.to_extra(), **extra})
        self.dist.barrier()

    def _validate(self, models: list[AffectModel], recipe: Recipe, members: Sequence[Member], method: str = "mean",
                  spec: InputSpec | None = None, frames: dict[str, np.ndarray] | None = None) -> dict:
        """Scores per validation source and, with several sources, for all of them together (``all``),
        on rows none of ``members`` (the models' training) saw.

        ``spec``: the input of a model in training (checkpoints carry their own); ``frames``: each
        table's cached frame features (``cache_features``)."""
        tables = self._validation(recipe, members)
        out, preds, labels = {}, [], []
        for name, samples in tables.items():
            ev = evaluate(models, samples, method=method, batch_size=recipe.data.eval_batch_size,
                          workers=recipe.data.workers, device=self.device, autocast=self._amp(recipe), spec=spec,
                          frames=frames and frames[name])
            out[name] = ev.scores
            preds.append(ev.predictions[ev.readable])
            labels.append(samples[ev.readable])
        if len(tables) > 1:
            out["all"] = score_tables(pd.concat(preds, ignore_index=True), pd.concat(labels, ignore_index=True),
                                      self.schema)
        return out

    def _monitor(self, scores: dict, monitor: str) -> float:
        key = "all" if "all" in scores else next(iter(scores), None)
        return monitor_value(scores[key], monitor) if key else float("nan")

    # -- a combined model --
    def _combine(self, member: Member) -> dict:
        spec = member.stage.combine
        model = create_model(spec.model, self.schema, **member.recipe.model.config)
        for submodule, stage_name in spec.members.items():
            part = getattr(model, submodule, None)
            if not isinstance(part, nn.Module):
                raise ConfigError(f"stage {member.stage.name!r}: model {spec.model!r} has no submodule {submodule!r}")
            source = self.member_path(self.stage_members(stage_name)[0])
            part.load_state_dict(safetensors.torch.load_file(source))
        input_spec = self._input_spec(member, model)
        self._save(member, model, input_spec, {})
        scores = self._validate([load_model(self.member_path(member.name), device=str(self.device))], member.recipe,
                                [member]) if self.dist.main else {}
        self.metrics.log(member.stage.name, member.name, 0, _flat(scores, "val"))
        return {"path": str(self.member_path(member.name)), "validation": scores}

    # -- training one member --
    def _fit(self, member: Member) -> dict:
        """Train one member: prepare it (or restore it), run its steps, save it."""
        tables = self._training_data(member)
        fit = self._prepare(member, tables)
        loader = self._loader(fit, tables)
        scores, unreadable = self._loop(fit, loader)
        return self._finish(fit, tables, scores, unreadable)

    def _prepare(self, member: Member, tables: tdata.SourceTables) -> Fitting:
        """The member's model, objective, sampler, optimiser, schedule and teacher, at its restored step."""
        recipe, stage = member.recipe, member.stage
        model = self._model(member).to(self.device)
        spec = self._input_spec(member, model)
        try:
            objective = Objective(recipe.loss, self.schema, tables.samples,
                                  has_va_bins=bool(model.config.get("va_bins", 0)))
            pools = tdata.group_pools(recipe.sampler, tables, self.schema)
            probe = MultiSourceBatchSampler(pools, member.seed, rank=self.dist.rank, world_size=self.dist.world_size)
        except ValueError as e:
            raise ConfigError(f"stage {stage.name!r}: {e}") from None
        steps_per_epoch = probe.steps_per_epoch()
        total = stage.steps if stage.steps is not None else max(1, round(stage.epochs * steps_per_epoch))
        # channels_last: the GPU's preferred layout, and +50 % images/s on this project's CPU (bench/training.py)
        channels_last = model.input_layout == "BCHW" and recipe.train.channels_last in ("on", "auto")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(recipe, [p for p in model.parameters() if p.requires_grad])
        scheduler = _scheduler(recipe, optimizer, total, steps_per_epoch)
        teacher = self._teacher(member, tables.samples)
        step, early = self._restore(member, model, optimizer, scheduler, probe)
        if step == 0 and recipe.model.backbone_weights is None and not stage.init_from and self.dist.main:
            logger.warning(f"{member.name}: {recipe.model.name} starts from random weights "
                           "(model.backbone_weights=imagenet starts it from ImageNet)")
        net: nn.Module = model
        if self.dist.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        val_frames = None
        if stage.cache_features:
            val_frames = {name: self._frame_features(member, model, samples, spec)
                          for name, samples in self._validation(recipe, [member]).items()}
        return Fitting(member, model, net, spec, objective, pools, probe, torch.as_tensor(tdata.group_tasks(recipe.sampler)),
                       steps_per_epoch, total, channels_last, optimizer, scheduler, teacher, step, early, val_frames)

    def _loader(self, fit: Fitting, tables: tdata.SourceTables) -> DataLoader:
        """Batches from the fitting's step on: faces, or each frame's cached CNN features (``cache_features``)."""
        member, recipe, spec = fit.member, fit.member.recipe, fit.spec
        features = self._frame_features(member, fit.model, tables.samples, spec) if member.stage.cache_features else None
        dataset = FaceDataset(tables.samples, self.schema, spec, augmentation=recipe.data.augment, seed=member.seed,
                              sources=tables.names.tolist(), features=features)
        sampler = MultiSourceBatchSampler(fit.pools, member.seed, rank=self.dist.rank, world_size=self.dist.world_size,
                                          start_step=fit.step)
        workers = recipe.data.workers
        return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator(), prefetch_factor=4 if workers else None)

    def _loop(self, fit: Fitting, loader: DataLoader) -> tuple[dict, set[str]]:
        """The steps: train, log, validate, stop early, save the state; Ctrl-C saves it after the step in
        progress. Returns the last validation scores and the unreadable images met."""
        member, recipe, stage = fit.member, fit.member.recipe, fit.member.stage
        eval_every = recipe.train.eval_every_steps or max(1, round(recipe.train.eval_every * fit.steps_per_epoch))
        validating = self.dist.main and bool(recipe.validation or member.fold is not None)
        bar = tqdm(total=fit.total, initial=fit.step, desc=member.name, dynamic_ncols=True, file=sys.stderr,
                   disable=not (recipe.train.progress and self.dist.main))
        running: dict[str, list[float]] = {}
        unreadable: set[str] = set()
        scores: dict = {}
        fit.model.train()
        batches = iter(loader)
        interrupt = DeferredInterrupt(enabled=self.dist.world_size == 1)
        try:
            while fit.step < fit.total:
                values, lr, index = self._step(fit, next(batches), unreadable)
                for hook in self.hooks:
                    hook(StepInfo(stage.name, member.name, fit.step, fit.total, values, lr, index, fit.model))
                for k, v in values.items():
                    running.setdefault(k, []).append(v)
                bar.update(1)
                if fit.step % recipe.train.log_every == 0 or fit.step == fit.total:
                    self._log_running(fit, running, lr, len(unreadable), bar)
                stop = False
                if fit.step % eval_every == 0 or fit.step == fit.total:
                    scores = self._validate([fit.model], recipe, [member], spec=fit.spec,
                                            frames=fit.val_frames) if validating else {}
                    self.metrics.log(stage.name, member.name, fit.step, _flat(scores, "val"))
                    stop = stage.early_stopping is not None and self._early_stop(fit.early, scores, stage, fit.model,
                                                                                 fit.step)
                if fit.step % recipe.train.checkpoint_every == 0 and fit.step < fit.total and not stop:
                    self._save_state(fit)
                if stop:
                    break
                if interrupt.requested:
                    raise KeyboardInterrupt
        except (KeyboardInterrupt, RuntimeError):
            if not interrupt.whole:
                raise
            # Ctrl-C: the loader workers stopped too (a RuntimeError here), but the last step is whole
            self._save_state(fit)
            logger.warning(f"{member.name}: stopped after step {fit.step} of {fit.total}; its state is saved: "
                           "continue with --resume")
            raise KeyboardInterrupt from None
        finally:
            interrupt.close()
            del batches
            bar.close()
        self.interrupted = interrupt.requested
        return scores, unreadable

    def _step(self, fit: Fitting, batch: dict, unreadable: set[str]) -> tuple[dict[str, float], float, list[int]]:
        """One optimiser step on a batch: (loss and its parts, learning rate, the batch's table rows)."""
        recipe = fit.member.recipe
        self._check_corrupt(batch, recipe.data.on_corrupt, unreadable)
        batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        loss, parts = training_step(fit.net, batch, fit.objective, fit.optimizer, fit.group_tasks,
                                    amp=self._amp(recipe), channels_last=fit.channels_last, teacher=fit.teacher,
                                    distill=fit.member.stage.distill, grad_clip=recipe.train.grad_clip)
        fit.scheduler.step()
        fit.step += 1
        values = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
        return values, fit.optimizer.param_groups[0]["lr"], batch["index"].tolist()

    def _log_running(self, fit: Fitting, running: dict[str, list[float]], lr: float, unreadable: int, bar: tqdm) -> None:
        """The mean losses since the last log line: on the progress bar and in metrics.csv."""
        means = {k: float(np.mean(v)) for k, v in running.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()} | {"lr": f"{lr:.2e}"}, refresh=False)
        self.metrics.log(fit.member.stage.name, fit.member.name, fit.step, {
            **{f"train/{k}": v for k, v in means.items()}, "train/lr": lr,
            "train/epoch": fit.step / fit.steps_per_epoch, "train/unreadable_images": float(unreadable)})
        running.clear()

    def _finish(self, fit: Fitting, tables: tdata.SourceTables, scores: dict, unreadable: set[str]) -> dict:
        """The best weights back (early stopping), the member's checkpoint, its summary for progress.json."""
        member = fit.member
        if member.stage.early_stopping is not None and fit.early.best_state is not None:
            fit.model.load_state_dict(fit.early.best_state)
            if self.dist.main and bool(member.recipe.validation or member.fold is not None):
                scores = self._validate([fit.model], member.recipe, [member], spec=fit.spec, frames=fit.val_frames)
        self._save(member, fit.model, fit.spec, {"step": fit.step, "validation": json_ready(scores),
                                                 "unreadable_images": sorted(unreadable)})
        if self.dist.main and (self.out / "state.pt").exists():
            (self.out / "state.pt").unlink()
        if unreadable and self.dist.main:
            logger.warning(f"{member.name}: {len(unreadable)} unreadable image(s) skipped, "
                           f"e.g. {sorted(unreadable)[0]}")
        return {"path": str(self.member_path(member.name)), "steps": fit.step, "validation": scores,
                "unreadable_images": len(unreadable), "training_rows": len(tables.samples)}

    def _restore(self, member: Member, model: AffectModel, optimizer, scheduler,
                 sampler: MultiSourceBatchSampler) -> tuple[int, EarlyStop]:
        """(step, early-stopping state): from state.pt when it holds this member, else a fresh start."""
        early = EarlyStop()
        state_file = self.out / "state.pt"
        if not state_file.exists():
            return 0, early
        saved = read_state(state_file)
        if saved["member"] != member.name:
            return 0, early
        if saved["sampler"] != sampler.state_dict():
            raise AffectlabError(f"{state_file}: the training data changed since this checkpoint "
                                 "(different rows per sampler group); cannot resume exactly")
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"]["torch"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise DataError(state_file, f"does not fit this run's model or optimiser ({_first_line(e)}); "
                                        f"{_MOVE_STATE}") from None
        if self.device.type == "cuda" and "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], self.device)
        if self.dist.main:
            self.metrics.forget_after(member.name, int(saved["step"]))
        return int(saved["step"]), EarlyStop.from_state(saved["early"])

    def _check_corrupt(self, batch: dict, policy: str, seen: set[str]) -> None:
        """Unreadable images: stop with the file named (``on_corrupt: fail``) or count and warn once each."""
        if not bool(batch["corrupt"].any()):
            return
        for error in (e for e in batch["error"] if e):
            for one in error.split("; "):
                path, _, reason = one.partition(": ")
                if policy == "fail":
                    raise DataError(path, f"{reason} (set data.on_corrupt=skip to skip unreadable images)")
                if path not in seen and self.dist.main:
                    logger.warning(f"skipping unreadable image {path}: {reason}")
                seen.add(path)

    def _early_stop(self, early: EarlyStop, scores: dict, stage: Stage, model: AffectModel, step: int) -> bool:
        """Track the best validation score (rank 0 decides, every rank follows)."""
        decision = None
        if self.dist.main:
            value = self._monitor(scores, stage.early_stopping.monitor)
            if math.isnan(value):
                raise AffectlabError(f"stage {stage.name!r}: early stopping monitors "
                                     f"{stage.early_stopping.monitor!r}, which the validation data does not give")
            if value > early.best:
                early.best, early.best_step, early.bad = value, step, 0
            else:
                early.bad += 1
            decision = (early.bad >= stage.early_stopping.patience, early.best_step == step)
        stop, improved = self.dist.share(decision)
        if improved:
            early.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return stop

    def _save_state(self, fit: Fitting) -> None:
        """state.pt: everything --resume needs to continue this member exactly (rank 0 writes it)."""
        if self.dist.main:
            rng = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
            state = {"member": fit.member.name, "step": fit.step, "model": fit.model.state_dict(),
                     "optimizer": fit.optimizer.state_dict(), "scheduler": fit.scheduler.state_dict(), "rng": rng,
                     "early": fit.early.to_state(), "sampler": fit.probe.state_dict()}
            write_atomic(self.out / "state.pt", lambda p: torch.save(state, p))
        self.dist.barrier()

    def _teacher(self, member: Member, samples: pd.DataFrame) -> Callable[[dict, torch.Tensor], Prediction] | None:
        """The distillation teacher as ``(batch, image) -> Prediction`` (online or cached outputs)."""
        spec = member.stage.distill
        if spec is None:
            return None
        teachers = [self._single_model(name) for name in spec.teachers]
        keys = ("au", "expr", "va", "va_bins")
        if spec.teacher_outputs == "cached":
            if any(t.input_layout != "BCHW" for t in teachers):
                raise ConfigError("cached teacher outputs need single-image (BCHW) teachers; "
                                  "use teacher_outputs=online")
            outs = [self._outputs(t, samples, member.recipe) for t in teachers]
            cached = CachedTeacher(ensemble_teacher([{k: torch.from_numpy(o[k]) for k in keys if k in o}
                                                     for o in outs]))
            return lambda batch, image: cached(batch["index"])

        def online(batch: dict, image: torch.Tensor) -> Prediction:
            with torch.no_grad():
                preds = [t(image) for t in teachers]
            out = ensemble_teacher([{k: getattr(p, k) for k in keys} for p in preds])
            return Prediction(au=out["au"], expr=out["expr"], va=out["va"], va_bins=out.get("va_bins"))
        return online


# --- run directories: resuming and stopping ---------------------------------------------------------

STATE_KEYS = ("member", "step", "model", "optimizer", "scheduler", "rng", "early", "sampler")
_MOVE_STATE = "move it away to restart the member in progress (finished members are kept)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_run_folder(out: Path) -> None:
    """``--out`` must be a folder (or not exist yet)."""
    if out.exists() and not out.is_dir():
        raise AffectlabError(f"{out}: the run directory (--out) is a file; give a folder")


def check_resumable(out: Path) -> None:
    """``--resume`` needs a run there: without one it would silently start a fresh, full training."""
    if not out.is_dir():
        raise AffectlabError(f"{out}: no run to resume (the folder does not exist); drop --resume to start one")
    if not any((out / name).exists() for name in ("recipe.yaml", "progress.json", "state.pt")):
        raise AffectlabError(f"{out}: no run to resume (no recipe.yaml, progress.json or state.pt); "
                             "drop --resume to start one")


def _read_recipe_file(path: Path) -> dict:
    """The recipe a run started with, as saved in its folder."""
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(path, f"damaged recipe of this run ({_first_line(e)})") from None
    if not isinstance(saved, dict):
        raise DataError(path, "damaged recipe of this run (not a YAML mapping)")
    return saved


def _read_progress(path: Path) -> dict:
    """progress.json: the finished members of a run."""
    from affectlab.jsonfile import read_json

    progress = read_json(path)
    if not isinstance(progress, dict) or not isinstance(progress.get("completed"), dict):
        raise DataError(path, 'not the progress file of a run (expected {"recipe", "completed": {...}})')
    return progress


def read_state(path: Path) -> dict:
    """The state of the member in progress (see ``Training._save_state``), or a one-line DataError naming the file.

    Loaded with ``weights_only``: tensors and plain containers only, so a file that would run code when
    unpickled is refused, never run."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # the safe unpickler met a global: code it would have run
            raise DataError(path, "not a training state: it holds Python objects other than tensors (refused, "
                                  f"not run); {_MOVE_STATE}") from None
        raise DataError(path, f"damaged training state ({_first_line(e)}); {_MOVE_STATE}") from None
    except Exception as e:  # noqa: BLE001 - torch.load fails in many ways on a damaged file; each is this one line
        raise DataError(path, f"damaged training state ({_first_line(e)}); {_MOVE_STATE}") from None
    missing = [k for k in STATE_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DataError(path, f"not an affectlab training state (no {missing[0]!r}); {_MOVE_STATE}")
    return saved


class DeferredInterrupt:
    """Ctrl-C during training takes effect between steps, so the saved state is whole and ``--resume``
    continues exactly from it; a second Ctrl-C stops at once. Only in the main thread of a single process."""

    def __init__(self, enabled: bool = True):
        self.requested = self.forced = False
        self._previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True

    @property
    def whole(self) -> bool:
        """Stopped by one Ctrl-C, so the model and optimiser hold a finished step."""
        return self.requested and not self.forced

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def use_amp(recipe: Recipe, device: torch.device) -> bool:
    """bf16 autocast: asked for, or ``auto`` on CUDA."""
    return recipe.train.amp == "bf16" or (recipe.train.amp == "auto" and device.type == "cuda")


def training_step(net: nn.Module, batch: dict, objective: Objective, optimizer: torch.optim.Optimizer,
                  group_tasks: torch.Tensor, *, amp: bool = False, channels_last: bool = False,
                  teacher: Callable[[dict, torch.Tensor], Prediction] | None = None, distill: Distill | None = None,
                  grad_clip: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimiser step on a batch already on the device: forward (bf16 autocast with ``amp``), the
    recipe's masked task losses (teacher-student eq. 7 / multi-database eq. 10 when a ``teacher`` is
    given), backward, optional gradient clipping, update. Returns the loss and its parts.

    The trainer and bench/training.py both run this, so the benchmark times what training runs."""
    image = batch["image"].to(memory_format=torch.channels_last) if channels_last else batch["image"]
    with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=amp):
        pred = net(image)
        t_pred = teacher(batch, image) if teacher is not None else None
    pred, flat = flatten_time(pred, batch)
    masks = label_masks(flat, group_tasks)
    if t_pred is not None:
        if distill is None:
            raise ValueError("a teacher needs the stage's distill settings (lambda, T)")
        weights = objective.weights if distill.task_weights else None
        loss, parts = student_loss(objective, pred, flatten_time(t_pred, batch)[0], flat, masks, distill.lam, distill.T,
                                   weights)
    else:
        parts = objective.task_losses(pred, flat, masks)
        loss = sum(objective.weights[t] * v for t, v in parts.items())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()
    return loss, parts


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


def _without_train(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k != "train"}


def make_optimizer(recipe: Recipe, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params``."""
    o = recipe.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def _scheduler(recipe: Recipe, optimizer: torch.optim.Optimizer, total: int, steps_per_epoch: int):
    """A per-step learning-rate schedule; epoch lengths come from the sampler."""
    s = recipe.scheduler
    sched = torch.optim.lr_scheduler
    if s.name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total, eta_min=s.min_lr)
    if s.name == "step":
        return sched.StepLR(optimizer, step_size=max(1, round(s.step_epochs * steps_per_epoch)), gamma=s.gamma)
    if s.name == "cosine-restarts":
        return sched.CosineAnnealingWarmRestarts(optimizer, T_0=max(1, round(s.restart_epochs * steps_per_epoch)),
                                                 T_mult=s.t_mult, eta_min=s.min_lr)
    return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)


def train(recipe: Recipe, out_dir: str | os.PathLike[str], *, resume: bool = False,
          hooks: Sequence[Hook] = ()) -> dict:
    """Run every stage of ``recipe`` into ``out_dir``; returns what results.json holds."""
    return Training(recipe, out_dir, resume=resume, hooks=hooks).run()
