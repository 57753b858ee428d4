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


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def machine_limit(device: str = "cpu", precision: str = "fp32") -> tuple[float, str]:
    """The roofline for the models at ``precision``: the faster of a dense matmul and the same GEMM as a
    1x1 convolution (GPU: 8192² matmul, where the GPU reaches its peak), and how both went."""
    dtype, gpu = DTYPES[precision], device.startswith("cuda")
    mm = matmul_gflops(n=8192 if gpu else 2048, device=device, dtype=dtype)
    conv = conv_gemm_gflops(channels=4096 if gpu else 1024, batch=32 if gpu else 8, device=device, dtype=dtype)
    note = (f"{precision} GEMM: torch.matmul {8192 if gpu else 2048}² {mm:,.0f} GFLOP/s, 1x1 convolution "
            f"(channels_last) {conv:,.0f} GFLOP/s; the {precision} limit is the higher, {max(mm, conv):,.0f} GFLOP/s")
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


def report(title: str, body: str, append: bool = True) -> None:
    """Print a result and, unless ``append`` is off (a script's --no-report), append it to BENCHMARKS.md
    with the command, machine and date."""
    if not append:
        print(body)
        return
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    section = (f"## {title}\n\n`{command}` — {dt.date.today().isoformat()}, {machine()}\n\n{body}\n")
    print(section)
    with RESULTS.open("a") as f:
        if f.tell() == 0:
            f.write("# Benchmarks\n\nEach section is appended by the script named in it (`bench/`); newest last.\n\n")
        f.write(section + "\n")
