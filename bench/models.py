"""Model only: faces/s of every registered model at batch 1 and 32, PyTorch and onnxruntime, and the
achieved GFLOP/s as a fraction of this machine's matmul rate.

    python bench/models.py [--models mtl-baseline smm ...] [--device cuda] [--seconds 3]

Each model runs at its paper's input size (affectlab.models.table.PAPER_SETTINGS) plus the default
small model (mtl-baseline with MobileNetV2 at 112 px). FLOPs are 2 x the multiply-adds counted by
affectlab.models.count_gflops, the same unit as the matmul rate.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import affectlab  # noqa: F401  (torchvision compatibility before the models import it)
from affectlab.analyze.predict import OnnxBackend, TorchBackend, export_onnx
from affectlab.models import count_gflops, create_model, list_models, save_checkpoint
from affectlab.models.table import PAPER_SETTINGS
from common import machine_limit, report, sync, table

DEFAULT = ("mtl-baseline (MobileNetV2, default)", "mtl-baseline", {"backbone": "mobilenet_v2"}, 112)


def rate(fn, batch: np.ndarray, seconds: float, device: str) -> float:
    """Faces per second of ``fn(batch)``, after a warm-up, over at least ``seconds``."""
    fn(batch)
    fn(batch)
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 3:
        fn(batch)
        n += 1
    sync(device)
    return n * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", help="registered names (default: all image models)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--no-onnx", action="store_true")
    args = parser.parse_args()
    limit, limit_note = machine_limit(args.device)
    names = args.models or [n for n in list_models() if n not in ("cnn-rnn", "context-ensemble")]
    runs = [DEFAULT] + [(n, n, *PAPER_SETTINGS[n]) for n in names]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, config, size in runs:
            model = create_model(name, **config)
            gflop = 2 * count_gflops(model, torch.zeros(1, 3, size, size))
            path = Path(tmp) / f"{name}.safetensors"
            save_checkpoint(model, path, input_size=size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
            from affectlab.models import load_model

            torch_backend = TorchBackend(load_model(path), args.device)
            onnx_backend = None if args.no_onnx or args.device != "cpu" else OnnxBackend(
                export_onnx(path, Path(tmp) / f"{name}.onnx"))
            for batch in (1, 32):
                crops = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                for backend_name, backend in (("PyTorch", torch_backend), ("onnxruntime", onnx_backend)):
                    if backend is None:
                        continue
                    faces = rate(backend, crops, args.seconds, args.device)
                    achieved = faces * gflop
                    rows.append([label, size, backend_name, batch, faces, achieved, f"{achieved / limit:.0%}"])
                    print(rows[-1], flush=True)
    body = (f"{limit_note}. Faces/s include normalisation and the copy to the model; GFLOP/s = faces/s x "
            "2 x the multiply-adds counted from the model.\n\n"
            + table(["model", "input", "backend", "batch", "faces/s", "GFLOP/s", "of limit"], rows))
    report(f"Model throughput ({args.device})", body)


if __name__ == "__main__":
    main()
