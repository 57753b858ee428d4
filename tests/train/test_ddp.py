"""Two processes with DistributedDataParallel (gloo on CPU), as torchrun would start them: the samplers
shard every step's batch without overlap or gaps, and both ranks end with the same weights."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import safetensors.torch
import torch
import torch.multiprocessing as mp

from affectlab.train import load_recipe, train

from train_world import mini_recipe

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, recipe: str, out: str) -> None:
    """One torchrun process: the environment torchrun sets, then the ordinary train()."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    seen: dict[int, list[int]] = {}

    def record(info) -> None:
        seen[info.step] = info.index
        if info.step == info.total_steps:
            params = {k: v.detach().clone() for k, v in info.model.named_parameters()}
            torch.save(params, Path(out) / f"params{rank}.pt")

    train(load_recipe(recipe), out, hooks=[record])
    (Path(out) / f"seen{rank}.json").write_text(json.dumps(seen))


def test_two_processes_shard_batches_and_agree_on_weights(world, tmp_path):
    recipe = mini_recipe(world, tmp_path, stages="[{name: main, steps: 4}]")
    out = tmp_path / "ddp"
    mp.spawn(_rank, args=(_free_port(), str(recipe), str(out)), nprocs=WORLD, join=True)

    single: dict[int, list[int]] = {}
    train(load_recipe(recipe), tmp_path / "single", hooks=[lambda i: single.setdefault(i.step, i.index)])
    seen = [json.loads((out / f"seen{r}.json").read_text()) for r in range(WORLD)]
    for step, rows in single.items():
        shards = [s[str(step)] for s in seen]
        assert all(len(shard) == len(rows) // WORLD for shard in shards), "each rank takes half of every quota"
        assert sorted(shards[0] + shards[1]) == sorted(rows), "together the ranks draw the single-process batch"

    p0, p1 = (torch.load(out / f"params{r}.pt") for r in range(WORLD))
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0), "gradients were all-reduced"
    saved = safetensors.torch.load_file(str(out / "main.safetensors"))
    assert all(torch.equal(saved[k], p0[k]) for k in p0), "rank 0 saved the trained weights"
    assert json.loads((out / "results.json").read_text())["members"]["main"]["validation"]["labelled"]
