"""The run folder: what a run keeps on disk, how it is opened and resumed, and the member in progress.

A run directory holds everything::

    recipe.yaml      the recipe as run (overrides applied)
    state.pt         the member in progress: step, weights, optimiser, scheduler, RNG, early stopping
    progress.json    finished members, their checkpoints and validation scores
    <member>.safetensors   each trained model (affectlab.load_model reads it)
    metrics.csv      stage, member, step, name, value (losses, learning rate, validation scores)
    results.json     per member and ensemble validation scores, and the final model(s)

Rank 0 writes; every file is written atomically, so a killed run leaves whole files behind. ``--resume``
keeps the finished members and continues the one in progress from ``state.pt``, whose file is read
with ``weights_only`` (tensors and plain containers: it cannot run code).
"""
from __future__ import annotations

import csv
import pickle
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from affectlab.errors import AffectlabError, DataError, first_line
from affectlab.jsonfile import write_atomic, write_json
from affectlab.labels import LabelSchema
from affectlab.models import AffectModel, load_model, save_checkpoint
from affectlab.models.meta import InputSpec, align_template
from affectlab.train.config import ConfigError, Recipe
from affectlab.train.dist import Dist
from affectlab.train.members import Member, members_of


def flat_scores(scores: dict, prefix: str) -> dict[str, float]:
    """Nested scores -> {"prefix/a/b": value} for the metrics log."""
    out: dict[str, float] = {}
    for k, v in scores.items():
        if isinstance(v, dict):
            out.update(flat_scores(v, f"{prefix}/{k}"))
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


class RunFolder:
    """One run's directory, opened for a fresh run or for ``--resume``, and the progress it records."""

    def __init__(self, out: Path, recipe: Recipe, dist: Dist, *, resume: bool = False):
        self.out, self.recipe, self.dist = out, recipe, dist
        self.progress = self._open(resume)
        self.metrics = MetricsLog(self.out / "metrics.csv", self.dist.main)

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
            if not same_run(saved, self.recipe.raw):
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

    def done(self, member: str) -> bool:
        """Finished in an earlier run (``--resume``): recorded and its checkpoint there."""
        return member in self.progress["completed"] and self.member_path(member).exists()

    def complete(self, member: str, result: dict) -> None:
        """Record a finished member in progress.json (rank 0), every rank waiting for it."""
        self.progress["completed"][member] = result
        if self.dist.main:
            write_json(self.out / "progress.json", self.progress)
        self.dist.barrier()

    def finished_stages(self) -> set[str]:
        return {s.name for s in self.recipe.stages
                if all(m.name in self.progress["completed"] for m in members_of(self.recipe, s.name))}

    def stage_model(self, stage_name: str, schema: LabelSchema, device: torch.device) -> AffectModel:
        """A finished stage's model (a teacher, a filter): the stage must have a single member."""
        members = members_of(self.recipe, stage_name)
        if len(members) != 1:
            raise ConfigError(f"stage {stage_name!r} has {len(members)} members; a teacher must be a single model")
        return load_model(self.member_path(members[0].name), schema=schema, device=str(device))

    def save_member(self, member: Member, model: AffectModel, spec: InputSpec, extra: dict) -> None:
        """The member's checkpoint, with its input, recipe, stage and ``extra`` (rank 0 writes)."""
        if self.dist.main:
            save_checkpoint(model, self.member_path(member.name), input_size=spec.size, mean=spec.mean,
                            std=spec.std, align_template=align_template(spec.size, spec.template), extra={"recipe": self.recipe.name, "paper": self.recipe.paper,
                                                     "stage": member.stage.name, "member": member.name,
                                                     "crop": spec.to_extra(), **extra})
        self.dist.barrier()

    def save_state(self, state: dict) -> None:
        """state.pt: the member in progress (rank 0 writes; see STATE_KEYS)."""
        if self.dist.main:
            write_atomic(self.out / "state.pt", lambda p: torch.save(state, p))
        self.dist.barrier()

    def saved_state(self, member: str) -> dict | None:
        """The state.pt of ``member``, or None where there is none or it holds another member."""
        state_file = self.out / "state.pt"
        if not state_file.exists():
            return None
        saved = read_state(state_file)
        return saved if saved["member"] == member else None

    def drop_state(self) -> None:
        """The member in progress is finished: its state.pt goes (rank 0)."""
        if self.dist.main and (self.out / "state.pt").exists():
            (self.out / "state.pt").unlink()

    def final_copy(self, member: str) -> Path:
        """``model.safetensors``: a copy of a single final member's checkpoint."""
        target = self.out / "model.safetensors"
        write_atomic(target, lambda p: shutil.copyfile(self.member_path(member), p))
        return target

    def write_results(self, results: dict) -> None:
        write_json(self.out / "results.json", results)

    def close(self) -> None:
        self.metrics.close()


# --- opening and resuming ----------------------------------------------------------------------------

STATE_KEYS = ("member", "step", "model", "optimizer", "scheduler", "rng", "early", "sampler")
MOVE_STATE = "move it away to restart the member in progress (finished members are kept)"


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
        raise DataError(path, f"damaged recipe of this run ({first_line(e)})") from None
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
    """The state of the member in progress (see STATE_KEYS and ``Fitter._save_state``), or a one-line DataError naming the file.

    Loaded with ``weights_only``: tensors and plain containers only, so a file that would run code when
    unpickled is refused, never run."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # the safe unpickler met a global: code it would have run
            raise DataError(path, "not a training state: it holds Python objects other than tensors (refused, "
                                  f"not run); {MOVE_STATE}") from None
        raise DataError(path, f"damaged training state ({first_line(e)}); {MOVE_STATE}") from None
    except Exception as e:  # noqa: BLE001 - torch.load fails in many ways on a damaged file; each is this one line
        raise DataError(path, f"damaged training state ({first_line(e)}); {MOVE_STATE}") from None
    missing = [k for k in STATE_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DataError(path, f"not an affectlab training state (no {missing[0]!r}); {MOVE_STATE}")
    return saved


def same_run(saved: dict, raw: dict) -> bool:
    """Whether ``--resume`` may continue a run saved with recipe ``saved`` under recipe ``raw``: the same
    recipe but for ``train.*`` settings and the format ``version`` (a run saved before recipes had one
    resumes under the same recipe with ``version: 1``)."""
    def content(recipe: dict) -> dict:
        return {k: v for k, v in recipe.items() if k not in ("train", "version")}
    return content(saved) == content(raw)
