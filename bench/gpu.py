"""The GPU checks in one run (bench/gpu.sh, at most 8 minutes on one GPU), written to one report:

1. ``affectlab analyze`` on CUDA at fp32 and bf16: frames/s of the 472-frame clip, warm;
2. each paper model's training step under bf16 autocast (forward, the three tasks' losses, backward,
   SGD), at its paper's input size: images/s and the share of the measured bf16 matmul rate;
3. a one-GPU ``torchrun`` DistributedDataParallel step (NCCL) of the default model's architecture;
4. ``affectlab analyze --engine ray`` with 2 GPU workers sharing the GPU, on 4 copies of the clip.

    bench/gpu.sh [REPORT]              # default gpu_report.md
    bench/gpu.sh --dry-run [REPORT]    # every step on the CPU at toy sizes: checks the script, not speed

With ``--dry-run`` each step runs as on the GPU but on the CPU, one step each, small inputs and a
6-frame clip (the suite runs it), so a GPU session spends its minutes measuring, not debugging.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from affectlab.analyze.analyzer import Analyzer
from affectlab.inference.backends import open_backend
from affectlab.analyze.run import run_analysis
from affectlab.models import count_gflops, create_model
from affectlab.models.registry import get_model_class, list_models
from common import MEDIA, ROOT, machine, machine_limit, matmul_gflops, sync, table

CLIP, SHORT = MEDIA / "WolfgangLanger_Pexels.mp4", MEDIA / "single_face.mp4"
DRY_SIZE = 80  # the dry run's input size: the smallest InceptionV3 (75 px) takes, rounded up


def frames_in(out: Path) -> int:
    return sum(int(pd.read_csv(csv, usecols=["frame"])["frame"].nunique()) for csv in out.glob("*.csv"))


def analyze_rows(device: str, dry: bool, tmp: Path) -> list[list[object]]:
    """Warm frames/s of one process on the clip at each precision."""
    clip, stride = (SHORT, 24) if dry else (CLIP, 1)
    rows = []
    for precision in ("fp32", "bf16"):
        analyzer = Analyzer(open_backend(None, device, precision), device=device, stride=stride)
        run_analysis(analyzer, [SHORT], tmp / f"warm_{precision}", progress=False)
        start = time.perf_counter()
        report = run_analysis(analyzer, [clip], tmp / f"analyze_{precision}", progress=False)
        wall = time.perf_counter() - start
        if report.failures:
            raise SystemExit("; ".join(report.failures))
        frames = frames_in(tmp / f"analyze_{precision}")
        rows.append([clip.name, precision, type(analyzer.backend).__name__, frames, frames / wall])
    return rows


def train_step(model: torch.nn.Module, x: torch.Tensor, optimizer: torch.optim.Optimizer, device: str) -> None:
    """Forward under bf16 autocast, a loss on all three tasks, backward, an SGD step."""
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        p = model(x)
        loss = p.au.float().mean() + p.expr.float().mean() + p.va.float().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def seconds_per_step(model: torch.nn.Module, x: torch.Tensor, optimizer: torch.optim.Optimizer, device: str,
                     steps: int, warm_up: bool) -> float:
    """Mean seconds of ``steps`` training steps, after one untimed step with ``warm_up`` (cuDNN's
    algorithm search, the allocator)."""
    if warm_up:
        train_step(model, x, optimizer, device)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, x, optimizer, device)
    sync(device)
    return (time.perf_counter() - start) / steps


def training_rows(device: str, dry: bool, limit: float) -> list[list[object]]:
    """Each registered (paper) model's bf16 training step: images/s, GFLOP/s (3x the forward) and its
    share of ``limit``, the measured bf16 GEMM rate."""
    rows = []
    for name in list_models():
        paper = get_model_class(name).paper
        size, batch, steps = (DRY_SIZE, 1, 1) if dry else (paper.input_size, 32, 10)
        model = create_model(name, **paper.config).to(device).train()
        x = model.example_input(size, batch=batch).to(device)
        if model.input_layout == "BCHW":
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        gflop = 3 * 2 * count_gflops(model, x)
        seconds = seconds_per_step(model, x, optimizer, device, steps, warm_up=not dry)
        images = x.shape[0] * (x.shape[1] if model.input_layout == "BTCHW" else 1)
        rows.append([name, size, tuple(x.shape), images / seconds, gflop / seconds, f"{gflop / seconds / limit:.1%}"])
        del model, optimizer, x
    return rows


def ddp_step(device: str, dry: bool) -> None:
    """Under torchrun: the default model's architecture in DistributedDataParallel; prints images/s as JSON."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(rank)
    size, batch, steps = (64, 2, 1) if dry else (112, 128, 20)
    model = create_model("mtl-baseline", backbone="mobilenet_v2").to(device).train()
    ddp = DistributedDataParallel(model, device_ids=[rank] if cuda else None)
    x = model.example_input(size, batch=batch).to(device)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    seconds = seconds_per_step(ddp, x, optimizer, device, steps, warm_up=True)
    if dist.get_rank() == 0:
        print(json.dumps({"images_per_s": batch / seconds, "world": dist.get_world_size(),
                          "backend": dist.get_backend(), "input": size, "batch": batch}))
    dist.destroy_process_group()


def ddp_row(device: str, dry: bool) -> list[object]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               __file__, "--ddp-step", "--device", device] + (["--dry-run"] if dry else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"torchrun step failed: {done.stderr.strip().splitlines()[-3:]}")
    result = json.loads(lines[-1])
    return [f"torchrun, {result['world']} process, {result['backend']}", f"{result['input']} px, batch {result['batch']}",
            result["images_per_s"]]


def ray_row(device: str, dry: bool, tmp: Path) -> list[object]:
    """``--engine ray`` with 2 workers (on a GPU: half a GPU each) on 4 copies of the clip, whole process."""
    corpus = tmp / "corpus"
    corpus.mkdir()
    for k in range(4):
        shutil.copy(SHORT if dry else CLIP, corpus / f"clip{k}.mp4")
    out = tmp / "ray"
    command = [sys.executable, "-m", "affectlab.cli", "analyze", str(corpus), "--out", str(out), "--quiet",
               "--engine", "ray", "--workers", "2", "--device", device] + (["--stride", "24"] if dry else [])
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"--engine ray failed: {done.stderr.strip().splitlines()[-3:]}")
    frames = frames_in(out)
    return ["affectlab analyze --engine ray --workers 2", device, 4, frames, wall, frames / wall]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", nargs="?", default="gpu_report.md")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at toy sizes")
    parser.add_argument("--ddp-step", action="store_true", help=argparse.SUPPRESS)  # internal: one torchrun rank
    args = parser.parse_args()
    device = "cpu" if args.dry_run else args.device
    if args.ddp_step:
        ddp_step(device, args.dry_run)
        return
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --dry-run to check the script on the CPU")
    start = time.perf_counter()
    if args.dry_run:
        limit, note = matmul_gflops(256, 2, device, torch.bfloat16), "bf16 limit from a 256² matmul (dry run)"
    else:
        limit, note = machine_limit(device, "bf16")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        analyze = analyze_rows(device, args.dry_run, tmp)
        training = training_rows(device, args.dry_run, limit)
        ddp = ddp_row(device, args.dry_run)
        ray = ray_row(device, args.dry_run, tmp)
    text = (f"# GPU report{' (dry run on the CPU: toy sizes, not speeds)' if args.dry_run else ''}\n\n"
            f"`bench/gpu.sh{' --dry-run' if args.dry_run else ''}`, {machine()}; {note}; "
            f"{time.perf_counter() - start:.0f} s in all.\n\n"
            "## analyze, one process, warm\n\n" + table(["video", "precision", "backend", "frames", "frames/s"], analyze)
            + "\n\n## Training step under bf16 autocast, each paper model\n\n"
            + table(["model", "input", "batch shape", "images/s", "GFLOP/s", "of bf16 limit"], training)
            + "\n\n## DistributedDataParallel\n\n" + table(["run", "step", "images/s"], [ddp])
            + "\n\n## --engine ray\n\n" + table(["command", "device", "videos", "frames", "wall s", "frames/s"], [ray])
            + "\n")
    Path(args.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
