"""``affectlab analyze --engine ray``: a corpus of videos and images on a Ray cluster.

Ray tasks and actors, not Ray Data: a video is one unit of work whose frames must pass in order through
one face tracker (and one temporal smoother), so each video is one call of one actor, which holds the
loaded model and detector (:class:`VideoWorker`) and returns the video's row chunks; images go to the
actors in batches. ``ray.util.ActorPool`` hands the work to idle actors. Ray restarts an actor whose
process dies and runs its call again (``max_restarts``, ``max_task_retries``): a killed worker's video is
redone from its first frame, and since only this process writes files, from whole results, nothing is
lost or written twice. The tables are written by :func:`affectlab.analyze.run.run_analysis` exactly as
one process writes them.

Each actor reserves a fraction of a CPU (half its share of the cluster's CPUs) so that actors never hold
every CPU and Ray's other tasks still start; it runs ``share`` threads. With ``--device cuda`` each takes
its share of the cluster's GPUs (several actors share one GPU). The inputs must be readable at the same
paths on every node (a shared file system); the outputs are written where this process runs.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from tqdm import tqdm

from affectlab.errors import AffectlabError, DataError
from affectlab.labels import LabelSchema

RAY_MISSING = "--engine ray needs Ray, an optional extra: pip install 'affectlab[ray]'"
#: A call whose actor dies is run again on the restarted actor, up to this many attempts in all.
ATTEMPTS = 3
#: How long joining a cluster may take before it is called unreachable.
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class VideoRows:
    """What an actor returns for one video: its row chunks in frame order and the error that ended it
    early (the rows before it are kept), if any."""

    video: str
    chunks: list[pd.DataFrame]
    error: DataError | None


class VideoWorker:
    """One Ray actor: the analyzer built once by ``make_analyzer`` (model and detector loaded), running
    ``threads`` threads (onnxruntime reads OMP_NUM_THREADS, affectlab.onnxrt)."""

    def __init__(self, make_analyzer: Callable[[], Any], threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        self.analyzer = make_analyzer()

    def describe(self) -> tuple[LabelSchema, int, int]:
        """(label schema, video stride, images per batch) of the analyzer: what the writer needs."""
        return self.analyzer.schema, self.analyzer.stride, max(1, self.analyzer.batch_size // 2)

    def video(self, path: str) -> VideoRows:
        """Every row chunk of one video; its tracker state lives and dies in this call."""
        chunks: list[pd.DataFrame] = []
        try:
            for chunk in self.analyzer.iter_rows(path):
                chunks.append(chunk)
        except DataError as e:
            return VideoRows(path, chunks, e)
        except AffectlabError as e:
            return VideoRows(path, chunks, DataError(path, str(e)))
        return VideoRows(path, chunks, None)

    def images(self, paths: list[str]) -> list[pd.DataFrame | DataError]:
        """Rows of a batch of images, a DataError in place of each bad one, in order."""
        return list(self.analyzer.analyze_images(paths))


def _ray():
    try:
        import ray
    except ImportError:
        raise AffectlabError(RAY_MISSING) from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """AffectlabError in one line unless ``host:port`` (or ``ray://host:port``) accepts a connection within
    ``timeout``: Ray itself retries an unreachable cluster for minutes."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise AffectlabError(f"--address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise AffectlabError(f"cannot reach the Ray cluster at {address} ({reason}); start it with "
                             "`ray start --head` on its head node, or leave --address out for a local one") from None


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``: the one running on this machine; ``ray://host:port``: Ray
    Client; host:port: its head node), or start a local one on this machine's cores (None). True when
    this call started Ray (and so should stop it); an already connected process is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if address not in (None, "auto"):
        check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = "a local Ray cluster" if address is None else f"the Ray cluster at {address}"
        raise AffectlabError(f"cannot join {where} ({str(e).strip().splitlines()[0]})") from None
    return True


def worker_resources(cpus: float, gpus: float, workers: int, device: str) -> tuple[dict[str, float], int]:
    """Ray resources of each of ``workers`` actors on a cluster with ``cpus`` and ``gpus``, and its threads.

    A whole CPU per actor would let the actors hold every CPU (Ray then starts nothing else, and more
    workers than cores never start): each reserves half its share instead, and runs as many threads as
    its share has whole cores. On a GPU device each takes its share of the GPUs, several to a GPU."""
    share = cpus / workers
    resources = {"num_cpus": round(min(1.0, share) / 2, 4)}
    if device.startswith("cuda"):
        if gpus <= 0:
            raise AffectlabError(f"--device {device}: the Ray cluster has no GPU")
        resources["num_gpus"] = round(min(1.0, gpus / workers), 4)
    return resources, max(1, int(share))


def progress_note(frames: int, seconds: float) -> str:
    """The frames/s of the cluster so far, for the progress bar."""
    return f"{frames / seconds:.1f} frames/s" if seconds > 0 else ""


class RayEngine:
    """The rows of a run from ``workers`` actors on a Ray cluster (an Engine of analyze.run). Use as a
    context manager: it connects (or starts a local cluster), starts the actors, and stops what it started.

        with RayEngine(lambda: Analyzer(...), workers=2) as engine:
            report = run_analysis(engine, inputs, out, parquet=True)
    """

    schema: LabelSchema
    stride: int

    def __init__(self, make_analyzer: Callable[[], Any], *, address: str | None = None, workers: int | None = None,
                 device: str = "cpu", progress: bool = True):
        if workers is not None and workers < 1:
            raise AffectlabError(f"--workers must be at least 1, got {workers}")
        self.make_analyzer, self.address, self.workers = make_analyzer, address, workers
        self.device, self.progress = device, progress
        self.actors: list[Any] = []
        self._started = False

    def __enter__(self) -> "RayEngine":
        ray = _ray()
        self._started = connect(self.address)
        try:
            total = ray.cluster_resources()
            workers = self.workers or max(1, int(total.get("CPU", 1)))
            resources, threads = worker_resources(total.get("CPU", 1.0), total.get("GPU", 0.0), workers, self.device)
            actor = ray.remote(VideoWorker).options(max_restarts=ATTEMPTS - 1, max_task_retries=ATTEMPTS - 1,
                                                    **resources)
            self.actors = [actor.remote(self.make_analyzer, threads) for _ in range(workers)]
            try:
                described = ray.get([a.describe.remote() for a in self.actors])
            except ray.exceptions.RayError as e:
                raise AffectlabError(f"the Ray workers could not start ({_last_line(e)})") from None
            self.schema, self.stride, self._image_batch = described[0]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        ray = _ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self._started:
            ray.shutdown()
            self._started = False

    def videos(self, names: dict[Path, str]) -> Iterator[tuple[Path, Iterable[pd.DataFrame]]]:
        """Each video's rows as soon as an actor has them (videos in the order they finish); a video
        whose actor died ATTEMPTS times comes last, as one error."""
        if not names:
            return
        from ray.util import ActorPool

        ray = _ray()
        pool, pending, reasons = ActorPool(self.actors), {os.fspath(v): v for v in names}, []
        for video in names:
            pool.submit(lambda actor, path: actor.video.remote(path), os.fspath(video))
        start, frames = time.perf_counter(), 0
        with tqdm(total=len(names), unit="video", desc="videos", disable=not self.progress, dynamic_ncols=True) as bar:
            while pool.has_next():
                try:
                    result: VideoRows = pool.get_next_unordered()
                except ray.exceptions.RayError as e:  # an actor died ATTEMPTS times, or a bug in it
                    reasons.append(_last_line(e))
                    bar.update(1)
                    continue
                frames += sum(int(c["frame"].nunique()) for c in result.chunks)
                bar.update(1)
                bar.set_postfix_str(progress_note(frames, time.perf_counter() - start))
                yield pending.pop(result.video), _replay(result)
        reason = "; ".join(dict.fromkeys(reasons)) or "no Ray worker was left to analyse it"
        for video in pending.values():
            yield video, _replay(VideoRows(os.fspath(video), [], DataError(
                video, f"not analysed: its Ray worker failed {ATTEMPTS} times ({reason}); run again with "
                       "--skip-existing")))

    def images(self, images: list[Path]) -> Iterator[pd.DataFrame | DataError]:
        """Rows of the images in batches, one batch a call, in the order given."""
        from ray.util import ActorPool

        ray = _ray()
        batches = [images[i:i + self._image_batch] for i in range(0, len(images), self._image_batch)]
        pool = ActorPool(self.actors)
        for batch in batches:
            pool.submit(lambda actor, paths: actor.images.remote(paths), [os.fspath(p) for p in batch])
        reason = "no Ray worker was left to analyse it"
        for batch in batches:
            try:
                if pool.has_next():
                    yield from pool.get_next()
                    continue
            except ray.exceptions.RayError as e:
                reason = _last_line(e)
            for path in batch:
                yield DataError(path, f"not analysed: its Ray worker failed {ATTEMPTS} times ({reason})")


def _replay(result: VideoRows) -> Iterator[pd.DataFrame]:
    """A worker's result as the row chunks it came in, then its error: what run_analysis writes from."""
    yield from result.chunks
    if result.error is not None:
        raise result.error


def _last_line(error: BaseException) -> str:
    """The last non-empty line of an error's text (a Ray error carries the worker's traceback first)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
