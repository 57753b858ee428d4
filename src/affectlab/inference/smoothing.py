"""Temporal smoothing of a static model's features, SMM §5.2, eq. 9:

    Λ_t = (ε_t + μ Λ_{t-1}) / (1 + μ)

ε_t is a frame's feature vector — the sign-vehicle features S^(h)(x_t) for AUs, the message M(x_t)
for EXPR and VA — and Λ_t its smoothed value; μ ≥ 0 sets the smoothness (μ = 0: no smoothing). The
smoothed features then go through the model's last FC layers, as in the paper ("After temporal
smoothing, these features were fed into the last FC layer"). The paper leaves Λ_0 open; here
Λ_0 = ε_1, so the first frame passes unchanged and a video does not fade in from zero.

Each model says which feature feeds each task and which layers turn it into the output
(``AffectModel.readout_features`` and ``readout``). μ is chosen per task (``affectlab
calibrate smoothing``, :mod:`affectlab.train.smooth_search`) and stored in the checkpoint under
``extra["smoothing"]`` (e.g. ``{"au": 7, "expr": 9, "va": 9}``, the values SMM reports), where
:func:`checkpoint_mu` finds it for ``analyze --smooth``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy.signal import lfilter
from torch import Tensor

from affectlab.errors import AffectlabError
from affectlab.models import AffectModel

SMOOTHED_TASKS: tuple[str, ...] = ("au", "expr", "va")
#: SMM §5.2 grid: μ ∈ {0, 1, ..., 10}.
MU_GRID: tuple[int, ...] = tuple(range(11))

Readout = Callable[[Tensor], Tensor]


def smoothing_inputs(model: AffectModel, task: str) -> list[tuple[str, Readout]]:
    """(feature name in the model's ``Prediction.features``, readout) for each part of ``task``: the
    model's own :meth:`~affectlab.models.AffectModel.readout_parts`."""
    parts = model.readout_parts(task)
    if not parts:
        raise AffectlabError(f"temporal smoothing (SMM eq. 9) is not defined for model {model.model_name!r}: "
                             f"none of its per-frame features is read out into {task!r}")
    return parts


@torch.no_grad()
def readout(model: AffectModel, task: str, features: Mapping[str, Tensor | np.ndarray]) -> Tensor:
    """A task's output from (smoothed) features: AU logits, EXPR logits or VA in [-1, 1]."""
    param = next(model.parameters())
    outs = [fn(torch.as_tensor(features[feature]).to(device=param.device, dtype=param.dtype)).float().cpu()
            for feature, fn in smoothing_inputs(model, task)]
    return torch.stack(outs).mean(0)


def smooth(features: np.ndarray, mu: float) -> np.ndarray:
    """Eq. 9 along axis 0 (time) of one video's features (T, ...), with Λ_0 = ε_1."""
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    x = np.asarray(features, dtype=np.float64)
    if mu == 0 or len(x) == 0:
        return x.copy()
    b, a = [1 / (1 + mu)], [1, -mu / (1 + mu)]
    zi = (mu / (1 + mu)) * x[:1]  # the filter state that makes Λ_0 = ε_1
    return lfilter(b, a, x, axis=0, zi=zi)[0]


def smooth_videos(features: np.ndarray, videos: np.ndarray, frames: np.ndarray, mu: float) -> np.ndarray:
    """Eq. 9 within each video, frames in order; rows keep their places. Stills (video "") stay as they are."""
    out = np.asarray(features, dtype=np.float64).copy()
    videos, frames = np.asarray(videos), np.asarray(frames)
    for video in np.unique(videos[videos != ""]):
        rows = np.flatnonzero(videos == video)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        out[rows] = smooth(out[rows], mu)
    return out


#: The μ SMM §5.2 found best on Aff-Wild2's validation sets (AU 7, EXPR and VA 9).
SMM_MU: dict[str, float] = {"au": 7.0, "expr": 9.0, "va": 9.0}


def parse_mu(spec: str) -> dict[str, float]:
    """``"au=7,expr=9,va=9"`` -> ``{"au": 7.0, ...}``; a one-line AffectlabError for anything else."""
    mu = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        task, _, value = part.partition("=")
        try:
            mu[task.strip()] = float(value)
        except ValueError:
            raise AffectlabError(f"smoothing {part!r}: expected TASK=MU, e.g. au=7,expr=9,va=9") from None
        if task.strip() not in SMOOTHED_TASKS or mu[task.strip()] < 0:
            raise AffectlabError(f"smoothing {part!r}: tasks are {', '.join(SMOOTHED_TASKS)} and mu >= 0")
    return mu


def checkpoint_mu(model: AffectModel) -> dict[str, float]:
    """The μ per task stored in a loaded checkpoint by ``affectlab calibrate smoothing --write`` ({} if none)."""
    meta = model.checkpoint_meta
    return {k: float(v) for k, v in (meta.extra.get("smoothing", {}) if meta else {}).items()}


class TemporalSmoother:
    """Eq. 9 online, for any number of face tracks: :meth:`step` smooths a batch of rows, each with the
    Λ of its own track, and reads out each task's output.

    ``mu`` per task (e.g. :func:`checkpoint_mu`); a task without one is not smoothed. Rows of one call
    are taken in order, so a track may appear in several rows (its frames in time order). A new
    track starts from its first frame (Λ_0 = ε_1); :meth:`reset` forgets every track (a new video).
    """

    def __init__(self, model: AffectModel, mu: Mapping[str, float]):
        self.model, self.mu = model, dict(mu)
        self.state: dict[tuple[str, str, int], np.ndarray] = {}
        self.features = sorted({f for task in SMOOTHED_TASKS for f, _ in smoothing_inputs(model, task)})

    def reset(self) -> None:
        self.state.clear()

    def step(self, features: Mapping[str, Tensor | np.ndarray], tracks: Sequence[int] | None = None) -> dict[str, Tensor]:
        """Outputs (au logits, expr logits, va) of a batch of rows; ``tracks`` names each row's track
        (default: all rows are one track's consecutive frames)."""
        n = len(next(iter(features.values())))
        tracks = [0] * n if tracks is None else list(tracks)
        out = {}
        for task in SMOOTHED_TASKS:
            mu = self.mu.get(task, 0.0)
            smoothed = {}
            for feature, _ in smoothing_inputs(self.model, task):
                eps = np.asarray(torch.as_tensor(features[feature]).detach().float().cpu(), dtype=np.float64)
                lam = np.empty_like(eps)
                for i, track in enumerate(tracks):
                    prev = self.state.get((task, feature, track), eps[i])
                    lam[i] = self.state[(task, feature, track)] = (eps[i] + mu * prev) / (1 + mu)
                smoothed[feature] = lam.astype(np.float32)
            out[task] = readout(self.model, task, smoothed)
        return out
