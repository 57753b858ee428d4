"""HTML pages of an output folder's results tables: a page per video, one for the images, an index.

    from affectlab.analyze.pages import write_pages
    pages = write_pages("out")  # out/<stem>.html per video, out/images.html, out/index.html

The pages read only the tables already written (any of analyze's formats), so ``affectlab report OUT``
and ``analyze --report`` make the same pages. They open from disk (file://) with no server and no
network: the page's data is inside it, and its script, style and plotly.js (shipped in the package with
its MIT licence) are copied to ``OUT/report_files``.
A video's page plays the annotated video (``--video-out``) or else the original, where Chromium can
play it; otherwise an H.264 copy ``<stem>_web.mp4`` is written beside the pages. The charts draw at most
:data:`MAX_POINTS` samples per series (bin means; the tables stay whole), so a 10-minute video's page
opens as fast as a short one's.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image

from affectlab.analyze.formats import checked_results
from affectlab.analyze.media import read_image
from affectlab.analyze.plots import EXPR_COLOURS, FACS_NAMES
from affectlab.analyze.results import main_face_id, summary
from affectlab.errors import DataError
from affectlab.labels import EXPR_NAMES

PathLike = str | os.PathLike[str]

FILES = "report_files"  # the folder beside the pages holding their script, style and Plotly
FAILURES = "failures.txt"  # in FILES: the analyze run's one-line failures, so `affectlab report` lists them again
MAX_POINTS = 1000  # samples per series a timeline draws (bin means above that): about one per pixel
MAX_COLUMNS = 600  # time columns of the AU heatmap
MAX_TRAIL = 300  # points of the circumplex's trail (each an SVG element: more would slow the page)
CROP_SIDE = 144  # pixels: the longer side of a face crop on the images' page
_BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})  # what Chromium decodes in MP4/WebM
#: Copied beside the pages. plotly.js's cartesian bundle (scatter, heatmap, ...; MIT licence) is a third
#: of the full bundle's size and opens a page 2.5x sooner (BENCHMARKS.md); its provenance: assets/report/README.md.
_STATIC = ("report.js", "report.css", "plotly-cartesian.min.js", "plotly-LICENSE.txt")


@dataclass
class Pages:
    """What :func:`write_pages` wrote, and one line per table it could not make a page of."""

    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    shown: int = 0  # tables that got a page


def write_pages(out_dir: PathLike, failures: Sequence[str] | None = None) -> Pages:
    """A page for each results table in ``out_dir`` and ``index.html`` listing them all.

    ``failures``: the analyze run's one-line failures, shown on the index and kept for a later call;
    None (``affectlab report``) shows those the last ``analyze --report`` kept. Raises DataError when
    the folder holds no results table at all."""
    out = Path(out_dir)
    if out.is_file():
        raise DataError(out, "is a file, not a folder (give the --out folder of affectlab analyze)")
    if not out.is_dir():
        raise DataError(out, "no such folder (give the --out folder of affectlab analyze)")
    tables = sorted(p for p in out.glob("*.csv") if p.is_file())
    unfinished = sorted(out.glob("*.csv.partial"))
    if not tables and not unfinished:
        raise DataError(out, "holds no results tables (<video>.csv, images.csv): run affectlab analyze --out "
                             f"{out} first")
    pages = Pages()
    _copy_static(out)
    failures = _kept_failures(out, failures)
    entries = []
    for path in tables:
        try:
            table = load_table(path)
            page, entry = (_images_page if _is_images(table) else _video_page)(table, path, out, pages)
        except DataError as e:
            pages.problems.append(str(e))
            continue
        pages.written.append(page)
        pages.shown += 1
        entries.append(entry)
    pages.problems += [f"{p}: an unfinished video's table (analyze was interrupted): run analyze again with "
                       "--skip-existing to finish it" for p in unfinished]
    index = {"kind": "index", "title": f"affectlab results: {out.resolve().name}", "entries": entries,
             "colours": EXPR_COLOURS,
             "failures": [*failures, *pages.problems]}
    pages.written.append(_write_page(out / "index.html", index, plotly=False))
    return pages


def load_table(path: PathLike) -> pd.DataFrame:
    """A results table in any of analyze's formats, as a native table; DataError naming what is missing."""
    table = checked_results(path)
    if table.empty:
        raise DataError(path, "results table without rows: nothing to show")
    return table


# --- the pages --------------------------------------------------------------------------------------

def _video_page(table: pd.DataFrame, path: Path, out: Path, pages: Pages) -> tuple[Path, dict]:
    """``OUT/<stem>.html`` of one video's table, and its row of the index."""
    name = path.stem
    video, notices = _playable_video(table, name, out, pages)
    notices += _missing_columns(table)
    faces = _faces(table)
    slots = _slots(table)
    ids = sorted(int(i) for i in faces["face_id"].unique())
    main = main_face_id(faces)
    data = {
        "kind": "video", "title": _input_name(table), "name": name, "video": video, "notices": notices,
        "times": _rounded(slots["time"], 3), "frames": slots["frame"].astype(int).tolist(),
        "expressions": _expr_columns(table), "colours": EXPR_COLOURS,
        "aus": [f"{a} {FACS_NAMES.get(a, '')}".rstrip() for a in _au_columns(table)],
        "main": main, "faces": [_face_data(table, faces, slots, i) for i in ids],
        "summary": _summary(faces, table),
    }
    page = _write_page(out / f"{name}.html", data, plotly=True)
    return page, _entry(name, "video", table, faces)


def _images_page(table: pd.DataFrame, path: Path, out: Path, pages: Pages) -> tuple[Path, dict]:
    """``OUT/images.html``: each face's crop with its results, and the index's row."""
    name = path.stem
    faces = _faces(table)
    expr, aus = _expr_columns(table), _au_columns(table)
    cards, missing = [], set()
    for source, rows in faces.groupby("input", sort=False):
        try:
            image = read_image(str(source))
        except DataError as e:
            image = None
            missing.add(str(e))
        for row in rows.itertuples(index=False):
            cards.append(_card(row._asdict(), image, expr, aus))
    notices = [f"{m}: its faces are listed without their crops" for m in sorted(missing)] + _missing_columns(table)
    data = {"kind": "images", "title": f"{table['input'].nunique()} images", "name": name, "notices": notices,
            "expressions": expr, "colours": EXPR_COLOURS, "cards": cards, "summary": _summary(faces, table),
            "without_face": sorted(set(table["input"].astype(str)) - set(faces["input"].astype(str)))}
    page = _write_page(out / f"{name}.html", data, plotly=True)
    return page, _entry(name, "images", table, faces)


def _card(row: dict, image: np.ndarray | None, expr: list[str], aus: list[str]) -> dict:
    """One face of the images' page: its crop (a JPEG data URL), expression, probabilities, VA, active AUs."""
    probs = {e: _num(row.get(e)) for e in expr}
    active = [{"au": a, "name": FACS_NAMES.get(a, ""), "p": _num(row.get(a))} for a in aus
              if _num(row.get(f"{a}_c")) == 1]
    expression = row.get("expression") if isinstance(row.get("expression"), str) else None
    return {"input": str(row["input"]), "file": Path(str(row["input"])).name, "face_id": int(row["face_id"]),
            "crop": None if image is None else _crop(image, row), "expression": expression,
            "p": probs.get(expression) if expression else None, "probs": probs,
            "valence": _num(row.get("valence")), "arousal": _num(row.get("arousal")),
            "confidence": _num(row.get("confidence")), "active": sorted(active, key=lambda a: -(a["p"] or 0))}


def _crop(image: np.ndarray, row: dict) -> str | None:
    """The face's box with a margin of a fifth of its size around it, as a small JPEG data URL."""
    box = [_num(row.get(c)) for c in ("x", "y", "width", "height")]
    if any(v is None for v in box) or box[2] <= 0 or box[3] <= 0:
        return None
    x, y, w, h = box
    margin = 0.2 * max(w, h)
    left, top = max(0, int(x - margin)), max(0, int(y - margin))
    right, bottom = min(image.shape[1], int(math.ceil(x + w + margin))), min(image.shape[0], int(math.ceil(y + h + margin)))
    if right <= left or bottom <= top:
        return None
    crop = Image.fromarray(image[top:bottom, left:right])
    crop.thumbnail((CROP_SIDE, CROP_SIDE))
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _face_data(table: pd.DataFrame, faces: pd.DataFrame, slots: pd.DataFrame, face_id: int) -> dict:
    """One tracked face of a video: per frame its box, VA and expression (for the overlay and the readout),
    and the binned series the charts draw."""
    expr, aus = _expr_columns(table), _au_columns(table)
    rows = faces[faces["face_id"] == face_id].drop_duplicates("frame")
    numeric = ["x", "y", "width", "height", "valence", "arousal", *expr, *aus]
    numeric = [c for c in numeric if c in rows.columns]
    rows = rows[["frame", *numeric, *(["expression"] if "expression" in rows.columns else [])]]
    rows = rows.astype({c: float for c in numeric} | {"frame": int})
    aligned = slots[["frame"]].merge(rows, on="frame", how="left")
    seen = aligned["x"].notna().to_numpy()
    code = {name: k for k, name in enumerate(expr)}
    per_frame = {"box": [_rounded(aligned[c], 0) for c in ("x", "y", "width", "height")],
                 "expression": [code.get(e) if isinstance(e, str) else None for e in aligned.get("expression", [])]}
    if expr:
        per_frame["p"] = _rounded(aligned[expr].max(axis=1).where(seen), 3)
    for c in ("valence", "arousal"):
        if c in aligned:
            per_frame[c] = _rounded(aligned[c], 3)
    bins = _bins(len(slots), MAX_POINTS)
    t = _bin_means(slots[["time"]].to_numpy(float), bins)[:, 0]
    chart: dict[str, object] = {"t": _rounded(t, 3)}
    if {"valence", "arousal"} <= set(aligned.columns):
        va = _bin_means(aligned[["valence", "arousal"]].to_numpy(float), bins)
        chart["valence"], chart["arousal"] = _rounded(va[:, 0], 3), _rounded(va[:, 1], 3)
        chart["trail"] = _trail(aligned, expr, _bins(len(slots), MAX_TRAIL))
    if expr:
        means = _bin_means(aligned[expr].to_numpy(float), bins)
        chart["expr"] = {name: _rounded(means[:, k], 3) for k, name in enumerate(expr)}
    if aus:
        columns = _bins(len(slots), MAX_COLUMNS)
        chart["heat_t"] = _rounded(_bin_means(slots[["time"]].to_numpy(float), columns)[:, 0], 3)
        chart["heat"] = [_rounded(r, 3) for r in _bin_means(aligned[aus].to_numpy(float), columns).T]
    return {"id": face_id, "frames": int(seen.sum()), "share": float(seen.mean()) if len(seen) else 0.0,
            "per_frame": per_frame, "chart": chart, "summary": _summary(faces[faces["face_id"] == face_id], table)}


def _trail(aligned: pd.DataFrame, expr: list[str], bins: np.ndarray) -> dict:
    """The face's path on the circumplex: bin means of valence and arousal, each point's colour the bin's
    most probable expression (an index into ``expr``; None without one)."""
    va = _bin_means(aligned[["valence", "arousal"]].to_numpy(float), bins)
    trail: dict[str, object] = {"valence": _rounded(va[:, 0], 3), "arousal": _rounded(va[:, 1], 3)}
    if expr:
        means = _bin_means(aligned[expr].to_numpy(float), bins)
        top = np.where(np.isfinite(means).all(axis=1), np.nan_to_num(means).argmax(axis=1), -1)
        trail["top"] = [int(k) if k >= 0 else None for k in top]
    return trail


def _write_page(path: Path, data: dict, *, plotly: bool) -> Path:
    """The page: the HTML template with the data as JSON inside it (``</`` escaped so no text ends the script)."""
    template = resources.files("affectlab").joinpath("assets", "report", "page.html").read_text(encoding="utf-8")
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    scripts = ([f'<script src="{FILES}/plotly-cartesian.min.js"></script>'] if plotly else []) + \
        [f'<script src="{FILES}/report.js"></script>']
    text = (template.replace("{{title}}", html.escape(data["title"]))
            .replace("{{files}}", FILES)
            .replace("{{scripts}}", "\n".join(scripts))
            .replace("{{data}}", payload))
    path.write_text(text, encoding="utf-8")
    return path


def _copy_static(out: Path) -> None:
    """The pages' script and style, and plotly.js with its licence, into ``OUT/report_files``."""
    folder = out / FILES
    folder.mkdir(exist_ok=True)
    assets = resources.files("affectlab").joinpath("assets", "report")
    for name in _STATIC:
        target = folder / name
        data = assets.joinpath(name).read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)


def _kept_failures(out: Path, failures: Sequence[str] | None) -> list[str]:
    """The run's failures, kept in ``report_files`` for a later ``affectlab report``; or those kept before."""
    kept = out / FILES / FAILURES
    if failures is None:
        return kept.read_text(encoding="utf-8").splitlines() if kept.is_file() else []
    kept.write_text("".join(f"{line}\n" for line in failures), encoding="utf-8")
    return list(failures)


# --- the video --------------------------------------------------------------------------------------

def _playable_video(table: pd.DataFrame, name: str, out: Path, pages: Pages) -> tuple[dict | None, list[str]]:
    """What the page plays (``src`` relative to the page, whether it is the annotated video) and notices:
    the annotated video, else the original, whichever exists and plays in Chromium; else an H.264 copy."""
    annotated = out / f"{name}_annotated.mp4"
    original = Path(str(table["input"].iloc[0]))
    candidates = [(p, p == annotated) for p in (annotated, original) if p.is_file()]
    if not candidates:
        where = "" if original.is_absolute() else " (the table's path is relative: run from the folder analyze ran in)"
        return None, [f"the video {original} is not there any more (moved or deleted after the analysis){where}: "
                      "the charts are shown without it"]
    for candidate, is_annotated in candidates:
        if _plays_in_browsers(candidate):
            return _source(candidate, out, is_annotated), []
    source, is_annotated = candidates[0]
    web = out / f"{name}_web.mp4"
    if not web.is_file() or web.stat().st_mtime < source.stat().st_mtime:
        from affectlab.analyze.overlay import write_overlay_video

        try:  # the overlay writer with no faces to draw: the video re-encoded as H.264
            write_overlay_video(source, table.iloc[:0], web)
        except DataError as e:
            return None, [f"{e}: the charts are shown without the video"]
        pages.written.append(web)
    return _source(web, out, is_annotated), []


def _plays_in_browsers(path: Path) -> bool:
    """Whether Chromium plays the file: H.264, VP8/9 or AV1 in 4:2:0, in MP4 or WebM (OpenCV's mp4v does not)."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                return False
            context = container.streams.video[0].codec_context
            kind = container.format.name
            return (context.name in _BROWSER_CODECS and context.pix_fmt in ("yuv420p", "yuvj420p")
                    and ("mp4" in kind or "webm" in kind))
    except av.error.FFmpegError:
        return False


def _source(video: Path, out: Path, annotated: bool) -> dict:
    relative = Path(os.path.relpath(video.resolve(), out.resolve())).as_posix()
    return {"src": quote(relative), "path": str(video), "annotated": annotated}


# --- the table --------------------------------------------------------------------------------------

def _is_images(table: pd.DataFrame) -> bool:
    return bool((pd.to_numeric(table["frame"], errors="coerce") < 0).all())


def _faces(table: pd.DataFrame) -> pd.DataFrame:
    """The rows where a face was analysed (with a face_id)."""
    success = pd.to_numeric(table["success"], errors="coerce").fillna(0).to_numpy() > 0
    faces = table[success & table["face_id"].notna().to_numpy()]
    return faces.astype({"face_id": int})


def _slots(table: pd.DataFrame) -> pd.DataFrame:
    """One row per analysed frame, in order: ``frame`` and ``time`` (seconds; the frame's rank at 25 fps
    where the table has no timestamps)."""
    slots = table[["frame", "timestamp"]].copy()
    slots["frame"] = pd.to_numeric(slots["frame"], errors="coerce")
    slots = slots.dropna(subset=["frame"]).drop_duplicates("frame").sort_values("frame", ignore_index=True)
    time = pd.to_numeric(slots["timestamp"], errors="coerce")
    slots["time"] = time if time.notna().all() else (slots["frame"] - 1) / 25.0
    return slots[["frame", "time"]]


def _expr_columns(table: pd.DataFrame) -> list[str]:
    return [name for name in EXPR_NAMES if name in table.columns]


def _au_columns(table: pd.DataFrame) -> list[str]:
    return sorted(c for c in table.columns if len(c) == 4 and c.startswith("AU") and c[2:].isdigit())


def _missing_columns(table: pd.DataFrame) -> list[str]:
    """A line per group of result columns the table lacks (its charts are left out)."""
    lines = []
    va = [c for c in ("valence", "arousal") if c not in table.columns]
    if va:
        lines.append(f"the table has no {' and no '.join(map(repr, va))} column: no valence and arousal shown")
    if not _expr_columns(table):
        lines.append(f"the table has no expression probability columns ({', '.join(EXPR_NAMES)}): "
                     "no expressions shown")
    if not _au_columns(table):
        lines.append("the table has no AU columns (AU01, AU02, …): no action units shown")
    return lines


def _bins(n: int, most: int) -> np.ndarray:
    """Bin index of each of ``n`` samples: itself up to ``most`` samples, else ``most`` equal runs."""
    return np.arange(n) if n <= most else (np.arange(n) * most) // n


def _bin_means(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Mean of each run of ``bins`` per column, ignoring NaN; NaN where a run has no value."""
    if not len(bins):
        return np.empty((0, values.shape[1]))
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    present = np.isfinite(values)
    sums = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
    counts = np.add.reduceat(present.astype(float), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _rounded(values: pd.Series | np.ndarray | Sequence[float], digits: int) -> list[float | int | None]:
    """JSON-ready numbers (None for NaN), rounded: a 15,000-frame page stays a few hundred kB."""
    array = np.round(np.asarray(values, dtype=float), digits)
    out = array.astype(object)
    out[~np.isfinite(array)] = None
    return [int(v) if v is not None and digits == 0 else v for v in out.tolist()]


def _num(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _input_name(table: pd.DataFrame) -> str:
    return Path(str(table["input"].iloc[0])).name


def _summary(faces: pd.DataFrame, table: pd.DataFrame) -> dict:
    """results.summary's numbers as the pages show them (AUs with their FACS names; NaN as null)."""
    numbers = summary(faces, table.drop_duplicates(["input", "frame"]).shape[0])
    for column in ("valence", "arousal"):
        if column in numbers:
            numbers[column] = _num(numbers[column])
    if "top_aus" in numbers:
        numbers["top_aus"] = [{"au": au, "name": FACS_NAMES.get(au, ""), "rate": _num(rate)}
                              for au, rate in numbers["top_aus"]]
    return numbers


def _entry(name: str, kind: str, table: pd.DataFrame, faces: pd.DataFrame) -> dict:
    """The index's row of one page."""
    return {"name": name, "kind": kind, "page": quote(f"{name}.html"),
            "input": _input_name(table) if kind == "video" else f"{table['input'].nunique()} images",
            **_summary(faces, table)}
