"""Processes and devices of a run: this process's place in a ``torchrun`` launch, and bf16 autocast.

DistributedDataParallel when launched by ``torchrun`` (NCCL on GPUs, gloo on CPUs); rank 0 evaluates,
saves and logs, the other ranks follow its decisions (:meth:`Dist.share`)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from affectlab.train.config import Recipe


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


def use_amp(recipe: Recipe, device: torch.device) -> bool:
    """bf16 autocast: asked for, or ``auto`` on CUDA."""
    return recipe.train.amp == "bf16" or (recipe.train.amp == "auto" and device.type == "cuda")
