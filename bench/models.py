"""Model only: faces/s of every registered model at batch 1 and 32, on PyTorch (fp32 and bf16, optionally
compiled) and onnxruntime, with the achieved GFLOP/s as a fraction of this machine's matmul rate.

    python bench/models.py [--models default smm ...] [--checkpoints run/model.safetensors ...]
                           [--device cuda] [--compile] [--seconds 3] [--flip]

``default`` is the bundled model (mtl-baseline, MobileNetV2 at 112 px); every registered model runs at
its paper's input size (each model's ``paper`` settings); ``--checkpoints`` adds trained ones (a
recipe's candidate backbone, say) at their own input size. Image models run through
``TorchBackend``, exactly as ``affectlab analyze`` runs them (normalisation, channels_last, bf16
autocast with ``--precision bf16``). The sequence model (cnn-rnn) takes a batch of B faces as one clip of
B frames; the two-view context ensemble takes each crop as both of its views. FLOPs are 2 x the
multiply-adds counted by affectlab.models.count_gflops, the unit of the matmul rate, and each row is a
fraction of the limit measured at its own precision. ``--flip`` adds, for each image model whose
checkpoint turns flip averaging on (``test_time_flip``), the rows "+ flip (as analyze)": the analyzer's
own model step on the onnxruntime and PyTorch backends, each face and its mirror image, outputs
averaged: two passes measured, not one pass halved.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# torch.compile's pool of compile workers stays alive beside the timed model and takes cores from it
# (a third fewer faces/s measured on 2 cores): compile in this process instead.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
import torch  # noqa: E402

import affectlab  # noqa: F401  (torchvision compatibility before the models import it)
from affectlab.analyze.export import export_onnx
from affectlab.inference.backends import DEFAULT_MODEL, Backend, OnnxBackend, TorchBackend
from affectlab.data.transforms import normalise
from affectlab.models import AffectModel, create_model, list_models, load_model, save_checkpoint
from affectlab.models.meta import TEST_TIME_FLIP, CheckpointMeta
from affectlab.models.registry import get_model_class
from affectlab.models.table import model_row
from common import machine_limit, report, sync, table

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def rate(fn: Callable[[np.ndarray], object], batch: np.ndarray, seconds: float, device: str) -> float:
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


def torch_runner(model: AffectModel, device: str, precision: str, compiled: bool) -> Callable[[np.ndarray], object]:
    """uint8 crops -> the model's outputs, as analyze runs an image model; sequence and two-view models
    get the same normalisation, their input shaped as described in the module docstring."""
    if model.input_layout == "BCHW":
        backend = TorchBackend(model, device, precision)
        if compiled:
            backend.model = torch.compile(backend.model)
        return backend
    net = torch.compile(model.to(device).eval()) if compiled else model.to(device).eval()

    @torch.inference_mode()
    def run(crops: np.ndarray) -> object:
        x = torch.from_numpy(normalise(crops, MEAN, STD)).to(device)
        x = x.unsqueeze(0) if model.input_layout == "BTCHW" else torch.stack([x, x], dim=1)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return net(x).au.float().cpu()
    return run


def analyzer_runner(backend) -> Callable[[np.ndarray], object]:
    """uint8 crops -> outputs through the Analyzer's model step with flip averaging (both views, averaged)."""
    from affectlab.analyze.analyzer import Analyzer

    analyzer = Analyzer(backend, faces="crops", batch_size=1 << 16, flip=True)
    return lambda crops: analyzer._predict(crops, list(range(len(crops))), smooth=False)


def checkpoints(names: list[str], folder: Path) -> list[tuple[str, Path]]:
    """(label, checkpoint) of each name: ``default`` is the bundled model; a registered model is saved at its
    paper's input size (random weights: the speed is the same)."""
    out = []
    for name in names:
        if name == "default":
            out.append(("default (mtl-baseline, MobileNetV2)", DEFAULT_MODEL))
            continue
        paper = get_model_class(name).paper
        path = folder / f"{name}.safetensors"
        save_checkpoint(create_model(name, **paper.config), path, input_size=paper.input_size, mean=MEAN, std=STD)
        out.append((name, path))
    return out


def trained_label(path: Path, meta: CheckpointMeta) -> str:
    """A trained checkpoint's row label: its run folder and file, model and backbone."""
    return f"{path.parent.name}/{path.name} ({meta.model}, {meta.config.get('backbone', 'its default backbone')})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", choices=["default", *list_models()],
                        help="default and/or registered names (default: all)")
    parser.add_argument("--checkpoints", nargs="*", type=Path, default=[],
                        help="trained checkpoints to time as well (alone unless --models is given)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd PyTorch models")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per measurement")
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--flip", action="store_true", help="also time flip averaging as analyze runs it, for "
                                                           "checkpoints that turn it on")
    args = parser.parse_args()
    limits = {p: machine_limit(args.device, p) for p in args.precisions}
    onnx = not args.no_onnx and args.device == "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        names = args.models if args.models is not None else [] if args.checkpoints else ["default", *list_models()]
        for label, path in checkpoints(names, Path(tmp)) + [(None, p) for p in args.checkpoints]:
            model = load_model(path)
            label = label or trained_label(path, model.checkpoint_meta)
            size = model.checkpoint_meta.input_size
            gflop = 2 * model_row(model, size)["gflops"]  # per face
            variants = [(f"PyTorch {p}" + (" compiled" if c else ""), p, torch_runner(model, args.device, p, c))
                        for c in ([False, True] if args.compile else [False]) for p in args.precisions]
            if onnx and model.input_layout == "BCHW" and "fp32" in args.precisions:
                variants.append(("onnxruntime fp32", "fp32", OnnxBackend(export_onnx(path, Path(tmp) / "m.onnx"))))
            if args.flip and model.input_layout == "BCHW" and model.checkpoint_meta.extra.get(TEST_TIME_FLIP):
                variants += [(f"{name} + flip (as analyze)", precision, analyzer_runner(backend))
                             for name, precision, backend in list(variants) if isinstance(backend, Backend)]
            for batch in (1, 32):
                crops = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
                for backend_name, precision, run in variants:
                    faces = rate(run, crops, args.seconds, args.device)
                    achieved = faces * gflop
                    rows.append([label, size, backend_name, batch, faces, achieved,
                                 f"{achieved / limits[precision][0]:.0%}"])
                    print(rows[-1], flush=True)
    body = ("; ".join(note for _, note in limits.values()) + ". Faces/s include normalisation and the copy to "
            "the model; GFLOP/s = faces/s x 2 x the multiply-adds counted from the model; cnn-rnn: a batch is "
            "one clip of that many frames; context-ensemble: 2 views per face.\n\n"
            + table(["model", "input", "backend", "batch", "faces/s", "GFLOP/s", "of limit"], rows))
    report(f"Model throughput ({args.device})", body)


if __name__ == "__main__":
    main()
