"""The fitting loop: one member from its first (or restored) step to its checkpoint.

:meth:`Fitter.fit` prepares the member (model, objective, sampler, optimiser, schedule, teacher, the
state ``--resume`` restores), runs its steps (train, log, validate, stop early, save the state), and
saves its checkpoint. Batches are a pure function of the step (affectlab.data.sampling) and
augmentation a pure function of the sample's stream position, so a resumed member ends with the same
weights as an uninterrupted one. Ctrl-C takes effect between steps (:class:`DeferredInterrupt`).
"""
from __future__ import annotations

import math
import sys
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from affectlab import interrupt
from affectlab.data.dataset import FaceDataset
from affectlab.data.sampling import MultiSourceBatchSampler
from affectlab.errors import AffectlabError, DataError, first_line
from affectlab.jsonfile import json_ready
from affectlab.labels import LabelSchema
from affectlab.log import logger
from affectlab.models import AffectModel, Prediction
from affectlab.models.backbones import Backbone
from affectlab.models.meta import InputSpec
from affectlab.train import data as tdata
from affectlab.train.config import ConfigError, Distill, Recipe, Stage
from affectlab.train.dist import Dist, use_amp
from affectlab.train.distill import CachedTeacher, ensemble_teacher, student_loss
from affectlab.train.member_data import MemberData
from affectlab.train.members import Member
from affectlab.train.monitor import monitored
from affectlab.train.objective import Objective, flatten_time, label_masks
from affectlab.train.run_folder import MOVE_STATE, RunFolder, flat_scores


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


def input_spec(member: Member, model: AffectModel) -> InputSpec:
    """How the member's model sees faces: the recipe's size, margin, views and framing, the model's
    clip length and normalisation (stored in its checkpoint)."""
    data = member.recipe.data
    layout_views = {"BVCHW": 2}.get(model.input_layout, 1)
    if len(data.views) != layout_views:
        raise ConfigError(f"model {model.model_name!r} takes {layout_views} view(s) per face; "
                          f"data.views has {len(data.views)}")
    clip = int(model.config["seq_len"]) if model.input_layout == "BTCHW" else 0
    thinned = [name for name, source in member.recipe.sources.items() if source.downsample > 1]
    if clip and thinned:
        raise ConfigError(f"stage {member.stage.name!r}: a clip is {clip} consecutive frames, but source "
                          f"{thinned[0]!r} is downsampled (a clip of its rows would skip frames); give it downsample: 1")
    return InputSpec(data.input_size, data.margin, tuple(data.views), data.image_context, clip,
                     model.paper.mean, model.paper.std, data.crop_framing, data.template)


class Fitter:
    """Trains members, one at a time, in a run folder; ``interrupted``: Ctrl-C came during a member's
    last step, so the run stops once it is saved."""

    def __init__(self, folder: RunFolder, data: MemberData, schema: LabelSchema, device: torch.device, dist: Dist,
                 hooks: Sequence[Hook] = ()):
        self.folder, self.data, self.schema, self.device, self.dist = folder, data, schema, device, dist
        self.hooks = list(hooks)
        self.interrupted = False

    def fit(self, member: Member, tables: tdata.SourceTables, make_model: Callable[[Member], AffectModel]) -> dict:
        """Train one member on ``tables``: prepare it (or restore it), run its steps, save it."""
        if member.recipe.train.progress and self.dist.main:  # building the model, caching teachers: minutes
            logger.info(f"{member.name}: preparing its model{' and teacher outputs' if member.stage.distill else ''} "
                        f"({len(tables.samples)} training rows)")
        fit = self._prepare(member, tables, make_model)
        loader = self._loader(fit, tables)
        scores, unreadable = self._loop(fit, loader)
        return self._finish(fit, tables, scores, unreadable)

    def _prepare(self, member: Member, tables: tdata.SourceTables,
                 make_model: Callable[[Member], AffectModel]) -> Fitting:
        """The member's model, objective, sampler, optimiser, schedule and teacher, at its restored step."""
        recipe, stage = member.recipe, member.stage
        model = make_model(member).to(self.device)
        spec = input_spec(member, model)
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
        optimizer = make_optimizer(recipe, model)
        scheduler = make_scheduler(recipe, optimizer, total, steps_per_epoch)
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
            val_frames = {name: self.data.cached_features(member, model, samples, spec)
                          for name, samples in self.data.validation_tables(recipe, [member]).items()}
        return Fitting(member, model, net, spec, objective, pools, probe, torch.as_tensor(tdata.group_tasks(recipe.sampler)),
                       steps_per_epoch, total, channels_last, optimizer, scheduler, teacher, step, early, val_frames)

    def _loader(self, fit: Fitting, tables: tdata.SourceTables) -> DataLoader:
        """Batches from the fitting's step on: faces, or each frame's cached CNN features (``cache_features``)."""
        member, recipe, spec = fit.member, fit.member.recipe, fit.spec
        features = self.data.cached_features(member, fit.model, tables.samples, spec) if member.stage.cache_features else None
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
                    scores = self.data.validate([fit.model], recipe, [member], spec=fit.spec,
                                            frames=fit.val_frames) if validating else {}
                    self.folder.metrics.log(stage.name, member.name, fit.step, flat_scores(scores, "val"))
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
                                    amp=use_amp(recipe, self.device), channels_last=fit.channels_last, teacher=fit.teacher,
                                    distill=fit.member.stage.distill, grad_clip=recipe.train.grad_clip)
        fit.scheduler.step()
        fit.step += 1
        values = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
        return values, fit.optimizer.param_groups[0]["lr"], batch["index"].tolist()

    def _log_running(self, fit: Fitting, running: dict[str, list[float]], lr: float, unreadable: int, bar: tqdm) -> None:
        """The mean losses since the last log line: on the progress bar and in metrics.csv."""
        means = {k: float(np.mean(v)) for k, v in running.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()} | {"lr": f"{lr:.2e}"}, refresh=False)
        self.folder.metrics.log(fit.member.stage.name, fit.member.name, fit.step, {
            **{f"train/{k}": v for k, v in means.items()}, "train/lr": lr,
            "train/epoch": fit.step / fit.steps_per_epoch, "train/unreadable_images": float(unreadable)})
        running.clear()

    def _finish(self, fit: Fitting, tables: tdata.SourceTables, scores: dict, unreadable: set[str]) -> dict:
        """The best weights back (early stopping), the member's checkpoint, its summary for progress.json."""
        member = fit.member
        if member.stage.early_stopping is not None and fit.early.best_state is not None:
            fit.model.load_state_dict(fit.early.best_state)
            if self.dist.main and bool(member.recipe.validation or member.fold is not None):
                scores = self.data.validate([fit.model], member.recipe, [member], spec=fit.spec, frames=fit.val_frames)
        self.folder.save_member(member, fit.model, fit.spec, {"step": fit.step, "validation": json_ready(scores),
                                                              "unreadable_images": sorted(unreadable)})
        self.folder.drop_state()
        if unreadable and self.dist.main:
            logger.warning(f"{member.name}: {len(unreadable)} unreadable image(s) skipped, "
                           f"e.g. {sorted(unreadable)[0]}")
        return {"path": str(self.folder.member_path(member.name)), "steps": fit.step, "validation": scores,
                "unreadable_images": len(unreadable), "training_rows": len(tables.samples)}

    def _restore(self, member: Member, model: AffectModel, optimizer, scheduler,
                 sampler: MultiSourceBatchSampler) -> tuple[int, EarlyStop]:
        """(step, early-stopping state): from state.pt when it holds this member, else a fresh start."""
        saved = self.folder.saved_state(member.name)
        if saved is None:
            return 0, EarlyStop()
        state_file = self.folder.out / "state.pt"
        if saved["sampler"] != sampler.state_dict():
            raise AffectlabError(f"{state_file}: the training data changed since this checkpoint "
                                 "(different rows per sampler group); cannot resume exactly")
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"]["torch"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise DataError(state_file, f"does not fit this run's model or optimiser ({first_line(e)}); "
                                        f"{MOVE_STATE}") from None
        if self.device.type == "cuda" and "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], self.device)
        if self.dist.main:
            self.folder.metrics.forget_after(member.name, int(saved["step"]))
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
            value = monitored(scores, stage.early_stopping.monitor)
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
        state = {}
        if self.dist.main:
            rng = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
            state = {"member": fit.member.name, "step": fit.step, "model": fit.model.state_dict(),
                     "optimizer": fit.optimizer.state_dict(), "scheduler": fit.scheduler.state_dict(), "rng": rng,
                     "early": fit.early.to_state(), "sampler": fit.probe.state_dict()}
        self.folder.save_state(state)

    def _teacher(self, member: Member, samples: pd.DataFrame) -> Callable[[dict, torch.Tensor], Prediction] | None:
        """The distillation teacher as ``(batch, image) -> Prediction`` (online or cached outputs)."""
        spec = member.stage.distill
        if spec is None:
            return None
        teachers = [self.folder.stage_model(name, self.schema, self.device) for name in spec.teachers]
        keys = ("au", "expr", "va", "va_bins")
        if spec.teacher_outputs == "cached":
            if any(t.input_layout != "BCHW" for t in teachers):
                raise ConfigError("cached teacher outputs need single-image (BCHW) teachers; "
                                  "use teacher_outputs=online")
            outs = [self.data.outputs(t, samples, member.recipe,
                                      progress=f"{member.name}: {name}'s outputs, once" if self.dist.main else None)
                    for name, t in zip(spec.teachers, teachers)]
            cached = CachedTeacher(ensemble_teacher([{k: torch.from_numpy(o[k]) for k in keys if k in o}
                                                     for o in outs]))
            return lambda batch, image: cached(batch["index"])

        def online(batch: dict, image: torch.Tensor) -> Prediction:
            with torch.no_grad():
                preds = [t(image) for t in teachers]
            out = ensemble_teacher([{k: getattr(p, k) for k in keys} for p in preds])
            return Prediction(au=out["au"], expr=out["expr"], va=out["va"], va_bins=out.get("va_bins"))
        return online


class DeferredInterrupt:
    """Ctrl-C (or SIGTERM) during training takes effect between steps, so the saved state is whole and
    ``--resume`` continues exactly from it; a second one stops at once. Only in the main thread of a
    single process."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True):
        self.requested = self.forced = False
        self._previous = None
        if enabled and threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum, frame) -> None:
        interrupt.note(signum)
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
            for s, previous in self._previous.items():
                signal.signal(s, previous)
            self._previous = None


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


def make_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``model``'s trainable parameters: the heads (the first group, whose
    rate the log shows) at ``lr``, the backbones at ``backbone_lr`` where the recipe sets one."""
    o = recipe.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": params}]
    if o.backbone_lr is not None:
        trunk = {id(p) for m in model.modules() if isinstance(m, Backbone) for p in m.parameters()}
        groups = [{"params": [p for p in params if id(p) not in trunk]},
                  {"params": [p for p in params if id(p) in trunk], "lr": o.backbone_lr}]
        groups = [g for g in groups if g["params"]]
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def make_scheduler(recipe: Recipe, optimizer: torch.optim.Optimizer, total: int, steps_per_epoch: int):
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
