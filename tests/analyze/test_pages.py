"""affectlab.analyze.pages: the result pages, checked as data and in a real browser (Debian's headless
chromium driven by Playwright; those tests skip, saying why, where either is missing)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.formats import CsvRows
from affectlab.analyze.pages import _bin_means, _bins, write_pages
from affectlab.analyze.results import finalize, prediction_frame
from affectlab.analyze.run import run_analysis
from affectlab.cli import main
from affectlab.errors import DataError
from affectlab.labels import DEFAULT_SCHEMA

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]
FPS = 10


def clip(source: Path, path: Path, frames: int, codec: str = "libx264") -> Path:
    """The first ``frames`` frames of ``source``, encoded with ``codec`` (mpeg4: a file browsers cannot play)."""
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        source_stream = inp.streams.video[0]
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = source_stream.width, source_stream.height, "yuv420p"
        for k, frame in enumerate(inp.decode(source_stream)):
            if k == frames:
                break
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")))
        out.mux(stream.encode())
    return path


def two_faces(video: Path, frames: int) -> pd.DataFrame:
    """A results table of two tracked faces over ``frames`` frames (face 1 in the second half only); face 0
    turns from sad to happy, face 1 stays angry, so the two faces' charts differ."""
    schema, parts = DEFAULT_SCHEMA, []
    for face_id, index in ((0, np.arange(frames)), (1, np.arange(frames // 2, frames))):
        n = len(index)
        expr = np.full((n, schema.n_expr), 0.02)
        expr[:, 1 if face_id else 5] += np.linspace(0.84, 0.0, n) if not face_id else 0.84
        expr[:, 4] += 0 if face_id else np.linspace(0.0, 0.84, n)
        expr /= expr.sum(axis=1, keepdims=True)
        va = np.column_stack([np.linspace(-0.6, 0.7, n), np.full(n, 0.2)]) if not face_id else np.tile([-0.5, 0.6], (n, 1))
        aus = np.tile(np.linspace(0.1, 0.9, schema.n_au), (n, 1))[:, ::1 if face_id else -1]
        meta = pd.DataFrame({"input": str(video), "frame": index + 1, "timestamp": index / FPS, "face_id": face_id,
                             "x": 20.0 + 300 * face_id, "y": 30.0, "width": 120.0, "height": 140.0,
                             "confidence": 0.99, "success": 1})
        parts.append(pd.concat([meta, prediction_frame(schema, aus, expr, va, np.full(schema.n_au, 0.5))], axis=1))
    return finalize(pd.concat(parts, ignore_index=True).sort_values(["frame", "face_id"], ignore_index=True), schema)


def write_table(path: Path, table: pd.DataFrame, fmt: str = "native") -> Path:
    with CsvRows(path, fmt=fmt) as writer:
        writer.write(table)
    return path


@pytest.fixture(scope="module")
def pages(sample_analyzer, tmp_path_factory) -> Path:
    """analyze --video-out --report on a 20-frame clip of single_face.mp4 and on multi_face.jpg (the bundled
    model), plus a two-face table whose video is MPEG-4 (the page plays an H.264 copy) and a broken table."""
    root = tmp_path_factory.mktemp("report")
    media = root / "media"
    media.mkdir()
    short = clip(MEDIA / "single_face.mp4", media / "short.mp4", 20)
    shutil.copy(MEDIA / "multi_face.jpg", media / "multi_face.jpg")
    out = root / "out"
    out.mkdir()
    two = clip(MEDIA / "single_face.mp4", media / "two.mp4", 40, codec="mpeg4")
    write_table(out / "two.csv", two_faces(two, 40))
    two_faces(two, 4).rename(columns={"frame": "frame_no"}).to_csv(out / "broken.csv", index=False)  # renamed
    report = run_analysis(sample_analyzer, [short, media / "multi_face.jpg"], out, video_out=True, pages=True,
                          progress=False)
    assert report.failures == [] and report.warnings == [f"{out / 'broken.csv'}: not a results table of affectlab "
                                                         "analyze: no 'frame' column"]
    return out


# --- the pages as data ------------------------------------------------------------------------------

def page_data(page: Path) -> dict:
    text = page.read_text()
    return json.loads(re.search(r'<script id="affectlab-data" type="application/json">(.*?)</script>', text, re.S)
                      .group(1).replace("<\\/", "</"))


def test_pages_are_written_with_their_files_beside_them(pages):
    names = sorted(p.name for p in pages.iterdir())
    for name in ("index.html", "short.html", "two.html", "images.html", "two_web.mp4", "short_annotated.mp4"):
        assert name in names
    assert sorted(p.name for p in (pages / "report_files").iterdir()) == [
        "failures.txt", "plotly-LICENSE.txt", "plotly-cartesian.min.js", "report.css", "report.js"]
    for page in ("index.html", "short.html", "images.html"):  # nothing is fetched from elsewhere
        assert not re.search(r'(src|href)="(https?:)?//', (pages / page).read_text())


def test_the_video_page_plays_the_annotated_video_or_an_h264_copy(pages):
    short, two = page_data(pages / "short.html"), page_data(pages / "two.html")
    assert short["video"]["src"] == "short_annotated.mp4" and short["video"]["annotated"]
    assert two["video"]["src"] == "two_web.mp4" and not two["video"]["annotated"]
    with av.open(str(pages / "two_web.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.frames == 40


def test_a_video_page_holds_every_frame_and_each_face(pages):
    data = page_data(pages / "two.html")
    assert data["frames"] == list(range(1, 41)) and data["times"][:3] == [0.0, 0.1, 0.2]
    assert [f["id"] for f in data["faces"]] == [0, 1] and data["main"] == 0
    one = data["faces"][1]
    assert one["per_frame"]["box"][0][:20] == [None] * 20 and one["per_frame"]["box"][0][20] == 320
    assert data["expressions"][one["per_frame"]["expression"][30]] == "Anger"
    assert one["summary"]["dominant"] == "Anger" and one["frames"] == 20


def test_long_series_are_drawn_as_bin_means():
    assert _bins(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert _bins(10, 4).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    values = np.array([[1.0], [3.0], [np.nan], [np.nan], [4.0], [np.nan]])
    np.testing.assert_array_equal(_bin_means(values, np.array([0, 0, 1, 1, 2, 2])), [[2.0], [np.nan], [4.0]])


def test_the_index_lists_every_page_and_what_failed(pages):
    data = page_data(pages / "index.html")
    assert sorted(e["name"] for e in data["entries"]) == ["images", "short", "two"]
    images = next(e for e in data["entries"] if e["name"] == "images")
    assert images["faces"] == 5 and images["dominant"] == "Happiness"
    assert data["failures"] == [f"{pages / 'broken.csv'}: not a results table of affectlab analyze: no 'frame' column"]


def test_report_command_remakes_the_pages_and_keeps_the_runs_failures(pages, tmp_path, capsys):
    copy = shutil.copytree(pages, tmp_path / "copy")
    (copy / "report_files" / "failures.txt").write_text("photo.jpg: cannot decode image (truncated)\n")
    (copy / "index.html").unlink()
    assert main(["report", str(copy)]) == 1
    assert capsys.readouterr().err.strip() == (f"affectlab: error: {copy / 'broken.csv'}: not a results table of "
                                               "affectlab analyze: no 'frame' column")
    assert page_data(copy / "index.html")["failures"][0] == "photo.jpg: cannot decode image (truncated)"


def test_a_folder_without_tables_is_one_line(tmp_path, capsys):
    with pytest.raises(DataError, match=r"holds no results tables \(<video>.csv, images.csv\): run affectlab analyze"):
        write_pages(tmp_path)
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr() == ("", f"affectlab: error: {tmp_path / 'nowhere'}: no such folder (give the --out "
                                       "folder of affectlab analyze)\n")


def test_analyze_report_option_writes_the_pages_with_the_runs_failures(tmp_path, capsys):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    assert main(["analyze", str(MEDIA / "single_face.jpg"), str(tmp_path / "corrupt.png"), "--out", str(out),
                 "--report"]) == 1
    failures = page_data(out / "index.html")["failures"]
    assert len(failures) == 1 and failures[0].startswith(f"{tmp_path / 'corrupt.png'}: cannot decode image")
    assert [c["expression"] for c in page_data(out / "images.html")["cards"]] == ["Happiness"]


def test_unreadable_tables_are_one_line_each_and_the_others_get_pages(tmp_path):
    write_table(tmp_path / "good.csv", two_faces(MEDIA / "single_face.mp4", 6))
    (tmp_path / "empty.csv").write_text("")
    two_faces(MEDIA / "single_face.mp4", 6).iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    (tmp_path / "cut.csv.partial").write_text("input,frame\n")
    pages = write_pages(tmp_path)
    assert pages.shown == 1 and (tmp_path / "good.html").is_file()
    assert pages.problems == [
        f"{tmp_path / 'empty.csv'}: not a results table of affectlab analyze (No columns to parse from file)",
        f"{tmp_path / 'header.csv'}: results table without rows: nothing to show",
        f"{tmp_path / 'cut.csv.partial'}: an unfinished video's table (analyze was interrupted): run analyze again "
        "with --skip-existing to finish it"]
    assert page_data(tmp_path / "index.html")["failures"] == pages.problems


def test_missing_result_columns_and_a_moved_video_are_said_on_the_page(tmp_path):
    table = two_faces(tmp_path / "gone.mp4", 10).drop(columns=["valence"]).rename(columns={"AU01": "au_one"})
    write_table(tmp_path / "gone.csv", table)
    pages = write_pages(tmp_path)
    assert pages.problems == []
    data = page_data(tmp_path / "gone.html")
    assert data["video"] is None
    assert data["notices"] == [
        f"the video {tmp_path / 'gone.mp4'} is not there any more (moved or deleted after the analysis): "
        "the charts are shown without it",
        "the table has no 'valence' column: no valence and arousal shown"]
    assert "valence" not in data["faces"][0]["chart"] and len(data["aus"]) == DEFAULT_SCHEMA.n_au - 1


def test_tables_in_the_other_formats_make_the_same_page(tmp_path):
    table = two_faces(MEDIA / "single_face.mp4", 12)
    for fmt in ("native", "openface", "feat"):
        folder = tmp_path / fmt
        folder.mkdir()
        write_table(folder / "clip.csv", table, fmt)
        write_pages(folder)
    native = page_data(tmp_path / "native" / "clip.html")
    for fmt in ("openface", "feat"):
        other = page_data(tmp_path / fmt / "clip.html")
        assert other["faces"] == native["faces"] and other["times"] == native["times"]


# --- in the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the pages' browser tests need it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -c constraints.txt -e .[test])")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser):
    """``open_page(path)`` -> (page, console errors), once the page says its charts are drawn."""
    pages = []

    def open_(path: Path):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:")) else None)
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        pages.append(page)
        return page, errors

    yield open_
    for page in pages:
        page.close()


@pytest.mark.parametrize("name", ["index", "short", "two", "images"])
def test_each_page_loads_without_console_errors(pages, open_page, name):
    page, errors = open_page(pages / f"{name}.html")
    page.wait_for_timeout(300)
    assert errors == []
    assert page.locator(".notice").count() == 0
    if name in ("short", "two"):
        assert page.locator(".js-plotly-plot").count() == 4  # three timelines and the circumplex


@pytest.mark.parametrize("name", ["short", "two"])
def test_the_video_plays(pages, open_page, name):
    page, errors = open_page(pages / f"{name}.html")
    page.evaluate("document.getElementById('video').play()")
    page.wait_for_function("document.getElementById('video').currentTime > 0.5", timeout=15_000)
    assert page.evaluate("document.getElementById('video').error") is None and errors == []


def test_clicking_a_timeline_moves_the_video_there_and_the_playhead_follows(pages, open_page):
    page, errors = open_page(pages / "two.html")
    for chart, target in (("va", 2.7), ("expressions", 1.3), ("aus", 3.4)):
        page.locator(f"#{chart}").scroll_into_view_if_needed()
        x, y = page.evaluate("""([id, t]) => { const gd = document.getElementById(id), ax = gd._fullLayout.xaxis,
            size = gd._fullLayout._size, box = gd.getBoundingClientRect();
            return [box.left + ax._offset + ax.l2p(t), box.top + size.t + size.h / 2]; }""", [chart, target])
        page.mouse.click(x, y)
        page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {target}) < 0.5", timeout=5_000)
        page.wait_for_timeout(100)
        head = page.evaluate(f"""() => {{ const head = document.querySelector('#{chart} + .playhead');
            return head.hidden ? null : head.getBoundingClientRect().left + 1; }}""")
        assert head == pytest.approx(x, abs=3)
    assert errors == []


def test_choosing_another_face_changes_the_charts(pages, open_page):
    page, errors = open_page(pages / "two.html")
    charts = "['va', 'expressions', 'aus', 'circumplex'].map((id) => JSON.stringify(document.getElementById(id).data))"
    before = page.evaluate(charts)
    page.select_option("#face", "1")
    page.wait_for_function(f"JSON.stringify({charts}) !== {json.dumps(json.dumps(before))}", timeout=10_000)
    after = page.evaluate(charts)
    assert all(a != b for a, b in zip(before, after))  # every chart now draws face 1
    assert page.locator("#face-summary h3").inner_text() == "face 1"
    assert errors == []


def test_the_index_links_work(pages, open_page):
    page, errors = open_page(pages / "index.html")
    links = page.locator("#index a")
    assert links.count() == 3
    for k in range(3):
        name = links.nth(k).inner_text()
        links.nth(k).click()
        page.wait_for_selector("body[data-ready='1']")
        assert Path(page.url).name == f"{name}.html"
        page.click("a.back")
        page.wait_for_selector("#index a")
        links = page.locator("#index a")
    assert errors == []


def test_the_index_sorts_by_a_column(pages, open_page):
    page, _ = open_page(pages / "index.html")
    page.click("th[data-key='valence'] button")
    ascending = [float(v.replace("−", "-")) for v in page.locator("td.valence").all_inner_texts()]
    page.click("th[data-key='valence'] button")
    descending = [float(v.replace("−", "-")) for v in page.locator("td.valence").all_inner_texts()]
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
    assert page.locator(".failures li").all_inner_texts() == [
        f"{pages / 'broken.csv'}: not a results table of affectlab analyze: no 'frame' column"]


def test_the_images_page_sorts_faces(pages, open_page):
    page, errors = open_page(pages / "images.html")
    assert page.locator(".card img").count() == 5
    page.select_option("#sort", "valence")
    values = [float(t.split()[-1].replace("−", "-")) for t in page.locator(".card .prob.va").all_inner_texts()[::2]]
    assert values == sorted(values, reverse=True)
    page.select_option("#sort", "expression")
    assert page.locator(".card").first.get_attribute("data-expression") == "Happiness"  # no Neutral face here
    assert errors == []


def test_a_page_whose_video_moved_away_says_so_and_still_draws(pages, open_page, tmp_path):
    copy = shutil.copytree(pages, tmp_path / "copy")
    (copy / "short_annotated.mp4").unlink()
    page, errors = open_page(copy / "short.html")
    page.wait_for_selector(".notice.overlay", timeout=10_000)
    assert "could not be played" in page.locator(".notice.overlay").inner_text()
    assert page.locator(".js-plotly-plot").count() == 4
    assert [e for e in errors if "ERR_FILE_NOT_FOUND" not in e] == []  # the browser's own line for the missing file
