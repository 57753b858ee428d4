"""A sample table as a torch Dataset of batch dicts (DESIGN.md, "Batch").

Every item holds ``image``, ``au``/``au_mask``, ``expr``/``expr_mask``, ``expr_soft``/``expr_soft_mask``,
``va``/``va_mask`` and meta: ``index`` (table row), ``group`` (sampler group, -1 outside training),
``source``, ``path``, ``corrupt`` and ``error``. Labels come from arrays built once, so an item costs
one image decode per frame and no pandas. Missing labels are masked; the value under a mask is 0.

An image that cannot be decoded does not end the run: its item gets a black image and all-False
masks (it adds nothing to any loss, and every process of a distributed run still sees a full
batch), ``corrupt`` is True and ``error`` names the file; the trainer counts it, or stops with that
message when asked to.

Layouts follow the model (:attr:`affectlab.models.AffectModel.input_layout`): one face (3, H, W);
``views`` > 1, one image per view (V, 3, H, W) for the face-and-context ensemble (a view with context
takes the row's ``context_path`` image whole where the table has one: Aff-Wild2's ``cropped``); ``clip_len`` > 0,
``clip_len`` consecutive frames of the row's video centred on it (T, 3, H, W), labels per frame and
``anchor`` (the row's own frame in the clip), for sequence models (shifted at a video's ends; the
last frame repeats where the video is shorter).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from affectlab.data.table import soft_columns
from affectlab.data.transforms import (Augmentation, UnreadableImage, augment, center_crop, decode_rgb, frame_face,
                                       framing_points, load_size, normalise, sample_params)
from affectlab.labels import LabelSchema
from affectlab.models.meta import InputSpec

LANDMARK_COLUMNS: tuple[str, ...] = tuple(f"lnd_{axis}{i}" for i in range(68) for axis in ("x", "y"))
#: A tight crop's typical 5 points as fractions of its width and height (a source's ``framing``).
FRAMING_COLUMNS: tuple[str, ...] = tuple(f"framing_{axis}{i}" for i in range(5) for axis in ("x", "y"))
#: A frame's image with context (Aff-Wild2's ``cropped``): its views with context use it whole.
CONTEXT_PATH = "context_path"

#: A training key: (table row, sampler group, stream position); a plain row index means "evaluate".
Key = int | tuple[int, int, int]


class FaceDataset(Dataset):
    """Faces and their partial labels from a sample table; see the module docstring."""

    def __init__(self, samples: pd.DataFrame, schema: LabelSchema, spec: InputSpec, *,
                 augmentation: Augmentation | None = None, seed: int = 0, sources: Sequence[str] | None = None,
                 features: np.ndarray | None = None):
        """``spec``: how the model wants its faces (size, margin, views, clip, normalisation; see
        :func:`affectlab.data.transforms.frame_face`); ``seed`` seeds augmentation;
        ``sources``: a name per row for the batch meta (default: the table's ``source`` column);
        ``features``: (N, C) per-row frame features given as ``image`` instead of the decoded face
        (a frozen CNN's features computed once per frame, for a temporal model's clips; a NaN row
        is a frame whose image could not be read, and loses its labels)."""
        self.schema, self.spec = schema, spec
        self.size, self.margin, self.views, self.clip_len = spec.size, spec.margin, spec.views, spec.clip_len
        self.augmentation, self.seed = augmentation, seed
        self.paths: list[str] = samples["path"].tolist()
        self.sources: list[str] = list(sources) if sources is not None else samples["source"].tolist()
        au = samples[list(schema.au_names)].to_numpy(dtype=np.float32)
        self.au_mask = ~np.isnan(au)
        self.au = np.nan_to_num(au)
        expr = samples["expr"].to_numpy(dtype=np.int64)
        self.expr_mask = expr >= 0
        self.expr = np.maximum(expr, 0)
        soft = samples.reindex(columns=soft_columns(schema)).to_numpy(dtype=np.float32)
        self.soft_mask = ~np.isnan(soft).any(axis=1)
        self.soft = np.nan_to_num(soft)
        va = samples[list(schema.va_names)].to_numpy(dtype=np.float32)
        self.va_mask = ~np.isnan(va)
        self.va = np.nan_to_num(va)
        if features is not None and len(features) != len(samples):
            raise ValueError(f"{len(features)} feature rows for {len(samples)} samples")
        self.features = features
        self.landmarks = _points(samples, LANDMARK_COLUMNS)
        self.framing = _points(samples, FRAMING_COLUMNS)
        self.context_paths: list = samples[CONTEXT_PATH].tolist() if CONTEXT_PATH in samples else [None] * len(samples)
        self.clip_rows, self.anchor = _clip_neighbours(samples, self.clip_len) if self.clip_len else (None, None)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Key) -> dict:
        row, group, position = (key, -1, -1) if isinstance(key, (int, np.integer)) else key
        rows = self.clip_rows[row] if self.clip_rows is not None else np.array([row])
        loaded = load_size(self.size, self.margin)
        params = None
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, group, position])
            params = sample_params(self.augmentation, self.size, loaded, rng)
        if self.features is not None:
            return self._feature_item(row, rows, group)
        images, ok, errors = [], [], []
        for r in rows:
            try:
                images.append(self._views(int(r), params))
                ok.append(True)
            except UnreadableImage as e:
                images.append(torch.zeros(len(self.views), 3, self.size, self.size))
                ok.append(False)
                errors.append(f"{self.paths[r]}: {e}")
        ok_arr = np.array(ok)
        item = self._labels(rows, ok_arr)
        image = torch.stack(images)  # (T, V, 3, H, W)
        if self.clip_rows is not None:
            image = image[:, 0]
            item["anchor"] = int(self.anchor[row])
        else:
            image = image[0] if len(self.views) > 1 else image[0, 0]
            item = {k: v[0] for k, v in item.items()}
        return {"image": image, **item, "index": row, "group": group, "source": self.sources[row],
                "path": self.paths[row], "corrupt": not ok_arr.all(), "error": "; ".join(errors)}

    def _feature_item(self, row: int, rows: np.ndarray, group: int) -> dict:
        """A sample whose ``image`` is its frames' features ((T, C) for a clip, else (C,))."""
        values = self.features[rows].astype(np.float32)
        ok = np.isfinite(values).all(axis=1)  # NaN features: the frame's image could not be read
        item = self._labels(rows, ok)
        image = torch.from_numpy(np.where(ok[:, None], values, 0.0))
        if self.clip_rows is not None:
            item["anchor"] = int(self.anchor[row])
        else:
            image, item = image[0], {k: v[0] for k, v in item.items()}
        return {"image": image, **item, "index": row, "group": group, "source": self.sources[row],
                "path": self.paths[row], "corrupt": not ok.all(), "error": ""}

    def _views(self, row: int, params) -> torch.Tensor:
        """Every view of one frame, (V, 3, H, W)."""
        image = decode_rgb(self.paths[row])
        lnd = _row_points(self.landmarks, row)
        if lnd is None and (framing := _row_points(self.framing, row)) is not None:
            lnd = framing_points(framing, image)
        out = []
        wide = self.context_paths[row]
        for context in self.views:
            if context > 0 and isinstance(wide, str):  # the frame with its context, as the dataset cut it
                face = frame_face(decode_rgb(wide), None, self.size, self.margin, context, context, self.spec.template)
            else:
                face = frame_face(image, lnd, self.size, self.margin, context, self.spec.image_context, self.spec.template)
            face = augment(face, params, self.size) if params is not None else center_crop(face, self.size)
            out.append(torch.from_numpy(normalise(face, self.spec.mean, self.spec.std)))
        return torch.stack(out)

    def _labels(self, rows: np.ndarray, ok: np.ndarray) -> dict[str, torch.Tensor]:
        """Per-frame labels (T, ...); an unreadable frame keeps its values but loses its masks."""
        keep = ok[:, None]
        return {
            "au": torch.from_numpy(self.au[rows]), "au_mask": torch.from_numpy(self.au_mask[rows] & keep),
            "expr": torch.from_numpy(self.expr[rows]), "expr_mask": torch.from_numpy(self.expr_mask[rows] & ok),
            "expr_soft": torch.from_numpy(self.soft[rows]),
            "expr_soft_mask": torch.from_numpy(self.soft_mask[rows] & ok),
            "va": torch.from_numpy(self.va[rows]), "va_mask": torch.from_numpy(self.va_mask[rows] & keep),
        }


def _points(samples: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray | None:
    """(N, K, 2) points when the table has all the x/y ``columns`` (NaN rows have none), else None."""
    if not all(c in samples.columns for c in columns):
        return None
    return samples[list(columns)].to_numpy(dtype=np.float32).reshape(len(samples), -1, 2)


def _row_points(points: np.ndarray | None, row: int) -> np.ndarray | None:
    return points[row] if points is not None and np.isfinite(points[row]).all() else None


def _clip_neighbours(samples: pd.DataFrame, clip_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, clip_len) rows of the clip centred on each row (same source and video, by frame number), and
    each row's position in its own clip.

    A still image (no video) is its own one-frame video, so its clip repeats it.
    """
    n = len(samples)
    video = samples["source"].astype(str) + "\0" + samples["video"].astype(str)
    video = video.where(samples["video"] != "", pd.Series(np.arange(n), index=samples.index).astype(str) + "\0still")
    order = np.lexsort((samples["frame"].to_numpy(), video.to_numpy()))
    sorted_video = video.to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, sorted_video[1:] != sorted_video[:-1]])
    ends = np.r_[starts[1:], n]
    lengths = np.repeat(ends - starts, ends - starts)
    first = np.repeat(starts, ends - starts)
    pos = np.arange(n) - first  # position of each sorted row within its video
    begin = np.clip(pos - clip_len // 2, 0, np.maximum(lengths - clip_len, 0))
    offsets = np.minimum(begin[:, None] + np.arange(clip_len)[None, :], lengths[:, None] - 1)
    clips = np.empty((n, clip_len), dtype=np.int64)
    clips[order] = order[first[:, None] + offsets]
    anchor = np.empty(n, dtype=np.int64)
    anchor[order] = pos - begin
    return clips, anchor
