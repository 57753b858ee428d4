"""``affectlab analyze`` as a whole run: many inputs, files written as rows come, one line per failure.

Each video goes to ``OUT/<video stem>.csv`` (written as ``.csv.partial`` until the video is done, so
an interrupted run keeps its rows and ``skip_existing`` redoes only unfinished videos); all images
of the run go to ``OUT/images.csv``. A bad input is reported in one line and the others go on.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.media import expand_inputs, is_video, video_info
from affectlab.analyze.writers import CsvRows, describe, write_abaw_mtl, write_abaw_task_files
from affectlab.errors import AffectlabError, DataError

IMAGES_CSV = "images.csv"


@dataclass
class RunReport:
    """What a run wrote, what failed (one line each) and a human summary per output."""

    written: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)


def output_names(videos: Sequence[Path]) -> dict[Path, str]:
    """``<stem>`` per video, or ``<folder>_<stem>`` where two videos share a stem."""
    stems = Counter(v.stem for v in videos)
    return {v: v.stem if stems[v.stem] == 1 else f"{v.parent.name}_{v.stem}" for v in videos}


def run_analysis(analyzer: Analyzer, inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
                 skip_existing: bool = False, plots: bool = False, video_out: bool = False, abaw: bool = False,
                 progress: bool = True, log: Callable[[str], None] = print) -> RunReport:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, errors = expand_inputs(inputs)
    report = RunReport(failures=[str(e) for e in errors])
    videos = [f for f in files if is_video(f)]
    for video, name in output_names(videos).items():
        _run_video(analyzer, video, name, out, report, skip_existing, progress, log)
        table_path = out / f"{name}.csv"
        if table_path in report.written:
            _extras(analyzer, pd.read_csv(table_path), name, out, report, plots, abaw, video_out and video)
    images = [f for f in files if not is_video(f)]
    if images:
        _run_images(analyzer, images, out, report, skip_existing, progress)
        table = pd.read_csv(out / IMAGES_CSV)
        if len(table):
            report.summaries.append(f"images: {describe(table, analyzer.schema)}")
            _extras(analyzer, table, "images", out, report, plots, abaw, None)
    return report


def _run_video(analyzer: Analyzer, video: Path, name: str, out: Path, report: RunReport, skip_existing: bool,
               progress: bool, log: Callable[[str], None]) -> None:
    final = out / f"{name}.csv"
    if skip_existing and final.is_file():
        log(f"{video}: already analysed in {final}, skipped")
        return
    partial = final.with_name(final.name + ".partial")
    try:
        info = video_info(video)
        total = None if info.frames is None else -(-info.frames // analyzer.stride)
    except DataError as e:
        report.failures.append(str(e))
        return
    rows = 0
    with CsvRows(partial) as writer, tqdm(total=total, unit="frame", desc=name, disable=not progress,
                                          leave=False, dynamic_ncols=True) as bar:
        try:
            for chunk in analyzer.iter_rows(video):
                writer.write(chunk)
                done = chunk["frame"].nunique()
                rows += done
                bar.update(done)
        except DataError as e:
            report.failures.append(f"{e}; kept the {rows} frames before it" if rows else str(e))
    if rows:
        os.replace(partial, final)
        report.written.append(final)
        report.summaries.append(f"{name}: {describe(pd.read_csv(final), analyzer.schema)}")
    else:
        partial.unlink(missing_ok=True)


def _run_images(analyzer: Analyzer, images: list[Path], out: Path, report: RunReport, skip_existing: bool,
                progress: bool) -> None:
    path = out / IMAGES_CSV
    if skip_existing and path.is_file():
        done = set(pd.read_csv(path, usecols=["input"])["input"].astype(str))
        images = [i for i in images if os.fspath(i) not in done]
    with CsvRows(path, append=skip_existing) as writer, tqdm(total=len(images), unit="image", desc="images",
                                                             disable=not progress, leave=False) as bar:
        for result in analyzer.analyze_images(images):
            if isinstance(result, DataError):
                report.failures.append(str(result))
                bar.update(1)
                continue
            writer.write(result)
            bar.update(result["input"].nunique())
    report.written.append(path)


def _extras(analyzer: Analyzer, table: pd.DataFrame, name: str, out: Path, report: RunReport, plots: bool,
            abaw: bool, video: Path | None | bool) -> None:
    """Plots, the annotated video and ABAW files of one finished output; a failure here is one line too."""
    try:
        if plots:
            from affectlab.analyze.plots import plot_all

            report.written += plot_all(table, out, name)
        if video:
            from affectlab.analyze.overlay import write_overlay_video

            report.written.append(write_overlay_video(video, table, out / f"{name}_annotated.mp4",
                                                      stride=analyzer.stride))
        if abaw:
            if name == "images":
                report.written.append(write_abaw_mtl(table, out / "abaw" / "mtl.txt", analyzer.schema))
            else:
                report.written += write_abaw_task_files(table, out / "abaw", name, analyzer.schema)
    except AffectlabError as e:
        report.failures.append(f"{name}: {e}")
