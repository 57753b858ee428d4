"""Training throughput of a recipe: the data loader alone, the training step alone, and both together,
with the step's achieved GFLOP/s as a fraction of the machine's matmul rate at the step's precision.

    python bench/training.py [configs/default.yaml] [key=value ...] [--steps 20] [--workers 0 2]
                             [--device cuda] [--amp off bf16]

The loader decodes, frames and augments real images (the recipe's sources); the step is
``affectlab.train.fitting.training_step`` (forward, the recipe's masked losses, backward, the
optimiser), the trainer's own, on one real batch reused. A step's FLOPs are 3x the forward's, counted
by affectlab.models.count_gflops (the forward, then the backward's two gradient passes). Targets: the
loader delivers at least twice what the step consumes; on a GPU, the InceptionV3 models' step reaches
10 % of the bf16 matmul rate, e.g. (options after the overrides)

    python bench/training.py configs/default.yaml model.name=smm "model.config={backbone: inception_v3}" \\
        data.input_size=299 loss.terms.va.fn=ccc --device cuda --workers 8 16
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

import affectlab  # noqa: F401
from affectlab.data.dataset import FaceDataset
from affectlab.data.sampling import MultiSourceBatchSampler
from affectlab.devices import resolve_device
from affectlab.models import count_gflops, create_model
from affectlab.models.meta import InputSpec
from affectlab.train import data as tdata
from affectlab.train import load_recipe
from affectlab.train.objective import Objective
from affectlab.train.fitting import make_optimizer, training_step
from affectlab.train.trainer import recipe_schema
from common import machine_limit, report, sync, table


def make_loader(dataset, pools, workers: int, seed: int, device: torch.device) -> DataLoader:
    return DataLoader(dataset, batch_sampler=MultiSourceBatchSampler(pools, seed), num_workers=workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator(),
                      prefetch_factor=4 if workers else None)


def loader_rate(loader: DataLoader, steps: int) -> float:
    batches = iter(loader)
    next(batches)
    start, images = time.perf_counter(), 0
    for _ in range(steps):
        images += len(next(batches)["index"])
    return images / (time.perf_counter() - start)


def precision(amp: str) -> str:
    """The recipe's ``train.amp`` value as the precision the step computes in."""
    return "bf16" if amp == "bf16" else "fp32"


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Step:
    """A fresh model and optimiser of the recipe, stepped by the trainer's ``training_step``."""

    def __init__(self, recipe, schema, samples, group_tasks, device: torch.device, channels_last: bool, amp: bool):
        model = create_model(recipe.model.name, schema, **recipe.model.config).to(device).train()
        self.channels_last = channels_last and model.input_layout == "BCHW"
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.objective = Objective(recipe.loss, schema, samples, has_va_bins=bool(model.config.get("va_bins", 0)))
        self.optimizer = make_optimizer(recipe, model)
        self.group_tasks, self.amp, self.device = group_tasks.to(device), amp, device

    def __call__(self, batch: dict) -> None:
        training_step(self.model, batch, self.objective, self.optimizer, self.group_tasks, amp=self.amp,
                      channels_last=self.channels_last)

    def gflop(self, batch: dict) -> float:
        """FLOPs of one step in 10^9: 3x the forward's (backward computes gradients of both inputs and
        weights, 2x the forward), the forward counted on the batch. Counting the backward pass directly
        is wrong here: torch's FLOP counter charges a depthwise convolution's backward as a dense one
        (7x too many for MobileNetV2)."""
        return 3 * 2 * count_gflops(self.model, batch["image"])

    def rate(self, batch: dict, steps: int) -> float:
        """Steps per second on one batch already on the device, after two warm-up steps."""
        for _ in range(2):
            self(batch)
        sync(str(self.device))
        start = time.perf_counter()
        for _ in range(steps):
            self(batch)
        sync(str(self.device))
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="configs/default.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", nargs="+", choices=["off", "bf16"], default=["off", "bf16"],
                        help="step precisions to time (bf16 = the trainer's bf16 autocast)")
    args = parser.parse_args()
    device = torch.device(resolve_device(args.device))
    recipe = load_recipe(args.recipe, args.overrides)
    schema = recipe_schema(recipe)
    tables = tdata.read_sources(recipe.sources, schema, {})
    pools = tdata.group_pools(recipe.sampler, tables, schema)
    group_tasks = torch.as_tensor(tdata.group_tasks(recipe.sampler))
    dataset = FaceDataset(tables.samples, schema, InputSpec(recipe.data.input_size, recipe.data.margin),
                          augmentation=recipe.data.augment, sources=tables.names.tolist())
    rows = [[f"loader, {w} workers", loader_rate(make_loader(dataset, pools, w, 0, device), args.steps), "", ""]
            for w in args.workers]
    batch = to_device(next(iter(make_loader(dataset, pools, 0, 0, device))), device)
    n = len(batch["index"])
    limits = {amp: machine_limit(str(device), precision(amp)) for amp in args.amp}
    best, best_rate = None, 0.0
    for channels_last in (False, True):
        for amp in args.amp:
            step = Step(recipe, schema, tables.samples, group_tasks, device, channels_last, amp == "bf16")
            steps_per_s, gflop = step.rate(batch, args.steps), step.gflop(batch)
            achieved = steps_per_s * gflop
            rows.append([f"training step, channels_last {'on' if channels_last else 'off'}, {precision(amp)}",
                         steps_per_s * n, achieved, f"{achieved / limits[amp][0]:.1%}"])
            if steps_per_s > best_rate:
                best, best_rate = (channels_last, amp), steps_per_s
            del step
    workers = max(args.workers)
    step = Step(recipe, schema, tables.samples, group_tasks, device, best[0], best[1] == "bf16")
    batches = iter(make_loader(dataset, pools, workers, 1, device))
    step(to_device(next(batches), device))
    sync(str(device))
    start, images = time.perf_counter(), 0
    for _ in range(args.steps):
        b = to_device(next(batches), device)
        step(b)
        images += len(b["index"])
    sync(str(device))
    together = images / (time.perf_counter() - start)
    achieved = together / n * step.gflop(batch)
    rows.append([f"together ({workers} workers, channels_last {'on' if best[0] else 'off'}, {precision(best[1])})",
                 together, achieved,
                 f"{achieved / limits[best[1]][0]:.1%}"])
    loader_best = max(r[1] for r in rows if r[0].startswith("loader"))
    body = (f"`{args.recipe}` {' '.join(args.overrides)} ({recipe.model.name}, {recipe.model.config.get('backbone')}, "
            f"{recipe.data.input_size} px, batch {n}) on {device}, {args.steps} steps each. "
            + "; ".join(note for _, note in limits.values())
            + f". The loader delivers {loader_best / (best_rate * n):.1f}x what the fastest step consumes "
            "(target >= 2x).\n\n" + table(["what", "images/s", "GFLOP/s", "of limit"], rows))
    report("Training throughput", body)


if __name__ == "__main__":
    main()
