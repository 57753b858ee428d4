"""``affectlab analyze`` as a whole run: many inputs, files written as rows come, one line per failure.

Each video goes to ``OUT/<video stem>.csv`` (written as ``.csv.partial`` until the video is done, so
an interrupted run keeps its rows and ``skip_existing`` redoes only unfinished videos); all images
of the run go to ``OUT/images.csv``. A bad input is reported in one line and the others go on. The
output folder and the inputs are checked by :func:`prepare` before any model is needed, so a mistake
in them costs no wait. The rows come from an :class:`Engine`: this process, or a Ray cluster
(affectlab.analyze.corpus); the tables are written here either way, so they are the same.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd
from tqdm import tqdm

from affectlab.analyze.abaw import write_abaw_mtl, write_abaw_task_files
from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.formats import CsvRows, checked_results, read_results
from affectlab.analyze.lock import OutputLock
from affectlab.analyze.media import expand_inputs, is_video, video_info
from affectlab.analyze.results import describe
from affectlab.errors import AffectlabError, DataError
from affectlab.labels import LabelSchema

IMAGES_CSV = "images.csv"


@dataclass
class RunReport:
    """What a run wrote, what failed (one line each), what was already done, and a summary per output."""

    written: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs already analysed in OUT (skip_existing)
    analysed: int = 0  # inputs that gave rows in this run

    @property
    def exit_status(self) -> int:
        """0: all went well; 1: some inputs failed while others were done; 2: nothing could be done."""
        if not self.failures:
            return 0
        return 1 if self.analysed or self.skipped else 2


@dataclass(frozen=True)
class Extras:
    """The outputs asked for beside each table."""

    plots: bool = False
    video_out: bool = False
    abaw: bool = False


@dataclass(frozen=True)
class Inputs:
    """The media files a run will analyse, and one error per input that names nothing usable."""

    files: list[Path]
    errors: list[DataError]


def output_folder(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir``, created and checked writable; DataError naming it otherwise (e.g. it is a file)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(out, "the output folder (--out) is a file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".affectlab-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise DataError(out, f"cannot write to the output folder ({e.strerror or e})") from None
    return out


def prepare(inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> Inputs:
    """Check the output folder (writable, no other run writing to it) and find the media files, before any
    model is loaded."""
    out = output_folder(out_dir)
    OutputLock(out).check_free()
    files, errors = expand_inputs(inputs, exclude=out)
    return Inputs(files, errors)


def output_names(paths: Sequence[Path]) -> dict[Path, str]:
    """``<stem>`` per file, or ``<folder>_<stem>`` where two files share a stem."""
    stems = Counter(v.stem for v in paths)
    return {v: v.stem if stems[v.stem] == 1 else f"{v.parent.name}_{v.stem}" for v in paths}


class Engine(Protocol):
    """Where the rows come from: this process (:class:`LocalEngine`) or a Ray cluster
    (``affectlab.analyze.corpus.RayEngine``); run_analysis writes them the same way whichever it is."""

    schema: LabelSchema
    stride: int

    def videos(self, names: dict[Path, str]) -> Iterator[tuple[Path, Iterable[pd.DataFrame]]]:
        """Each video with its row chunks (in frame order; a DataError after the last good chunk), videos in
        any order."""

    def images(self, images: list[Path]) -> Iterator[pd.DataFrame | DataError]:
        """Rows of the images in their order, a DataError in place of each bad one."""


class LocalEngine:
    """The analyzer in this process, one video after the other, a progress bar per video."""

    def __init__(self, analyzer: Analyzer, progress: bool = True):
        self.analyzer, self.progress = analyzer, progress
        self.schema, self.stride = analyzer.schema, analyzer.stride

    def videos(self, names: dict[Path, str]) -> Iterator[tuple[Path, Iterable[pd.DataFrame]]]:
        for video, name in names.items():
            yield video, self._rows(video, name)

    def _rows(self, video: Path, name: str) -> Iterator[pd.DataFrame]:
        info = video_info(video)  # a file that does not open fails here, before any model time
        total = None if info.frames is None else -(-info.frames // self.stride)
        with tqdm(total=total, unit="frame", desc=name, disable=not self.progress, leave=False,
                  dynamic_ncols=True) as bar:
            for chunk in self.analyzer.iter_rows(video):
                yield chunk
                bar.update(chunk["frame"].nunique())

    def images(self, images: list[Path]) -> Iterator[pd.DataFrame | DataError]:
        return self.analyzer.analyze_images(images)


def run_analysis(analyzer: Analyzer | Engine, inputs: Sequence[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str], *, skip_existing: bool = False, plots: bool = False,
                 video_out: bool = False, abaw: bool = False, fmt: str = "native", progress: bool = True,
                 parquet: bool = False, pages: bool = False) -> RunReport:
    """Analyse every input into ``out_dir``, the tables in ``fmt`` (native, openface, feat); never raises
    for one bad input (see RunReport). ``analyzer``: an Analyzer (run here) or an Engine; ``parquet``:
    also each table as ``parquet/<name>.parquet`` (analyze.parquet); ``pages``: then the HTML pages of
    everything in ``out_dir``. Holds ``out_dir``'s lock: another run writing there is refused."""
    engine = LocalEngine(analyzer, progress) if isinstance(analyzer, Analyzer) else analyzer
    found = prepare(inputs, out_dir)
    with OutputLock(out_dir):
        return _analyse(engine, found, Path(out_dir), Extras(plots, video_out, abaw), skip_existing, progress, fmt,
                        parquet, pages)


def _analyse(engine: Engine, found: Inputs, out: Path, extras: Extras, skip_existing: bool, progress: bool,
             fmt: str, parquet: bool, pages: bool) -> RunReport:
    report = RunReport(failures=[str(e) for e in found.errors])
    names = output_names([f for f in found.files if is_video(f)])
    todo = {}
    for video, name in names.items():
        final = out / f"{name}.csv"
        if skip_existing and final.is_file():
            table = earlier_table(video, final, fmt, report)
            if table is not None:
                _outputs(engine, table, name, out, report, _missing(extras, out, name), video, parquet, fmt)
        else:
            todo[video] = name
    for video, chunks in engine.videos(todo):
        table = write_video(chunks, out / f"{todo[video]}.csv", todo[video], report, fmt, engine.schema)
        if table is not None:
            _outputs(engine, table, todo[video], out, report, extras, video, parquet, fmt, fresh=True)
    images = [f for f in found.files if not is_video(f)]
    if images:
        fresh = _run_images(engine, images, out, report, skip_existing, progress, fmt)
        table = _read_table(out / IMAGES_CSV, fmt)
        if table is not None:
            report.summaries.append(f"images: {describe(table, engine.schema)}")
            wanted = extras if fresh else _missing(extras, out, "images", images)
            _outputs(engine, table, "images", out, report, wanted, None, parquet, fmt, fresh)
    if pages:
        _pages(out, report)
    return report


def _outputs(engine: Engine, table: pd.DataFrame, name: str, out: Path, report: RunReport, extras: Extras,
             video: Path | None, parquet: bool, fmt: str, fresh: bool = False) -> None:
    """What a finished table gets beside it: the asked-for extras and, with ``parquet``, its Parquet file
    (rewritten when the table was, else written only where missing)."""
    _extras(engine, table, name, out, report, extras, video)
    if parquet:
        from affectlab.analyze.parquet import parquet_path, write_parquet

        path = parquet_path(out, name)
        if fresh or not path.is_file():
            report.written.append(write_parquet(table, path, fmt, engine.schema))


def _pages(out: Path, report: RunReport) -> None:
    """The result pages of ``out`` (analyze.pages), listing this run's failures; a table that cannot
    be shown is a warning."""
    from affectlab.analyze.pages import write_pages

    try:
        made = write_pages(out, failures=report.failures)
    except DataError as e:  # nothing analysed: no table to show
        report.warnings.append(f"no result pages: {e}")
        return
    report.written += made.written
    report.warnings += made.problems


def _read_table(path: Path, fmt: str = "native") -> pd.DataFrame | None:
    """A results table written in ``fmt`` by an earlier call or this one, as a native table; None where
    there is none yet."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    return checked_results(path, fmt, advice="; move it away and run again")


def earlier_table(video: Path, final: Path, fmt: str, report: RunReport) -> pd.DataFrame | None:
    """The table an earlier run wrote for ``video`` (``skip_existing``), or None with one failure line
    where it is damaged, so the other inputs go on."""
    try:
        table = _read_table(final, fmt)
    except DataError as e:
        report.failures.append(str(e))
        return None
    report.skipped.append(str(video))
    return table


def write_video(chunks: Iterable[pd.DataFrame], final: Path, name: str, report: RunReport, fmt: str,
                schema: LabelSchema) -> pd.DataFrame | None:
    """Write a video's row chunks as they come to ``final`` (``.partial`` until the last one), and read the
    table back; a DataError that ends the chunks early is one failure line, the rows before it kept.
    None where no row came. Both engines write through here, so their tables are the same."""
    partial = final.with_name(final.name + ".partial")
    rows = 0
    with CsvRows(partial, fmt=fmt) as writer:
        try:
            for chunk in chunks:
                writer.write(chunk)
                rows += chunk["frame"].nunique()
        except DataError as e:
            report.failures.append(f"{e}; kept the {rows} frames before it" if rows else str(e))
    if not rows:
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, final)
    report.written.append(final)
    report.analysed += 1
    table = read_results(final, fmt)
    report.summaries.append(f"{name}: {describe(table, schema)}")
    return table


def _run_images(engine: Engine, images: list[Path], out: Path, report: RunReport, skip_existing: bool,
                progress: bool, fmt: str) -> bool:
    """Append every image's rows to images.csv; True when any image gave rows in this run."""
    path = out / IMAGES_CSV
    if skip_existing:
        earlier = _read_table(path, fmt)
        done = set() if earlier is None else set(earlier["input"].astype(str))
        report.skipped += [str(i) for i in images if os.fspath(i) in done]
        images = [i for i in images if os.fspath(i) not in done]
    if not images:
        return False
    analysed = 0
    with CsvRows(path, append=skip_existing, fmt=fmt) as writer, tqdm(total=len(images), unit="image", desc="images",
                                                             disable=not progress, leave=False) as bar:
        for result in engine.images(images):
            if isinstance(result, DataError):
                report.failures.append(str(result))
                bar.update(1)
                continue
            writer.write(result)
            analysed += result["input"].nunique()
            bar.update(result["input"].nunique())
    report.analysed += analysed
    if analysed:
        report.written.append(path)
    elif path.stat().st_size == 0:
        path.unlink()  # no image could be read: no empty table left behind
    return analysed > 0


def _missing(extras: Extras, out: Path, name: str, images: Sequence[Path] = ()) -> Extras:
    """Of the asked-for outputs of an already analysed table, those an earlier run did not write."""
    annotated = [_annotated_image_path(out, n, p) for p, n in output_names(list(images)).items()]
    return Extras(plots=extras.plots and not (out / f"{name}_circumplex.png").is_file(),
                  video_out=extras.video_out and not (all(p.is_file() for p in annotated) if images
                                                      else (out / f"{name}_annotated.mp4").is_file()),
                  abaw=extras.abaw and not (images and (out / "abaw" / "mtl.txt").is_file() or not images and any(
                      (out / "abaw" / "AU" / f"{name}{side}.txt").is_file() for side in ("", "_left"))))


def _annotated_image_path(out: Path, name: str, image: Path) -> Path:
    suffix = image.suffix.lower() if image.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
    return out / f"{name}_annotated{suffix}"


def _extras(analyzer: Engine, table: pd.DataFrame, name: str, out: Path, report: RunReport, extras: Extras,
            video: Path | None) -> None:
    """Plots, the annotated video or images and ABAW files of one finished output; a failure here is one line."""
    try:
        if extras.plots:
            from affectlab.analyze.plots import plot_all

            report.written += plot_all(table, out, name)
        if extras.video_out:
            _annotate(analyzer, table, video, out, name, report)
        if extras.abaw:
            _abaw_files(analyzer, table, name, out, report)
    except AffectlabError as e:
        report.failures.append(f"{name}: {e}")


def _annotate(analyzer: Engine, table: pd.DataFrame, video: Path | None, out: Path, name: str,
              report: RunReport) -> None:
    """The video with its faces drawn, or for images an annotated copy of each image that was analysed."""
    from affectlab.analyze.overlay import write_overlay_image, write_overlay_video

    if video is not None:
        report.written.append(write_overlay_video(video, table, out / f"{name}_annotated.mp4", stride=analyzer.stride))
        return
    images = [Path(p) for p in dict.fromkeys(table["input"].astype(str))]
    for image, image_name in output_names(images).items():
        try:
            report.written.append(write_overlay_image(image, table, _annotated_image_path(out, image_name, image)))
        except DataError as e:  # the image moved or changed since it was analysed
            report.failures.append(str(e))


def _abaw_files(analyzer: Engine, table: pd.DataFrame, name: str, out: Path, report: RunReport) -> None:
    """ABAW submission files. A video without any face still gets its files, as the challenge wants a line
    per frame: every frame holds the neutral default (no AU, Neutral, valence and arousal 0), with a warning."""
    if name == "images":
        report.written.append(write_abaw_mtl(table, out / "abaw" / "mtl.txt", analyzer.schema))
        return
    if not table["success"].gt(0).any():
        report.warnings.append(f"{name}: no face was found in {table['input'].iloc[0]}; its ABAW files hold "
                               "the neutral default on every frame")
        table = _neutral(table, analyzer.schema.expr_names)
    report.written += write_abaw_task_files(table, out / "abaw", name, analyzer.schema)


def _neutral(table: pd.DataFrame, expr_names: Sequence[str]) -> pd.DataFrame:
    """Every frame as one face with no AU active, Neutral expression and valence and arousal 0."""
    filled = table.copy()
    filled["face_id"], filled["success"] = 0, 1
    for column in filled.columns:
        if column.startswith("AU"):
            filled[column] = 0
    for k, expression in enumerate(expr_names):
        filled[expression] = 1.0 if k == 0 else 0.0
    filled["expression"] = expr_names[0]
    filled["valence"], filled["arousal"] = 0.0, 0.0
    return filled
