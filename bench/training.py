"""Training throughput of a recipe: the data loader alone, the training step alone, and both together.

    python bench/training.py [configs/default.yaml] [key=value ...] [--steps 20] [--workers 0 2]

The loader decodes, frames and augments real images (the recipe's sources); the step is forward,
the recipe's masked losses, backward and the optimiser, on one real batch reused. Target: the loader
delivers at least twice what the step consumes.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

import affectlab  # noqa: F401
from affectlab.data.dataset import FaceDataset
from affectlab.data.sampling import MultiSourceBatchSampler
from affectlab.models import create_model
from affectlab.train import data as tdata
from affectlab.train import load_recipe
from affectlab.train.objective import Objective, flatten_time, label_masks
from affectlab.train.trainer import _optimizer, _schema
from common import report, table


def loader_rate(dataset, pools, workers: int, steps: int) -> float:
    loader = DataLoader(dataset, batch_sampler=MultiSourceBatchSampler(pools, 0), num_workers=workers,
                        generator=torch.Generator(), prefetch_factor=4 if workers else None)
    batches = iter(loader)
    next(batches)
    start, images = time.perf_counter(), 0
    for _ in range(steps):
        images += len(next(batches)["index"])
    return images / (time.perf_counter() - start)


def step_fn(recipe, schema, samples, group_tasks, channels_last: bool):
    model = create_model(recipe.model.name, schema, **recipe.model.config).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = Objective(recipe.loss, schema, samples, has_va_bins=bool(model.config.get("va_bins", 0)))
    optimizer = _optimizer(recipe, [p for p in model.parameters() if p.requires_grad])

    def step(batch: dict) -> None:
        image = batch["image"].to(memory_format=torch.channels_last) if channels_last else batch["image"]
        pred, flat = flatten_time(model(image), batch)
        parts = objective.task_losses(pred, flat, label_masks(flat, group_tasks))
        loss = sum(objective.weights[t] * v for t, v in parts.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", nargs="?", default="configs/default.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides)
    schema = _schema(recipe)
    tables = tdata.read_sources(recipe.sources, schema, {})
    pools = tdata.group_pools(recipe.sampler, tables, schema)
    group_tasks = torch.as_tensor(tdata.group_tasks(recipe.sampler))
    dataset = FaceDataset(tables.samples, schema, size=recipe.data.input_size, margin=recipe.data.margin,
                          augmentation=recipe.data.augment, sources=tables.names.tolist())
    rows = [[f"loader, {w} workers", loader_rate(dataset, pools, w, args.steps)] for w in args.workers]
    batch = next(iter(DataLoader(dataset, batch_sampler=MultiSourceBatchSampler(pools, 0))))
    for channels_last in (False, True):
        step = step_fn(recipe, schema, tables.samples, group_tasks, channels_last)
        for _ in range(2):
            step(batch)
        start = time.perf_counter()
        for _ in range(args.steps):
            step(batch)
        rate = args.steps * len(batch["index"]) / (time.perf_counter() - start)
        rows.append([f"training step, channels_last {'on' if channels_last else 'off'}", rate])
    workers = max(args.workers)
    step = step_fn(recipe, schema, tables.samples, group_tasks, True)
    loader = DataLoader(dataset, batch_sampler=MultiSourceBatchSampler(pools, 1), num_workers=workers,
                        generator=torch.Generator(), prefetch_factor=4 if workers else None)
    batches = iter(loader)
    step(next(batches))
    start, images = time.perf_counter(), 0
    for _ in range(args.steps):
        b = next(batches)
        step(b)
        images += len(b["index"])
    rows.append([f"together ({workers} workers, channels_last on)", images / (time.perf_counter() - start)])
    step_rate = max(r[1] for r in rows if r[0].startswith("training step"))
    loader_best = max(r[1] for r in rows if r[0].startswith("loader"))
    body = (f"`{args.recipe}` ({recipe.model.name}, {recipe.model.config.get('backbone')}, {recipe.data.input_size} px, "
            f"batch {len(batch['index'])}), {args.steps} steps each. The loader delivers "
            f"{loader_best / step_rate:.1f}x what the fastest step consumes (target >= 2x).\n\n"
            + table(["what", "images/s"], rows))
    report("Training throughput", body)


if __name__ == "__main__":
    main()
