"""affectlab.analyze.corpus: the Ray engine on a local 2-CPU cluster, shared by the tests of this module
(a Ray start costs seconds), against the same run in one process."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

import bad_inputs as bad
from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.corpus import (RAY_MISSING, RayEngine, check_reachable, connect, progress_note,
                                      worker_resources)
from affectlab.analyze.run import run_analysis
from affectlab.errors import AffectlabError

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "media" / "single_face.mp4"


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster of 2 CPUs for the module: the engine uses a connected process as it is."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra affectlab[ray] (make install installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the Parquet dataset, by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "parquet" not in p.parts}


def test_ray_writes_what_one_process_writes(ray_cluster, tiny_model, tmp_path):
    """Two workers, faces detected, landmarks on, OpenFace format, ABAW files: byte for byte the files of a
    run in this process; a corrupt video is one line, the others are done (status 1); the Parquet dataset
    reads as one table holding the CSV tables' rows."""
    clips = [shutil.copy(CLIP, tmp_path / "face.mp4"), bad.video(tmp_path / "grey.mp4", n=9),
             bad.truncated_file(CLIP, tmp_path / "cut.mp4", keep=0.01)]
    inputs = [*clips, bad.good_image(tmp_path / "a.png", (48, 40)), bad.zero_byte(tmp_path / "empty.jpg"),
              bad.good_image(tmp_path / "b.png", (40, 48), value=30)]
    make = partial(Analyzer, str(tiny_model), stride=6, landmarks=True, batch_size=2)
    options = dict(fmt="openface", abaw=True, progress=False)
    local = run_analysis(make(), inputs, tmp_path / "local", **options)
    with RayEngine(make, workers=2, progress=False) as engine:
        remote = run_analysis(engine, inputs, tmp_path / "ray", parquet=True, **options)
    assert files(tmp_path / "ray") == files(tmp_path / "local") and "face.csv" in files(tmp_path / "local")
    assert sorted(remote.failures) == sorted(local.failures) and any(f.startswith(str(clips[2])) for f in local.failures)
    assert remote.exit_status == local.exit_status == 1
    import pyarrow.parquet as pq

    dataset = pd.read_parquet(tmp_path / "ray" / "parquet")
    assert sorted(p.name for p in (tmp_path / "ray" / "parquet").iterdir()) == [
        "face.parquet", "grey.parquet", "images.parquet"]
    csv = pd.concat([pd.read_csv(tmp_path / "ray" / f"{n}.csv", skipinitialspace=True) for n in ("face", "grey", "images")])
    assert list(dataset.columns) == [c.strip() for c in csv.columns] and len(dataset) == len(csv)
    types = pq.read_schema(tmp_path / "ray" / "parquet" / "grey.parquet")
    assert str(types.field("frame").type) == str(types.field("AU01_c").type) == "int64"  # AU01_c empty: no face
    assert dataset["AU01_c"].isna().any() and dataset["AU01_c"].notna().any()


def worker_pids(title: str) -> list[int]:
    """Processes whose title (Ray names a busy actor's process ray::Class.method) starts with ``title``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(title.encode()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker's process in /proc")
def test_a_killed_worker_has_its_video_redone(ray_cluster, tiny_model, tmp_path):
    """The process of a worker busy with a video is killed: Ray restarts it and the video is redone;
    every table is whole, none has a row twice, and the files are those of one process."""
    inputs = [bad.video(tmp_path / "long.mp4", n=120, size=(32, 32)), bad.video(tmp_path / "short.mp4", n=20)]
    make = partial(Analyzer, str(tiny_model), faces="crops", batch_size=1, chunk_frames=8)
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            busy = worker_pids("ray::VideoWorker.video")
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    with RayEngine(make, workers=2, progress=False) as engine:
        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        report = run_analysis(engine, inputs, tmp_path / "ray", progress=False)
        killer.join()
    assert killed and report.exit_status == 0 and not report.failures
    run_analysis(make(), inputs, tmp_path / "local", progress=False)
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    assert pd.read_csv(tmp_path / "ray" / "long.csv")["frame"].tolist() == list(range(1, 121))


def test_unreachable_address_is_one_line_within_30_s(tmp_path):
    """A cluster address nobody listens at: one line, no traceback, well before Ray's own minutes of retries."""
    clip = bad.video(tmp_path / "clip.mp4", n=3)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "affectlab.cli", "analyze", str(clip), "--out", str(tmp_path / "o"),
                           "--engine", "ray", "--address", "127.0.0.1:9", "--quiet"],
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("affectlab: error: cannot reach the Ray cluster at 127.0.0.1:9")


@pytest.mark.parametrize("address", ["nonsense", "ray://host-without-port"])
def test_malformed_address_is_refused(address):
    with pytest.raises(AffectlabError, match="is not host:port"):
        check_reachable(address)


def test_without_ray_the_engine_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    from affectlab.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as where it is not installed
    with pytest.raises(AffectlabError, match=r"pip install 'affectlab\[ray\]'"):
        connect(None)
    clip = bad.video(tmp_path / "clip.mp4", n=3)
    assert main(["analyze", str(clip), "--out", str(tmp_path / "o"), "--engine", "ray", "--quiet"]) == 2
    assert capsys.readouterr().err == f"affectlab: error: {RAY_MISSING}\n"


def test_workers_take_fractions_of_cpus_and_gpus():
    """Actors never hold every CPU (2 workers on 2 cores keep half free), more workers than cores still
    start, and GPU workers share the GPUs."""
    assert worker_resources(2, 0, 2, "cpu") == ({"num_cpus": 0.5}, 1)
    assert worker_resources(2, 0, 1, "cpu") == ({"num_cpus": 0.5}, 2)
    assert worker_resources(2, 0, 8, "cpu") == ({"num_cpus": 0.125}, 1)
    assert worker_resources(16, 1, 4, "cuda") == ({"num_cpus": 0.5, "num_gpus": 0.25}, 4)
    with pytest.raises(AffectlabError, match="has no GPU"):
        worker_resources(16, 0, 4, "cuda:0")


def test_progress_note():
    assert progress_note(300, 2.0) == "150.0 frames/s" and progress_note(0, 0.0) == ""
