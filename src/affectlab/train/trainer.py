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
from affectlab.data.sampling import MultiSourceBatchSampler, assign_folds
from affectlab.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from affectlab.errors import AffectlabError, DataError
from affectlab.labels import AU_SETS, LabelSchema, schema as make_schema
from affectlab.devices import resolve_device
from affectlab.jsonfile import json_ready, write_atomic, write_json
from affectlab.models import AffectModel, Prediction, create_model, load_model, save_checkpoint
from affectlab.scoring import score_tables
from affectlab.train import data as tdata
from affectlab.train.config import ConfigError, Distill, Recipe, Stage
from affectlab.train.distill import CachedTeacher, student_loss
from affectlab.train.evaluate import InputSpec, collect_outputs, evaluate, monitor_value
from affectlab.train.objective import Objective, flatten_time, label_masks
from affectlab.train.pseudo import apply_rules, mine_au_expr_rules, teacher_labels


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
class Member:
    """One model a stage trains."""

    stage: Stage
    recipe: Recipe
    name: str
    seed: int
    fold: int | None = None


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


class Run:
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
        stage = next(s for s in self.recipe.stages if s.name == stage_name)
        return [m.name for m in self.members(stage, 0)]

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
                paths = [self.member_path(m) for stage in ens.members for m in self.stage_members(stage)]
                models = [load_model(p, device=str(self.device)) for p in paths]
                scores = self._validate(models, self.recipe, None, method=ens.method)
                results["ensembles"][name] = {"members": [str(p) for p in paths], "method": ens.method,
                                              "validation": scores}
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
    def _training_data(self, member: Member) -> tdata.SourceTables:
        """The member's training rows: its recipe's sources, minus its fold, plus pseudo labels."""
        tables = tdata.read_sources(member.recipe.sources, self.schema, self.cache)
        if member.fold is not None:
            folds = member.stage.folds
            fold = assign_folds(tdata.group_keys(tables.samples, folds.by, "training data"), folds.k, folds.seed)
            keep = fold != member.fold
            tables = tdata.SourceTables(tables.samples[keep].reset_index(drop=True), tables.names[keep], tables.skipped)
        if member.stage.pseudo_labels is not None:
            tables = self._pseudo_label(member, tables)
        return tables

    def _validation(self, recipe: Recipe, member: Member | None) -> dict[str, pd.DataFrame]:
        tables = {name: tdata.read_one(src, self.schema, self.cache).samples for name, src in recipe.validation.items()}
        if member is not None and member.fold is not None:
            all_rows = tdata.read_sources(recipe.sources, self.schema, self.cache).samples
            folds = member.stage.folds
            fold = assign_folds(tdata.group_keys(all_rows, folds.by, "training data"), folds.k, folds.seed)
            tables[f"fold{member.fold}"] = all_rows[fold == member.fold].reset_index(drop=True)
        return {k: v for k, v in tables.items() if len(v)}

    def _pseudo_label(self, member: Member, tables: tdata.SourceTables) -> tdata.SourceTables:
        """Streaming §3.4: fill missing labels from mined AU→EXPR rules and a confident teacher."""
        spec = member.stage.pseudo_labels
        samples = tables.samples
        added: dict[str, float] = {}
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
        return tdata.SourceTables(samples, tables.names, tables.skipped)

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
            state = safetensors.torch.load_file(self.member_path(self.stage_members(member.stage.init_from)[0]))
            own = model.state_dict()
            fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if not fits:
                raise ConfigError(f"stage {member.stage.name!r}: no weight of stage {member.stage.init_from!r} "
                                  f"fits model {spec.name!r}")
            model.load_state_dict(fits, strict=False)
        return model

    def _input_spec(self, member: Member, model: AffectModel) -> InputSpec:
        data = member.recipe.data
        layout_views = {"BVCHW": 2}.get(model.input_layout, 1)
        if len(data.views) != layout_views:
            raise ConfigError(f"model {model.model_name!r} takes {layout_views} view(s) per face; "
                              f"data.views has {len(data.views)}")
        clip = int(model.config.get("seq_len", 32)) if model.input_layout == "BTCHW" else 0
        return InputSpec(data.input_size, data.margin, tuple(data.views), data.image_context, clip)

    def _save(self, member: Member, model: AffectModel, spec: InputSpec, extra: dict) -> None:
        if self.dist.main:
            save_checkpoint(model, self.member_path(member.name), input_size=spec.size, mean=IMAGENET_MEAN,
                            std=IMAGENET_STD, extra={"recipe": self.recipe.name, "paper": self.recipe.paper,
                                                     "stage": member.stage.name, "member": member.name,
                                                     "crop": spec.to_extra(), **extra})
        self.dist.barrier()

    def _validate(self, models: list[AffectModel], recipe: Recipe, member: Member | None, method: str = "mean",
                  spec: InputSpec | None = None) -> dict:
        """Scores per validation source and, with several sources, for all of them together (``all``).

        ``spec``: the input of a model in training (checkpoints carry their own)."""
        tables = self._validation(recipe, member)
        out, preds, labels = {}, [], []
        for name, samples in tables.items():
            ev = evaluate(models, samples, method=method, batch_size=recipe.data.eval_batch_size,
                          workers=recipe.data.workers, device=self.device, autocast=self._amp(recipe), spec=spec)
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
                                member) if self.dist.main else {}
        self.metrics.log(member.stage.name, member.name, 0, _flat(scores, "val"))
        return {"path": str(self.member_path(member.name)), "validation": scores}

    # -- training one member --
    def _fit(self, member: Member) -> dict:
        recipe, stage = member.recipe, member.stage
        tables = self._training_data(member)
        model = self._model(member).to(self.device)
        spec = self._input_spec(member, model)
        try:
            objective = Objective(recipe.loss, self.schema, tables.samples,
                                  has_va_bins=bool(model.config.get("va_bins", 0)))
            pools = tdata.group_pools(recipe.sampler, tables, self.schema)
            probe = MultiSourceBatchSampler(pools, member.seed, rank=self.dist.rank, world_size=self.dist.world_size)
        except ValueError as e:
            raise ConfigError(f"stage {stage.name!r}: {e}") from None
        group_tasks = torch.as_tensor(tdata.group_tasks(recipe.sampler))
        steps_per_epoch = probe.steps_per_epoch()
        total = stage.steps if stage.steps is not None else max(1, round(stage.epochs * steps_per_epoch))

        # channels_last: the GPU's preferred layout, and +50 % images/s on this project's CPU (bench/training.py)
        channels_last = model.input_layout == "BCHW" and recipe.train.channels_last in ("on", "auto")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(recipe, params)
        scheduler = _scheduler(recipe, optimizer, total, steps_per_epoch)
        teacher = self._teacher(member, tables.samples)
        step, early = self._restore(member, model, optimizer, scheduler, probe)
        net: nn.Module = model
        if self.dist.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        dataset = FaceDataset(tables.samples, self.schema, size=spec.size, margin=spec.margin, views=spec.views,
                              image_context=spec.image_context, augmentation=recipe.data.augment,
                              clip_len=spec.clip_len, seed=member.seed, sources=tables.names.tolist())
        sampler = MultiSourceBatchSampler(pools, member.seed, rank=self.dist.rank, world_size=self.dist.world_size,
                                          start_step=step)
        workers = recipe.data.workers
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                            pin_memory=self.device.type == "cuda", generator=torch.Generator(),
                            prefetch_factor=4 if workers else None)
        eval_every = recipe.train.eval_every_steps or max(1, round(recipe.train.eval_every * steps_per_epoch))
        validating = self.dist.main and bool(recipe.validation or member.fold is not None)
        amp = self._amp(recipe)
        bar = tqdm(total=total, initial=step, desc=member.name, dynamic_ncols=True, file=sys.stderr,
                   disable=not (recipe.train.progress and self.dist.main))
        running: dict[str, list[float]] = {}
        unreadable: set[str] = set()
        scores: dict = {}
        model.train()
        batches = iter(loader)
        interrupt = DeferredInterrupt(enabled=self.dist.world_size == 1)
        try:
            while step < total:
                batch = next(batches)
                self._check_corrupt(batch, recipe.data.on_corrupt, unreadable, bar)
                batch = {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                         for k, v in batch.items()}
                loss, parts = training_step(net, batch, objective, optimizer, group_tasks, amp=amp,
                                            channels_last=channels_last, teacher=teacher, distill=stage.distill,
                                            grad_clip=recipe.train.grad_clip)
                scheduler.step()
                step += 1
                values = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
                for k, v in values.items():
                    running.setdefault(k, []).append(v)
                lr = optimizer.param_groups[0]["lr"]
                info = StepInfo(stage.name, member.name, step, total, values, lr, batch["index"].tolist(), model)
                for hook in self.hooks:
                    hook(info)
                bar.update(1)
                if step % recipe.train.log_every == 0 or step == total:
                    means = {k: float(np.mean(v)) for k, v in running.items()}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()} | {"lr": f"{lr:.2e}"}, refresh=False)
                    self.metrics.log(stage.name, member.name, step, {
                        **{f"train/{k}": v for k, v in means.items()}, "train/lr": lr,
                        "train/epoch": step / steps_per_epoch, "train/unreadable_images": float(len(unreadable))})
                    running.clear()
                stop = False
                if step % eval_every == 0 or step == total:
                    scores = self._validate([model], recipe, member, spec=spec) if validating else {}
                    self.metrics.log(stage.name, member.name, step, _flat(scores, "val"))
                    if stage.early_stopping is not None:
                        stop = self._early_stop(early, scores, stage, model, step)
                if step % recipe.train.checkpoint_every == 0 and step < total and not stop:
                    self._save_state(member, step, model, optimizer, scheduler, early, probe)
                if stop:
                    break
                if interrupt.requested:
                    raise KeyboardInterrupt
        except (KeyboardInterrupt, RuntimeError):
            if not interrupt.whole:
                raise
            # Ctrl-C: the loader workers stopped too (a RuntimeError here), but the last step is whole
            self._save_state(member, step, model, optimizer, scheduler, early, probe)
            bar.write(f"affectlab: {member.name}: stopped after step {step} of {total}; its state is saved: "
                      "continue with --resume", file=sys.stderr)
            raise KeyboardInterrupt from None
        finally:
            interrupt.close()
            del batches
            bar.close()
        self.interrupted = interrupt.requested
        if stage.early_stopping is not None and early["best_state"] is not None:
            model.load_state_dict(early["best_state"])
            scores = self._validate([model], recipe, member, spec=spec) if validating else {}
        self._save(member, model, spec, {"step": step, "validation": json_ready(scores),
                                         "unreadable_images": sorted(unreadable)})
        if self.dist.main and (self.out / "state.pt").exists():
            (self.out / "state.pt").unlink()
        if unreadable and self.dist.main:
            tqdm.write(f"affectlab: {member.name}: {len(unreadable)} unreadable image(s) skipped, "
                       f"e.g. {sorted(unreadable)[0]}", file=sys.stderr)
        return {"path": str(self.member_path(member.name)), "steps": step, "validation": scores,
                "unreadable_images": len(unreadable), "training_rows": len(tables.samples)}

    def _restore(self, member: Member, model: AffectModel, optimizer, scheduler,
                 sampler: MultiSourceBatchSampler) -> tuple[int, dict]:
        """(step, early-stopping state): from state.pt when it holds this member, else a fresh start."""
        early = {"best": -math.inf, "best_step": 0, "bad": 0, "best_state": None}
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
        return int(saved["step"]), saved["early"]

    def _check_corrupt(self, batch: dict, policy: str, seen: set[str], bar: tqdm) -> None:
        """Unreadable images: stop with the file named (``on_corrupt: fail``) or count and warn once each."""
        if not bool(batch["corrupt"].any()):
            return
        for error in (e for e in batch["error"] if e):
            for one in error.split("; "):
                path, _, reason = one.partition(": ")
                if policy == "fail":
                    raise DataError(path, f"{reason} (set data.on_corrupt=skip to skip unreadable images)")
                if path not in seen and self.dist.main:
                    bar.write(f"affectlab: skipping unreadable image {path}: {reason}", file=sys.stderr)
                seen.add(path)

    def _early_stop(self, early: dict, scores: dict, stage: Stage, model: AffectModel, step: int) -> bool:
        """Track the best validation score (rank 0 decides, every rank follows)."""
        decision = None
        if self.dist.main:
            value = self._monitor(scores, stage.early_stopping.monitor)
            if math.isnan(value):
                raise AffectlabError(f"stage {stage.name!r}: early stopping monitors "
                                     f"{stage.early_stopping.monitor!r}, which the validation data does not give")
            if value > early["best"]:
                early.update(best=value, best_step=step, bad=0)
            else:
                early["bad"] += 1
            decision = (early["bad"] >= stage.early_stopping.patience, early["best_step"] == step)
        stop, improved = self.dist.share(decision)
        if improved:
            early["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return stop

    def _save_state(self, member: Member, step: int, model: AffectModel, optimizer, scheduler, early: dict,
                    sampler: MultiSourceBatchSampler) -> None:
        if self.dist.main:
            rng = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
            state = {"member": member.name, "step": step, "model": model.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
                     "early": early, "sampler": sampler.state_dict()}
            write_atomic(self.out / "state.pt", lambda p: torch.save(state, p))
        self.dist.barrier()

    def _teacher(self, member: Member, samples: pd.DataFrame) -> Callable[[dict, torch.Tensor], Prediction] | None:
        """The distillation teacher as ``(batch, image) -> Prediction`` (online or cached outputs)."""
        spec = member.stage.distill
        if spec is None:
            return None
        teacher = self._single_model(spec.teacher)
        if spec.teacher_outputs == "cached":
            if teacher.input_layout != "BCHW":
                raise ConfigError("cached teacher outputs need a single-image (BCHW) teacher; "
                                  "use teacher_outputs=online")
            out = self._outputs(teacher, samples, member.recipe)
            cached = CachedTeacher({k: torch.from_numpy(out[k]) for k in ("au", "expr", "va", "va_bins") if k in out})
            return lambda batch, image: cached(batch["index"])

        def online(batch: dict, image: torch.Tensor) -> Prediction:
            with torch.no_grad():
                return teacher(image)
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
    """The state of the member in progress (see ``Run._save_state``), or a one-line DataError naming the file.

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
        loss, parts = student_loss(objective, pred, flatten_time(t_pred, batch)[0], flat, masks, distill.lam, distill.T)
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
    """The recipe's label schema (its AU set)."""
    try:
        return make_schema(recipe.aus) if isinstance(recipe.aus, str) else make_schema(tuple(recipe.aus))
    except ValueError as e:
        raise ConfigError(f"aus: {e} (sets: {', '.join(AU_SETS)})") from None


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
    return Run(recipe, out_dir, resume=resume, hooks=hooks).run()
