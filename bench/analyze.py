"""End to end: ``affectlab analyze`` frames/s on the sample videos (decode -> detect -> align -> predict ->
write CSV), split by stage, for one face and several faces, detecting on every frame and every k-th.

    python bench/analyze.py [--model CKPT] [--detect-every 1 3] [--device cpu] [--precision fp32 bf16]

"Several faces" is WolfgangLanger_Pexels.mp4 tiled 2 x 2 (1280x720, four faces a frame), made on the fly.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.predict import default_backend, load_backend
from affectlab.analyze.media import iter_video
from affectlab.analyze.run import run_analysis
from common import MEDIA, report, table

STAGES = ("decode", "detect", "align", "predict")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="checkpoint or .onnx (default: the bundled model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detect-every", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="the model's precision (analyze --precision)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [("1 face, 640x360", MEDIA / "WolfgangLanger_Pexels.mp4"),
                  ("1 face, 640x360", MEDIA / "single_face.mp4"),
                  ("4 faces, 1280x720", tiled_video(MEDIA / "WolfgangLanger_Pexels.mp4", tmp / "four_faces.mp4"))]
        for precision in args.precision:
            backend = (default_backend(args.device, precision) if args.model is None
                       else load_backend(args.model, args.device, precision))
            for k in args.detect_every:
                analyzer = Analyzer(backend, device=args.device, detect_every=k)
                for label, video in videos:
                    rows.append([video.name, label, k, precision, *measure(analyzer, video, tmp / f"out{k}")])
                    print(rows[-1], flush=True)
    header = ["video", "faces", "detect every", "model", "frames", "frames/s", *STAGES, "write+other"]
    report(f"End-to-end analyze ({args.device})", "Wall time of `run_analysis` (CSV written), after the model "
           "and detector are loaded; stage shares of that wall time.\n\n" + table(header, rows))


if __name__ == "__main__":
    main()
