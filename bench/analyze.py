"""End to end: ``affectlab analyze`` on the sample videos, warm (frames/s of decode -> detect -> align ->
predict -> write CSV, split by stage, after the model and detector are loaded) and as whole processes
(what a user waits for: start-up, one photo, the 472-frame clip), side by side with ``import torch``.

    python bench/analyze.py [--detect-every 1 6] [--precision fp32 bf16] [--repeats 5] [--landmarks]
                            [--baseline OTHER/src] [--peer-command "CMD {input}"] [--model CKPT] [--device cpu]

``--baseline`` runs the whole-process commands and the warm one-face figure with another checkout's
``src`` on PYTHONPATH too (e.g. a worktree of the previous commit), interleaved with this one's so a
busy machine slows both alike. ``--peer-command`` times another tool on the clip the same way
(``{input}`` is replaced by the video's path; bench/peer_fer.py runs the pip peer ``fer``).
``--landmarks`` adds the clip with ``--landmarks`` to the whole-process commands. "Several faces" is WolfgangLanger_Pexels.mp4 tiled
2 x 2 (1280x720, four faces a frame), made on the fly.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.media import iter_video
from affectlab.inference.backends import open_backend
from affectlab.analyze.run import run_analysis
from common import MEDIA, ROOT, report, table

STAGES = ("decode", "detect", "refine", "landmarks", "align", "predict")
PHOTO, CLIP = MEDIA / "single_face.jpg", MEDIA / "WolfgangLanger_Pexels.mp4"


def tiled_video(source: Path, out: Path, tiles: int = 2) -> Path:
    """``source`` repeated ``tiles`` x ``tiles`` in one frame: several faces of realistic size and motion."""
    with av.open(str(out), "w") as container:
        stream = None
        for frame in iter_video(source):
            big = np.tile(frame.image, (tiles, tiles, 1))
            if stream is None:
                stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=24)
                stream.width, stream.height, stream.pix_fmt = big.shape[1], big.shape[0], "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def measure(analyzer: Analyzer, video: Path, out: Path) -> list[object]:
    """Frames, frames/s and stage shares of one warm ``run_analysis``."""
    analyzer.timings.clear()
    start = time.perf_counter()
    result = run_analysis(analyzer, [video], out, progress=False)
    wall = time.perf_counter() - start
    if result.failures:
        raise SystemExit("; ".join(result.failures))
    frames = len(set(np.loadtxt(out / f"{video.stem}.csv", delimiter=",", skiprows=1, usecols=1, dtype=int)))
    staged = {s: analyzer.timings[s] for s in STAGES}
    other = wall - sum(staged.values())
    shares = [f"{100 * staged[s] / wall:.0f}%" for s in STAGES] + [f"{100 * other / wall:.0f}%"]
    return [frames, frames / wall, *shares]


def warm_rows(args: argparse.Namespace, tmp: Path) -> list[list[object]]:
    videos = [("1 face, 640x360", CLIP), ("1 face, 640x360", MEDIA / "single_face.mp4")]
    if not args.one_face:
        videos.append(("4 faces, 1280x720", tiled_video(CLIP, tmp / "four_faces.mp4")))
    rows = []
    for precision in args.precision:
        backend = open_backend(args.model, args.device, precision)
        name = f"{'onnxruntime' if type(backend).__name__ == 'OnnxBackend' else 'PyTorch'} {precision}"
        for k in args.detect_every:
            analyzer = Analyzer(backend, device=args.device, detect_every=k)
            for label, video in videos:
                rows.append([video.name, label, k, name, *measure(analyzer, video, tmp / f"out{k}")])
                print(rows[-1], flush=True)
    return rows


def whole_process(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process, start to exit."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{shlex.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall


def whole_process_rows(args: argparse.Namespace, tmp: Path) -> tuple[list[list[object]], str]:
    """Median (and fastest) wall time of each command over ``--repeats`` interleaved rounds."""
    python, here = sys.executable, str(ROOT / "src")
    analyze = [python, "-m", "affectlab.cli", "analyze", "--quiet", "--out"]
    jobs: list[tuple[str, str, list[str], str | None]] = [("python -c 'import torch'", "-", [python, "-c", "import torch"], None)]
    versions = [("this checkout", here)] + ([("baseline", str(Path(args.baseline).resolve()))] if args.baseline else [])
    for version, src in versions:
        jobs.append((f"affectlab analyze single_face.jpg ({version})", "1 image", analyze + [str(tmp / "p"), str(PHOTO)], src))
        jobs.append((f"affectlab analyze {CLIP.name} ({version})", "472 frames",
                     analyze + [str(tmp / "c"), str(CLIP)], src))
        if args.landmarks:
            jobs.append((f"affectlab analyze {CLIP.name} --landmarks ({version})", "472 frames",
                         analyze + [str(tmp / "l"), str(CLIP), "--landmarks"], src))
    if args.peer_command:
        jobs.append((f"peer: {args.peer_command}", "472 frames", shlex.split(args.peer_command.format(input=CLIP)), None))
    times: dict[str, list[float]] = {name: [] for name, *_ in jobs}
    for _ in range(args.repeats):
        for name, _, command, src in jobs:
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = src
            times[name].append(whole_process(command, env))
            print(name, f"{times[name][-1]:.2f} s", flush=True)
    torch_s = statistics.median(times[jobs[0][0]])
    rows = []
    for name, work, _, _ in jobs:
        median = statistics.median(times[name])
        rate = f"{472 / median:.1f}" if work == "472 frames" else ""
        rows.append([name, work, median, min(times[name]), rate, f"{median / torch_s:.2f}"])
    ratios = []
    for version, _ in versions:
        clip = statistics.median(times[f"affectlab analyze {CLIP.name} ({version})"])
        if args.landmarks:
            marked = statistics.median(times[f"affectlab analyze {CLIP.name} --landmarks ({version})"])
            ratios.append(f"--landmarks costs {marked / clip:.2f}x the plain time ({version})")
        if args.peer_command:
            peer_s = statistics.median(times[f"peer: {args.peer_command}"])
            ratios.append(f"the peer takes {peer_s / clip:.2f}x this tool's time ({version})")
    peer = ("" if args.peer_command else
            "No peer was timed: " + ("`fer` is installed; pass its command as --peer-command."
                                     if importlib.util.find_spec("fer") else
                                     "the simplest pip expression peer, `fer`, is not installed here (its wheel "
                                     "downloads, but it needs tensorflow and facenet-pytorch, which this "
                                     "environment does not have); the target ratio to it is unmeasured."))
    return rows, "\n\n".join(filter(None, [". ".join(ratios) + ("." if ratios else ""), peer]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint or .onnx (default: the bundled model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detect-every", type=int, nargs="+", default=[1, 6])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="the model's precision (analyze --precision)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the whole-process commands")
    parser.add_argument("--baseline", help="another checkout's src folder, timed side by side")
    parser.add_argument("--peer-command", help="another tool's command on the clip, '{input}' for its path")
    parser.add_argument("--one-face", action="store_true", help="skip the four-face video")
    parser.add_argument("--landmarks", action="store_true", help="also time the clip with --landmarks, whole process")
    parser.add_argument("--warm-json", help=argparse.SUPPRESS)  # internal: the baseline's warm figure
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.warm_json:
            analyzer = Analyzer(open_backend(), detect_every=1)
            Path(args.warm_json).write_text(json.dumps(measure(analyzer, CLIP, tmp)))
            return
        rows = warm_rows(args, tmp)
        baseline = ""
        if args.baseline:
            env = dict(os.environ, PYTHONPATH=str(Path(args.baseline).resolve()))
            subprocess.run([sys.executable, __file__, "--warm-json", str(tmp / "b.json")], env=env, check=True)
            frames, rate, *_ = json.loads((tmp / "b.json").read_text())
            ours = max(r[5] for r in rows if r[0] == CLIP.name and r[3].endswith("fp32"))
            baseline = (f"\n\nBaseline (`{args.baseline}`), warm, {CLIP.name}, detect every frame, fp32: "
                        f"{rate:.1f} frames/s; this checkout's fastest row above: {ours:.1f} frames/s "
                        f"({ours / rate:.2f}x).")
        whole, peer = whole_process_rows(args, tmp)
    header = ["video", "faces", "detect every", "model", "frames", "frames/s", *STAGES, "write+other"]
    body = ("Warm: wall time of `run_analysis` (CSV written), after the model and detector are loaded; stage shares "
            "of that wall time.\n\n" + table(header, rows) + baseline
            + f"\n\nWhole processes, {args.repeats} interleaved rounds (`python -m affectlab.cli analyze --quiet "
            "--out DIR INPUT`, the CLI's defaults):\n\n"
            + table(["command", "work", "median s", "fastest s", "frames/s", "x import torch"], whole)
            + (f"\n\n{peer}" if peer else ""))
    report(f"End-to-end analyze ({args.device})", body)


if __name__ == "__main__":
    main()
