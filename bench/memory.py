"""Memory: peak resident memory while analysing a long video must stay flat, whatever the length.

    python bench/memory.py [--minutes 10] [--detect-every 1]

The long video is WolfgangLanger_Pexels.mp4 (19.7 s) repeated by stream copy (no re-encoding) to
the requested length. The resident set size is sampled after every chunk of frames.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import av

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.run import run_analysis
from common import MEDIA, report, table


def rss_mb() -> float:
    """Current resident set size of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def repeated_video(source: Path, out: Path, minutes: float) -> tuple[Path, int]:
    """``source`` concatenated until it lasts ``minutes``, by copying packets with shifted timestamps."""
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.dts is not None]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        repeats = int(minutes * 60 / float(span * stream.time_base)) + 1
        with av.open(str(out), "w") as dst:
            copy = dst.add_stream_from_template(stream)
            for r in range(repeats):
                for p in packets:
                    p.pts, p.dts = p.pts + (span if r else 0), p.dts + (span if r else 0)
                    p.stream = copy
                    dst.mux(p)
    return out, repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--detect-every", type=int, default=1)
    parser.add_argument("--model", help="checkpoint or .onnx (default: the bundled model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video, repeats = repeated_video(MEDIA / "WolfgangLanger_Pexels.mp4", Path(tmp) / "long.mp4", args.minutes)
        analyzer = Analyzer(args.model, detect_every=args.detect_every)
        samples: list[tuple[int, float]] = []
        original = analyzer.iter_rows

        def sampled(path):
            done = 0
            for chunk in original(path):
                done += chunk["frame"].nunique()
                samples.append((done, rss_mb()))
                yield chunk

        analyzer.iter_rows = sampled
        before = rss_mb()
        start = time.perf_counter()
        result = run_analysis(analyzer, [video], Path(tmp) / "out", progress=False)
        wall = time.perf_counter() - start
    if result.failures:
        raise SystemExit("; ".join(result.failures))
    frames = samples[-1][0]
    picks = [samples[int(f * (len(samples) - 1))] for f in (0, 0.1, 0.25, 0.5, 0.75, 1.0)]
    rows = [[f"{done:,}", f"{done / frames:.0%}", mb] for done, mb in picks]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    growth = picks[-1][1] - picks[1][1]
    body = (f"{frames:,} frames ({frames / 24 / 60:.1f} min at 24 fps, the sample repeated {repeats}x), "
            f"detect every {args.detect_every}, {frames / wall:.0f} frames/s. RSS before the run {before:.0f} MB; "
            f"peak RSS of the process {peak:.0f} MB; change from 10% to 100% of the video {growth:+.0f} MB.\n\n"
            + table(["frames done", "of video", "RSS (MB)"], rows))
    report("Memory on a long video", body)


if __name__ == "__main__":
    main()
