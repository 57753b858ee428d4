"""Shared by the benchmarks: the machine, its matmul limit, and appending results to BENCHMARKS.md."""
from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "BENCHMARKS.md"
MEDIA = ROOT / "examples" / "media"


def machine() -> str:
    """Cores, CPU model, torch threads and GPU, as one line."""
    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__} with {torch.get_num_threads()} threads, {gpu}"


def matmul_gflops(n: int = 2048, repeats: int = 10, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """``torch.matmul``'s dense rate (GFLOP/s, 2·n³ per product)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return _rate(lambda: a @ b, 2 * n**3, repeats, device)


def conv_gemm_gflops(channels: int = 1024, side: int = 32, batch: int = 8, repeats: int = 10, device: str = "cpu",
                     dtype: torch.dtype = torch.float32) -> float:
    """The same GEMM through the convolution library (a 1x1 convolution, channels_last): on CPUs where
    torch.matmul's BLAS is not tuned (MKL on AMD) the convolution kernels run far faster, and they are
    what the models use."""
    conv = torch.nn.Conv2d(channels, channels, 1, bias=False).to(device, dtype).to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return _rate(lambda: conv(x), 2 * batch * side * side * channels * channels, repeats, device)


def machine_limit(device: str = "cpu") -> tuple[float, str]:
    """The roofline for the models: the faster of the two GEMM measurements, and how both went."""
    mm, conv = matmul_gflops(device=device), conv_gemm_gflops(device=device)
    note = (f"fp32 GEMM: torch.matmul 2048² {mm:,.0f} GFLOP/s, 1x1 convolution (channels_last) {conv:,.0f} GFLOP/s; "
            f"the limit used below is the higher, {max(mm, conv):,.0f} GFLOP/s")
    return max(mm, conv), note


def _rate(step, flops: float, repeats: int, device: str) -> float:
    for _ in range(2):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync(device)
    return repeats * flops / (time.perf_counter() - start) / 1e9


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def report(title: str, body: str) -> None:
    """Print a result and append it to BENCHMARKS.md with the command, machine and date."""
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    section = (f"## {title}\n\n`{command}` — {dt.date.today().isoformat()}, {machine()}\n\n{body}\n")
    print(section)
    with RESULTS.open("a") as f:
        if f.tell() == 0:
            f.write("# Benchmarks\n\nEach section is appended by the script named in it (`bench/`); newest last.\n\n")
        f.write(section + "\n")
