"""A corpus of videos: ``affectlab analyze`` in one process against ``--engine ray`` with 1 and 2 workers,
whole processes (Ray's start included), side by side; and the cost of one video task by stage.

    python bench/corpus.py [--copies 2] [--workers 1 2] [--repeats 1] [--landmarks] [--no-report]

The corpus is every sample video of ../shared/data/media (examples/media where that is absent), each
``--copies`` times under another name (at least 8 videos). Reported: videos/hour and frames/s of each
configuration, the machine's load average before and after (other work on the machine slows every row
alike, as they run interleaved), and, from a warm analyzer with ``--landmarks`` on the longest video,
the seconds per frame of each stage: decode, full detection, refinement between detections, landmarks
(mesh, iris, pose, gaze), alignment, the model, and the CSV writing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.media import VIDEO_SUFFIXES, video_info
from affectlab.analyze.run import run_analysis
from common import MEDIA, ROOT, report, table

SHARED_MEDIA = ROOT.parent / "shared" / "data" / "media"
STAGES = ("decode", "detect", "refine", "landmarks", "align", "predict")


def sample_videos() -> list[Path]:
    """Every sample video that opens, shared media first."""
    folder = SHARED_MEDIA if SHARED_MEDIA.is_dir() else MEDIA
    videos = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            try:
                video_info(path)
            except Exception:  # a non-video with a video suffix: not part of the corpus
                continue
            videos.append(path)
    return videos


def build_corpus(folder: Path, copies: int) -> list[Path]:
    """Each sample video ``copies`` times, linked under distinct names."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = []
    for k in range(copies):
        for video in sample_videos():
            link = folder / f"c{k}_{video.name}"
            link.symlink_to(video)
            corpus.append(link)
    return corpus


def frames_written(out: Path) -> int:
    return sum(int(pd.read_csv(csv, usecols=["frame"])["frame"].nunique()) for csv in out.glob("*.csv"))


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def whole_runs(corpus: Path, n_videos: int, workers: list[int], repeats: int, landmarks: bool,
               tmp: Path) -> list[list[object]]:
    """Wall time of each configuration as a whole process, interleaved over ``repeats`` rounds."""
    base = [sys.executable, "-m", "affectlab.cli", "analyze", str(corpus), "--quiet"] + (["--landmarks"] if landmarks else [])
    configs = [("one process", "-", [])] + [("ray", str(w), ["--engine", "ray", "--workers", str(w)]) for w in workers]
    walls: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    frames: dict[int, int] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for r in range(repeats):
        for i, (engine, _, extra) in enumerate(configs):
            out = tmp / f"out{i}_{r}"
            start = time.perf_counter()
            done = subprocess.run(base + ["--out", str(out)] + extra, env=env, capture_output=True, text=True)
            walls[i].append(time.perf_counter() - start)
            if done.returncode:
                raise SystemExit(f"{engine} failed: {done.stderr.strip().splitlines()[-1:]}")
            frames[i] = frames_written(out)
            print(engine, extra, f"{walls[i][-1]:.1f} s", flush=True)
    rows = []
    for i, (engine, n, _) in enumerate(configs):
        wall = min(walls[i])
        rows.append([engine, n, n_videos, frames[i], wall, frames[i] / wall, 3600 * n_videos / wall])
    return rows


def stage_costs(video: Path, tmp: Path) -> list[list[object]]:
    """Milliseconds per frame of each stage of one warm video task with landmarks (the CSV write is the
    rest of run_analysis's wall time)."""
    analyzer = Analyzer(landmarks=True)
    run_analysis(analyzer, [video], tmp / "warmup", progress=False)
    analyzer.timings.clear()
    start = time.perf_counter()
    run_analysis(analyzer, [video], tmp / "stages", progress=False)
    wall = time.perf_counter() - start
    frames = frames_written(tmp / "stages")
    staged = {s: analyzer.timings[s] for s in STAGES}
    staged["write and the rest"] = wall - sum(staged.values())
    return [[stage, 1000 * seconds / frames, f"{100 * seconds / wall:.0f}%"] for stage, seconds in staged.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=2, help="each sample video this many times")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--landmarks", action="store_true", help="analyse with --landmarks")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = build_corpus(tmp / "corpus", args.copies)
        if len(corpus) < 8:
            raise SystemExit(f"only {len(corpus)} sample videos; use more --copies")
        before = load()
        rows = whole_runs(tmp / "corpus", len(corpus), args.workers, args.repeats, args.landmarks, tmp)
        after = load()
        longest = max(sample_videos(), key=lambda v: video_info(v).frames or 0)
        stages = stage_costs(longest, tmp)
    body = (f"{len(corpus)} videos ({len(corpus) // args.copies} sample videos x {args.copies}), "
            f"{'with' if args.landmarks else 'without'} --landmarks; whole processes (`affectlab analyze CORPUS "
            f"--quiet [--engine ray --workers N]`, Ray's local start included), fastest of {args.repeats}, "
            f"run one after the other; load average (1, 5, 15 min) {before} before, {after} after.\n\n"
            + table(["engine", "workers", "videos", "frames", "wall s", "frames/s", "videos/hour"], rows)
            + f"\n\nOne video task by stage, warm, `--landmarks`, {longest.name}:\n\n"
            + table(["stage", "ms per frame", "share"], stages))
    report("Corpus throughput (cpu)", body, append=not args.no_report)


if __name__ == "__main__":
    main()
