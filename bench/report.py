"""The result pages of a 10-minute video in headless Chromium: how long the page takes to open (charts
drawn), to switch faces and to follow a click on a timeline; beside the 72-frame sample's page.

    python bench/report.py [--frames 15000] [--repeats 3] [--chromium /usr/bin/chromium] [--no-report]

The long video's table is synthetic (two tracked faces, the second in 40 % of the frames; valence,
arousal, expressions and AUs as smooth random walks) and its video a 25 fps H.264 clip of as many
frames at 320x180, so the page plays a real file of the full length. Each open is a fresh browser
(a cold page: the Plotly bundle parsed anew). Target: a 15,000-frame page opens in under 3 s.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd

from affectlab.analyze.formats import CsvRows
from affectlab.analyze.pages import write_pages
from affectlab.analyze.results import finalize, prediction_frame
from affectlab.labels import DEFAULT_SCHEMA
from common import MEDIA, report, table

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]
FPS = 25
#: Three seconds of playback from the start: the share of the video's frames the page presented (each one
#: redraws the boxes, the playheads and the readout) and the longest main-thread task (ms).
PLAYBACK = """() => new Promise((done) => {
    const v = document.getElementById('video'), longest = [0];
    const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longest.push(e.duration)));
    observer.observe({type: 'longtask'});
    let shown = 0, first = null, last = null, step = Infinity;  // step: one frame's duration, the least gap seen
    const tick = (now, meta) => { shown++; if (last !== null && meta.mediaTime > last) step = Math.min(step, meta.mediaTime - last);
                                  first = first ?? meta.mediaTime; last = meta.mediaTime; v.requestVideoFrameCallback(tick); };
    v.muted = true;
    v.addEventListener('seeked', () => {
        v.requestVideoFrameCallback(tick);
        v.play().then(() => setTimeout(() => { v.pause(); observer.disconnect();
            done({shown: shown / ((last - first) / step + 1), longest: Math.max(...longest)}); }, 3000));
    }, {once: true});
    v.currentTime = 0;
})"""
#: The floor: a page that only loads plotly.js (what every result page pays before its own work).
FLOOR = ('<!DOCTYPE html><html><body><script src="report_files/plotly-cartesian.min.js"></script><script>'
         'performance.mark("affectlab-start"); performance.mark("affectlab-ready"); document.body.dataset.ready = "1";'
         '</script></body></html>')


def synthetic_video(path: Path, frames: int, size: tuple[int, int] = (320, 180)) -> Path:
    """``frames`` frames of a slowly changing gray picture, H.264 at 25 fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "35"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 40 + (i // FPS) % 160, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def _walk(rng: np.random.Generator, n: int, columns: int, step: float = 0.05) -> np.ndarray:
    return np.cumsum(rng.normal(0, step, (n, columns)), axis=0)


def synthetic_table(video: Path, frames: int, seed: int = 0) -> pd.DataFrame:
    """Rows of two tracked faces over ``frames`` frames, as analyze writes them."""
    rng = np.random.default_rng(seed)
    schema = DEFAULT_SCHEMA
    parts = []
    for face_id, share in ((0, 1.0), (1, 0.4)):
        index = np.arange(frames) if share == 1 else np.arange(int(frames * 0.3), int(frames * 0.7))
        n = len(index)
        logits = _walk(rng, n, schema.n_expr, 0.08)
        expr = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        va = np.tanh(_walk(rng, n, 2, 0.03))
        aus = 1 / (1 + np.exp(-_walk(rng, n, schema.n_au, 0.1)))
        meta = pd.DataFrame({"input": str(video), "frame": index + 1, "timestamp": index / FPS, "face_id": face_id,
                             "x": 40.0 + 160 * face_id, "y": 40.0, "width": 80.0, "height": 90.0, "confidence": 0.99,
                             "success": 1})
        parts.append(pd.concat([meta, prediction_frame(schema, aus, expr, va, np.full(schema.n_au, 0.5))], axis=1))
    rows = pd.concat(parts, ignore_index=True).sort_values(["frame", "face_id"], ignore_index=True)
    return finalize(rows, schema)


def open_page(browser, page_path: Path, interactive: bool = True) -> dict[str, float]:
    """Seconds to open the page until its charts are drawn (and of that, the page's own work after plotly.js
    has loaded), to switch to face 1, to seek."""
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    start = time.perf_counter()
    page.goto(page_path.as_uri())
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    opened = time.perf_counter() - start
    own = page.evaluate("performance.measure('own', 'affectlab-start', 'affectlab-ready').duration / 1000")
    if not interactive:
        page.close()
        return {"open": opened, "own": own, "switch": math.nan, "seek": math.nan, "shown": math.nan,
                "longest": math.nan}
    faces = page.evaluate("JSON.parse(document.getElementById('affectlab-data').textContent).faces.length")
    switch = page.evaluate("""async (k) => { const t = performance.now(); await window.affectlab.chooseFace(k);
        return (performance.now() - t) / 1000; }""", 1 if faces > 1 else 0)
    seek = page.evaluate("""() => new Promise((done) => { const v = document.getElementById('video'), t = performance.now();
        v.addEventListener('seeked', () => done((performance.now() - t) / 1000), {once: true});
        window.affectlab.seek(v.duration / 2); })""")
    playback = page.evaluate(PLAYBACK)
    page.close()
    if errors:
        raise SystemExit(f"{page_path}: console errors: {errors}")
    return {"open": opened, "own": own, "switch": switch, "seek": seek, "shown": playback["shown"],
            "longest": playback["longest"]}


def _share(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0%}"


def _seconds(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=15_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--no-report", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "out")
        out.mkdir()
        video = synthetic_video(Path(tmp, "long.mp4"), args.frames)
        long_table = synthetic_table(video, args.frames)
        with CsvRows(out / "long.csv") as writer:
            writer.write(long_table)
        with CsvRows(out / "single_face.csv") as writer:
            writer.write(synthetic_table(MEDIA / "single_face.mp4", 72))
        start = time.perf_counter()
        write_pages(out)
        generate = time.perf_counter() - start
        (out / "floor.html").write_text(FLOOR)
        sizes = {name: (out / f"{name}.html").stat().st_size / 1e6 for name in ("long", "single_face", "floor")}
        timings: dict[str, list[dict[str, float]]] = {"long": [], "single_face": [], "floor": []}
        with sync_playwright() as p:
            for _ in range(args.repeats):
                for name in timings:  # interleaved, so a busy machine slows both alike
                    browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
                    timings[name].append(open_page(browser, out / f"{name}.html", interactive=name != "floor"))
                    browser.close()
    rows = [[label, f"{frames:,}", f"{sizes[name]:.2f}",
             *(_seconds(statistics.median(t[k] for t in timings[name])) for k in ("open", "own", "switch", "seek")),
             _share(statistics.median(t["shown"] for t in timings[name])),
             _seconds(statistics.median(t["longest"] for t in timings[name]) / 1000),
             f"{max(t['open'] for t in timings[name]):.2f}"]
            for name, label, frames in (("long", "synthetic, 2 faces", args.frames),
                                        ("single_face", "single_face.mp4's length, 1 face", 72),
                                        ("floor", "none: a blank page loading plotly.js only", 0))]
    load = os.getloadavg()[0]
    body = (f"Pages written for both tables in {generate:.1f} s (`write_pages`). Median of {args.repeats} cold opens "
            "(a fresh headless Chromium each), interleaved: open = navigation until every chart is drawn; page's own "
            "work = of that, the time after plotly.js has loaded (reading the data, drawing the charts); switch = "
            "choosing the other face until its charts are redrawn; seek = a timeline position until the video has "
            "seeked there; playback = 3 s from the start: the share of the frames the page presented (each "
            "redrawing the boxes, playheads and readout) and the longest main-thread task (the browser reports "
            f"tasks over 50 ms; 0: none). Load average at the end: {load:.1f} on {os.cpu_count()} cores.\n\n"
            + table(["video", "frames", "page (MB)", "open (s)", "page's own work (s)", "switch face (s)", "seek (s)",
                     "frames shown in playback", "longest task in playback (s)", "slowest open (s)"], rows))
    report("Result pages in Chromium (analyze --report)", body, append=not args.no_report)


if __name__ == "__main__":
    main()
