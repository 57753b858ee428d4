"""affectlab.analyze.run on tiny generated media: what a run keeps, skips, fills and reports."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bad_inputs as bad
from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.media import iter_video
from affectlab.analyze.run import run_analysis
from affectlab.errors import DataError

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def crops(tiny_model) -> Analyzer:
    """Every input taken as a face crop: no detector, so a frame always gives one face."""
    return Analyzer(tiny_model, faces="crops")


@pytest.fixture(scope="module")
def detect(tiny_model) -> Analyzer:
    return Analyzer(tiny_model)


def cut_mkv(folder: Path, n: int = 60) -> Path:
    """An mkv cut at 60 %: it decodes part-way, then ends early."""
    whole = bad.video(folder / "whole.mkv", n=n, size=(64, 48))
    return bad.truncated_file(whole, folder / "cut.mkv", keep=0.6)


def decodable_frames(path: Path) -> int:
    frames = 0
    with pytest.raises(DataError):
        for _ in iter_video(path):
            frames += 1
    return frames


def test_only_unreadable_images_leave_no_empty_table(crops, tmp_path):
    """One line per bad image, no images.csv without rows, nothing done: exit status 2."""
    inputs = [bad.zero_byte(tmp_path / "empty.jpg"), bad.text_as_image(tmp_path / "notes.jpg"),
              bad.truncated_jpeg(tmp_path / "half.jpg")]
    report = run_analysis(crops, inputs, tmp_path / "out", progress=False)
    assert [f.split(": ")[0] for f in report.failures] == [str(p) for p in inputs]
    assert not (tmp_path / "out" / "images.csv").exists() and report.exit_status == 2


def test_a_good_input_beside_bad_ones_is_done_and_the_status_is_1(crops, tmp_path):
    good = bad.good_image(tmp_path / "good.png")
    report = run_analysis(crops, [bad.zero_byte(tmp_path / "empty.jpg"), good], tmp_path / "out", progress=False)
    assert pd.read_csv(tmp_path / "out" / "images.csv")["input"].tolist() == [str(good)]
    assert len(report.failures) == 1 and report.exit_status == 1


@pytest.mark.parametrize("chunk", [4, 7, 64])
def test_truncated_video_keeps_every_frame_that_decodes(tiny_model, tmp_path, chunk):
    """The frames decoded before the break are all kept, whatever the chunk size."""
    cut = cut_mkv(tmp_path)
    expected = decodable_frames(cut)
    report = run_analysis(Analyzer(tiny_model, faces="crops", chunk_frames=chunk), [cut], tmp_path / "out",
                          progress=False)
    table = pd.read_csv(tmp_path / "out" / "cut.csv")
    assert table["frame"].tolist() == list(range(1, expected + 1))
    (failure,) = report.failures
    assert failure.endswith(f"after frame {expected} (truncated file?); kept the {expected} frames before it")


def test_skip_existing_says_what_it_skipped_and_makes_missing_outputs(crops, tmp_path):
    """A re-run writes nothing it already has, says so, and draws what was not asked for before."""
    clip, photo = bad.video(tmp_path / "clip.mp4", n=6), bad.good_image(tmp_path / "photo.png")
    out = tmp_path / "out"
    first = run_analysis(crops, [clip, photo], out, progress=False)
    assert first.exit_status == 0 and not first.skipped
    again = run_analysis(crops, [clip, photo], out, skip_existing=True, progress=False)
    assert again.skipped == [str(clip), str(photo)] and again.written == [] and again.exit_status == 0
    more = run_analysis(crops, [clip, photo], out, skip_existing=True, plots=True, video_out=True, progress=False)
    names = {p.name for p in more.written}
    assert {"clip_va.png", "clip_circumplex.png", "clip_annotated.mp4", "images_circumplex.png",
            "photo_annotated.png"} <= names and "clip.csv" not in names and "images.csv" not in names
    assert run_analysis(crops, [clip, photo], out, skip_existing=True, plots=True, video_out=True,
                        progress=False).written == []  # everything is there now


def test_abaw_for_a_face_less_video_fills_every_frame(detect, tmp_path):
    """No face anywhere is a warning, and the challenge's files still get a line per frame."""
    clip = bad.video(tmp_path / "blank.mp4", n=5)
    report = run_analysis(detect, [clip], tmp_path, abaw=True, progress=False)
    assert report.exit_status == 0 and not report.failures
    assert report.warnings == [f"blank: no face was found in {clip}; its ABAW files hold the neutral default "
                               "on every frame"]
    expr = (tmp_path / "abaw" / "EXPR" / "blank.txt").read_text().splitlines()
    va = (tmp_path / "abaw" / "VA" / "blank.txt").read_text().splitlines()
    au = (tmp_path / "abaw" / "AU" / "blank.txt").read_text().splitlines()
    assert expr[1:] == ["0"] * 5 and va[1:] == ["0.0000,0.0000"] * 5 and au[1:] == [",".join(["0"] * 12)] * 5


def test_images_get_an_annotated_copy(crops, tmp_path):
    """--video-out also draws the faces of still images, one copy per image."""
    images = [bad.good_image(tmp_path / "a" / "x.jpg", (40, 30)), bad.good_image(tmp_path / "b" / "x.jpg", (40, 30)),
              bad.good_image(tmp_path / "y.png", (20, 20))]
    report = run_analysis(crops, images, tmp_path / "out", video_out=True, progress=False)
    drawn = sorted(p.name for p in report.written if "annotated" in p.name)
    assert drawn == ["a_x_annotated.jpg", "b_x_annotated.jpg", "y_annotated.png"]
    from PIL import Image

    with Image.open(tmp_path / "out" / "y_annotated.png") as im:
        colours = np.unique(np.asarray(im).reshape(-1, 3), axis=0)
    assert im.size == (20, 20) and len(colours) > 1  # the box is drawn on the plain image


def test_folders_in_the_output_are_not_inputs(crops, tmp_path):
    """A folder is searched into, but not into the run's own output inside it."""
    bad.good_image(tmp_path / "photos" / "happy" / "a.png")
    run_analysis(crops, [tmp_path / "photos"], tmp_path / "photos" / "out", video_out=True, progress=False)
    report = run_analysis(crops, [tmp_path / "photos"], tmp_path / "photos" / "out", progress=False)
    assert pd.read_csv(tmp_path / "photos" / "out" / "images.csv")["input"].tolist() == [
        str(tmp_path / "photos" / "happy" / "a.png")] and report.exit_status == 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_sigint_keeps_rows_and_skip_existing_finishes(tiny_model, tmp_path, capsys, how):
    """Ctrl-C (or a scheduler's SIGTERM) in a long video keeps the rows written so far; --skip-existing
    completes it. The video is long enough that a loaded machine, which may not wake this test for a
    second or two, still signals the run before it ends."""
    from affectlab.cli import main

    n = 1500
    clip = bad.video(tmp_path / "long.mp4", n=n, size=(32, 32))
    out, partial = tmp_path / "out", tmp_path / "out" / "long.csv.partial"
    args = ["analyze", str(clip), "--out", str(out), "--model", str(tiny_model), "--faces", "crops", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    # the default Ctrl-C disposition, as a shell gives it: a child inherits an ignored SIGINT (a library
    # earlier in the suite may leave it ignored), and would then finish instead of stopping
    proc = subprocess.Popen([sys.executable, "-m", "affectlab.cli", *args, "--batch-size", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (partial.is_file() and partial.stat().st_size > 2000) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, how) and "Traceback" not in err, err
    assert "run again with --skip-existing" in err and "affectlab: interrupted" in err
    kept = pd.read_csv(partial)
    assert 0 < len(kept) < n and kept["frame"].tolist() == list(range(1, len(kept) + 1))
    assert main([*args, "--skip-existing"]) == 0, capsys.readouterr().err
    assert pd.read_csv(out / "long.csv")["frame"].tolist() == list(range(1, n + 1)) and not partial.exists()


def test_skip_existing_run_says_nothing_new_was_written(tiny_model, tmp_path, capsys):
    """The re-run printed "wrote 1 file" although nothing changed."""
    from affectlab.cli import main

    args = ["analyze", str(bad.video(tmp_path / "clip.mp4", n=3)), "--out", str(tmp_path / "out"),
            "--model", str(tiny_model), "--faces", "crops", "--quiet"]
    assert main(args) == 0 and "wrote 1 file" in capsys.readouterr().out
    assert main([*args, "--skip-existing"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 input already analysed" in out and "nothing new written to" in out and "wrote" not in out


def test_a_damaged_earlier_table_is_one_line_and_the_rest_goes_on(crops, tmp_path):
    """--skip-existing over a table someone broke: that input fails in one line, the others are done."""
    clip, photo, out = bad.video(tmp_path / "clip.mp4", n=3), bad.good_image(tmp_path / "photo.png"), tmp_path / "out"
    out.mkdir()
    (out / "clip.csv").write_bytes(b"\x00\xff\xfe garbage")
    report = run_analysis(crops, [clip, photo], out, skip_existing=True, progress=False)
    assert len(report.failures) == 1 and report.failures[0].startswith(f"{out / 'clip.csv'}: not a results table")
    assert report.exit_status == 1 and pd.read_csv(out / "images.csv")["input"].tolist() == [str(photo)]
