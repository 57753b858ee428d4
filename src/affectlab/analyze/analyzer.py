"""``Analyzer``: media in, one results row per face per frame out (see analyze.results).

Frames are decoded, faces detected (MTCNN, every ``detect_every``-th frame, refined in between),
aligned to the model's template and predicted in batches. Videos are processed in chunks of frames
and yielded as they are done, so memory stays flat and a caller can write rows as they come.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from itertools import islice
from typing import NamedTuple

import numpy as np
import pandas as pd

from affectlab.analyze.media import Frame, is_video, iter_frames, iter_video
from affectlab.analyze.results import finalize, prediction_frame
from affectlab.errors import AffectlabError, DataError
from affectlab.faces import MTCNN, FaceTracker, align_face, follow
from affectlab.faces.descriptor import SAME_PERSON, FaceDescriptor
from affectlab.faces.geometry import face_geometry
from affectlab.faces.mtcnn import SECOND_LOOKS
from affectlab.faces.reid import REID_MODES, People, ReIdentifier, check_threshold
from affectlab.inference.backends import Backend, open_backend
from affectlab.inference.outputs import FaceOutputs, probabilities
from affectlab.models.meta import TEST_TIME_FLIP, InputSpec

FACE_MODES = ("detect", "crops")


class Face(NamedTuple):
    """One face of a frame on its way to a results row: its id (a track in a video, the rank by score
    in an image), box (x1, y1, x2, y2 pixels), 5 landmarks (None for a given crop) and detector score."""

    face_id: int
    box: np.ndarray
    landmarks: np.ndarray | None
    score: float
DETECT_EVERY = 6  # full detections every 6th frame (1/4 s at 24 fps): new faces appear within that


def _load_malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_malloc_trim = _load_malloc_trim()


def release_freed_memory() -> None:
    """Hand memory freed by the last chunk back to the OS.

    The detector allocates differently sized pyramids and crops for every chunk of frames; glibc keeps
    the freed blocks in fragmented arenas, so without this the resident size of a long video grows by
    about 0.2 MB per frame although nothing is kept (measured in bench/memory.py)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _take(frames: Iterator[Frame], n: int) -> tuple[list[Frame], DataError | None]:
    """Up to ``n`` frames, and the error that ended the video early, if any: the frames decoded before a
    break come back beside it, so a truncated video keeps every frame it has, whatever the chunk size."""
    chunk: list[Frame] = []
    try:
        for frame in islice(frames, n):
            chunk.append(frame)
    except DataError as e:
        return chunk, e
    return chunk, None


def _frames_of(arrays: Iterable[np.ndarray], stride: int, fps: float | None, name: str) -> Iterator[Frame]:
    """Every ``stride``-th array as a Frame (1-based ``frame``), each checked to be an RGB uint8 image."""
    for index, image in enumerate(arrays, start=1):
        if (index - 1) % stride:
            continue
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise AffectlabError(f"{name}: frame {index} is not an RGB uint8 image (H x W x 3); got "
                                 f"{image.dtype} of shape {image.shape}")
        yield Frame(name, index, (index - 1) / fps if fps else float("nan"), image)


class Analyzer:
    """Analyse images and videos with a checkpoint (``.safetensors``), an exported ``.onnx`` model, or
    the bundled default model (``model=None``).

    ``faces="detect"`` finds faces with MTCNN; ``faces="crops"`` takes each input as an already
    aligned face crop (e.g. ABAW ``cropped_aligned`` frames) and skips detection. In a video,
    ``stride`` keeps every n-th frame and ``detect_every`` runs the full detector on every k-th kept
    frame and refines each face from its last box in between (affectlab.faces.follow: about a quarter
    of the detector's time at the default 6, landmarks within ~3 % of the inter-ocular distance of
    detecting every frame, no face lost on the sample videos; bench/detection.py); 1 runs the full
    detector on every frame. ``smooth`` (μ per task, e.g.
    ``{"au": 7, "expr": 9, "va": 9}``) smooths each face track's features over a video's frames with
    SMM eq. 9 before the model's last layers (see inference.smoothing); it needs a PyTorch checkpoint.
    ``precision`` (fp32, bf16) is the PyTorch backend's (inference.backends.open_backend).
    ``reid`` (affectlab.faces.reid): ``video`` (default) gives a face that leaves a video and comes back
    its earlier ``face_id`` when its descriptor lies within ``reid_threshold`` of that face's;
    ``across`` also gives every face a ``person_id``, one per person across all inputs of this
    Analyzer; ``off``: ids by box tracking alone.
    """

    def __init__(self, model: str | os.PathLike[str] | Backend | None = None, *,
                 device: str = "cpu", precision: str = "fp32", faces: str = "detect", stride: int = 1,
                 detect_every: int = DETECT_EVERY, batch_size: int = 32, min_face_size: float = 40,
                 chunk_frames: int = 64, smooth: Mapping[str, float] | None = None,
                 landmarks: bool = False, mesh: bool = False, flip: bool | None = None, reid: str = "video",
                 reid_threshold: float = SAME_PERSON):
        if faces not in FACE_MODES:
            raise AffectlabError(f"faces must be one of {', '.join(FACE_MODES)}, got {faces!r}")
        if reid not in REID_MODES:
            raise AffectlabError(f"reid must be one of {', '.join(REID_MODES)}, got {reid!r}")
        if reid == "across" and faces != "detect":
            raise AffectlabError("re-identification across inputs needs detected faces (not --faces crops)")
        if stride < 1 or detect_every < 1 or batch_size < 1:
            raise AffectlabError("stride, detect_every and batch_size must be at least 1")
        self.backend = model if isinstance(model, Backend) else open_backend(model, device, precision,
                                                                             features=bool(smooth))
        meta = self.backend.meta
        self.schema = meta.schema
        #: How the model wants its faces, as training framed them (size; the margin of ``--faces crops``).
        self.spec = InputSpec.from_meta(meta)
        self.size = self.spec.size
        self.template = np.asarray(meta.align_template, dtype=np.float64)
        thresholds = meta.extra.get("au_thresholds")
        self.au_thresholds = np.full(self.schema.n_au, 0.5) if thresholds is None else np.asarray(
            [thresholds[a] for a in self.schema.au_names], dtype=np.float64)
        #: Horizontal-flip test-time averaging: each face and its mirror image, outputs averaged. None:
        #: as the checkpoint says (``test_time_flip``, stored where validation showed it pays).
        self.flip = bool(meta.extra.get(TEST_TIME_FLIP, False)) if flip is None else flip
        self.faces, self.stride, self.detect_every = faces, stride, detect_every
        #: Also the 68 landmarks, head pose and gaze of each face (faces.geometry, at a cost), ``mesh``:
        #: and its full 468-point mesh.
        self.landmarks, self.mesh = landmarks or mesh, mesh
        self.batch_size, self.chunk_frames = batch_size, chunk_frames
        self.detector = MTCNN(device, min_face_size=min_face_size) if faces == "detect" else None
        #: Re-identification (affectlab.faces.reid): off for given crops; ``people``: the persons of ``across``.
        self.reid, self.reid_threshold = (reid if faces == "detect" else "off"), check_threshold(reid_threshold)
        self.people = People(self.reid_threshold) if self.reid == "across" else None
        self._person_of: dict[tuple[str, int], int] = {}  # (input, face_id) -> person_id, with ``across``
        # (frame, face_id) -> the box track of a re-identified face in this chunk: smoothing (SMM eq. 9) runs
        # along a track and starts afresh where a returning face starts a new one, never across a gap or cut
        self._track_of: dict[tuple[int, int], int] = {}
        self.smoother = None
        if smooth:
            if self.backend.model is None:
                raise AffectlabError("temporal smoothing (SMM eq. 9) works on the model's features: give the "
                                     "PyTorch checkpoint, not an exported .onnx")
            from affectlab.inference.smoothing import TemporalSmoother  # torch: imported only when smoothing

            self.smoother = TemporalSmoother(self.backend.model, smooth)
        #: Seconds spent per stage since construction, for benchmarks: decode, detect (full detections),
        #: refine (frames between them), reid, landmarks (mesh, iris, pose, gaze), align, predict.
        self.timings: dict[str, float] = defaultdict(float)

    @cached_property
    def describe(self) -> FaceDescriptor:
        """The face descriptor of re-identification (its network loads when first run, timed as ``reid``)."""
        return FaceDescriptor()

    @contextmanager
    def _timed(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - start

    # --- public API -------------------------------------------------------------------------

    def analyze(self, path: str | os.PathLike[str]) -> pd.DataFrame:
        """All rows of one image or video as a DataFrame.

        A video that breaks part-way (truncated, corrupt) returns the rows of the frames before the
        break and warns with the reason; an input that yields nothing raises DataError."""
        chunks = []
        try:
            for chunk in self.iter_rows(path):
                chunks.append(chunk)
        except DataError as e:
            if not chunks:
                raise
            warnings.warn(str(e), stacklevel=2)
        return pd.concat(chunks, ignore_index=True)

    def analyze_images(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[pd.DataFrame | DataError]:
        """Rows of many images, batched for the detector and the model; a bad image yields its
        DataError in place of rows, and the others go on."""
        pending = iter(paths)
        while batch := list(islice(pending, max(1, self.batch_size // 2))):
            frames: list[Frame] = []
            for path in batch:
                try:
                    with self._timed("decode"):
                        frames += list(iter_frames(path))
                except DataError as e:
                    yield e
            if frames:
                yield self._rows(frames, self._faces_of_stills(frames))

    def iter_rows(self, path: str | os.PathLike[str]) -> Iterator[pd.DataFrame]:
        """Rows of one input in chunks, as soon as each chunk is done (a video's frames in order)."""
        if not is_video(path):
            with self._timed("decode"):
                frames = list(iter_frames(path))
            yield self._rows(frames, self._faces_of_stills(frames))
            return
        yield from self._tracked_rows(iter_video(path, self.stride))

    def stream(self, frames: Iterable[np.ndarray], *, fps: float | None = None,
               name: str = "<stream>") -> Iterator[pd.DataFrame]:
        """Rows of a sequence of RGB uint8 arrays (H x W x 3: a webcam loop, another decoder), chunk by
        chunk, exactly as a video file's: faces tracked, the detector on every ``detect_every``-th kept
        frame, every ``stride``-th frame kept. ``frame`` counts the arrays from 1, ``timestamp`` is
        (frame - 1) / ``fps`` seconds (NaN without ``fps``), ``input`` is ``name``. A chunk is yielded
        once ``chunk_frames`` frames are in (or the iterable ends); a DataError raised by the iterable
        comes after the rows of the frames before it."""
        yield from self._tracked_rows(_frames_of(frames, self.stride, fps, name))

    def _tracked_rows(self, frames: Iterator[Frame]) -> Iterator[pd.DataFrame]:
        """The rows of consecutive frames of one video, in chunks, faces tracked across chunks; a
        DataError that ends the frames early is raised after the rows of every frame before it."""
        tracker = FaceTracker()
        reid = None if self.reid == "off" else ReIdentifier(self.describe, self.reid_threshold, people=self.people)
        if self.smoother is not None:
            self.smoother.reset()
        kept = 0
        while True:
            with self._timed("decode"):
                chunk, broken = _take(frames, self.chunk_frames)
            if not chunk and broken is None:
                break
            if chunk:
                detect = [(kept + i) % self.detect_every == 0 for i in range(len(chunk))]
                kept += len(chunk)
                self._track_of.clear()
                rows = self._rows(chunk, self._faces_of_video(chunk, detect, tracker, reid), smooth=True)
                del chunk
                release_freed_memory()
                yield rows
            if broken is not None:
                raise broken

    # --- faces ------------------------------------------------------------------------------

    def _faces_of_stills(self, frames: Sequence[Frame]) -> list[list[Face]]:
        """The faces of each still image; ids by score."""
        if self.detector is None:
            return [[self._whole(f)] for f in frames]
        with self._timed("detect"):
            found = self.detector.detect_batch([f.image for f in frames], SECOND_LOOKS)  # tight crops too
        if self.people is not None:
            with self._timed("reid"):
                for frame, faces in zip(frames, found):  # faces of one image are different people
                    persons = self.people.assign(self.describe.describe(frame.image, faces.landmarks)[0])
                    self._person_of.update({(frame.input, i): p for i, p in enumerate(persons)})
        return [[Face(i, d.boxes[i], d.landmarks[i], float(d.scores[i])) for i in range(len(d))] for d in found]

    def _faces_of_video(self, chunk: Sequence[Frame], detect: Sequence[bool], tracker: FaceTracker,
                        reid: ReIdentifier | None) -> list[list[Face]]:
        if self.detector is None:
            return [[self._whole(f)] for f in chunk]
        tracked = []
        for frame, full in zip(chunk, detect):
            with self._timed("detect" if full else "refine"):  # refine: O-Net from the last boxes (or a lost face's redetection)
                faces = follow(self.detector, tracker, frame.image, full)
            if reid is not None:
                with self._timed("reid"):
                    named = reid.assign(frame.image, faces, tracker)
                self._track_of.update({(frame.frame, n.face_id): f.face_id for f, n in zip(faces, named)})
                faces = named
                if self.people is not None:
                    self._person_of.update({(frame.input, t.face_id): reid.person_of(t.face_id) for t in faces})
            tracked.append(faces)
        return [[Face(t.face_id, t.box, t.landmarks, t.score) for t in faces] for faces in tracked]

    @staticmethod
    def _whole(frame: Frame) -> Face:
        h, w = frame.image.shape[:2]
        return Face(0, np.array([0, 0, w, h], dtype=np.float32), None, 1.0)

    def _crop(self, image: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
        if landmarks is None:  # a given face crop: framed exactly as training framed such crops
            from affectlab.data.transforms import center_crop, frame_face, framing_points  # imports torch

            framing = self.spec.crop_framing
            points = None if framing is None else framing_points(framing, image)
            return center_crop(frame_face(image, points, self.size, self.spec.margin, template=self.spec.template),
                               self.size)
        return align_face(image, landmarks, self.template, self.size)

    # --- rows -------------------------------------------------------------------------------

    def _predict(self, crops: np.ndarray, tracks: list[int], smooth: bool) -> FaceOutputs:
        """The model on all crops in batches (and on their mirror images with ``flip``: probabilities, or
        the features smoothing works on, averaged); with smoothing, features of each track are smoothed first."""
        features = self.smoother.features if smooth and self.smoother is not None else ()
        views = [crops, np.ascontiguousarray(crops[:, :, ::-1])] if self.flip else [crops]
        batches = [v[i:i + self.batch_size] for v in views for i in range(0, len(v), self.batch_size)]
        parts = [self.backend(b, features) for b in batches]

        def mean_of(values: list[np.ndarray]) -> np.ndarray:
            joined = np.concatenate(values)
            return joined.reshape(len(views), len(crops), *joined.shape[1:]).mean(axis=0)

        if not features:
            return FaceOutputs(*(mean_of([getattr(p, k) for p in parts]) for k in ("au", "expr", "va")))
        stacked = {name: mean_of([p.features[name] for p in parts]) for name in features}
        out = self.smoother.step(stacked, tracks)
        return probabilities(*(out[k].numpy() for k in ("au", "expr", "va")))

    def _meta_and_crops(self, frames: Sequence[Frame], faces: Sequence[list[Face]],
                        geometry: Sequence[list[dict[str, float]]]) -> tuple[list[dict], list[np.ndarray]]:
        """One meta row per face (or per face-less frame), with its ``geometry`` columns, and the aligned
        crop of each face."""
        meta, crops = [], []
        for frame, found, shapes in zip(frames, faces, geometry):
            base = {"input": frame.input, "frame": frame.frame, "timestamp": frame.timestamp}
            if not found:
                meta.append(base | {"face_id": -1, "confidence": 0.0, "success": 0})
            for face, shape in zip(found, shapes):
                x1, y1, x2, y2 = (float(v) for v in face.box)
                meta.append(base | {"face_id": face.face_id, "x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1,
                                    "confidence": face.score, "success": 1} | shape)
                crops.append(self._crop(frame.image, face.landmarks))
        return meta, crops

    def _geometry(self, frames: Sequence[Frame], faces: Sequence[list[Face]]) -> list[list[dict[str, float]]]:
        """Landmarks, pose and gaze of each frame's faces (from their boxes and MTCNN's eye points), the
        faces of all the frames in one call of the mesh and iris models."""
        found = [(frame.image, face) for frame, of_frame in zip(frames, faces) for face in of_frame]
        eyes = [None if face.landmarks is None else np.asarray(face.landmarks)[:2] for _, face in found]
        rows = iter(face_geometry([image for image, _ in found], [np.asarray(face.box) for _, face in found], eyes,
                                  mesh=self.mesh))
        return [[next(rows) for _ in of_frame] for of_frame in faces]

    def _rows(self, frames: Sequence[Frame], faces: Sequence[list[Face]], smooth: bool = False) -> pd.DataFrame:
        """Rows of a chunk; ``smooth``: the chunk is consecutive frames of one video (SMM eq. 9 applies)."""
        with self._timed("landmarks"):
            geometry = self._geometry(frames, faces) if self.landmarks else [[{}] * len(found) for found in faces]
        with self._timed("align"):
            meta, crops = self._meta_and_crops(frames, faces, geometry)
        table = pd.DataFrame(meta)
        if self.people is not None:
            table["person_id"] = [self._person_of.get((m["input"], m["face_id"])) if m["success"] else None
                                  for m in meta]
        if crops:
            with self._timed("predict"):
                tracks = [self._track_of.get((m["frame"], m["face_id"]), m["face_id"]) for m in meta if m["success"]]
                scores = self._predict(np.stack(crops), tracks, smooth)
            predicted = prediction_frame(self.schema, scores.au, scores.expr, scores.va, self.au_thresholds)
            predicted.index = np.flatnonzero(table["success"].to_numpy() == 1)
            table = table.join(predicted)  # rows without a face keep empty predictions
        return finalize(table, self.schema, geometry=self.landmarks, mesh=self.mesh, person=self.people is not None)
