"""Which rows go into which batch: per-group quotas, class balancing, frame downsampling, folds.

Papers:
- SMM §4.2: a batch of 72 holds 24 images of each uni-task set; training frames downsampled by 8 (§4.1).
- teacher-student "Data Imbalance": ML-ROS (Charte et al. 2015) for the multi-label AUs; over- and
  undersampling so every expression class appears equally often in an epoch; VA discretised into 20
  bins and balanced "as we applied in the multilabel classification dataset", i.e. ML-ROS over the
  bins; Aff-Wild2 frames downsampled (by 5 for VA).
- multi-database §3.2: each batch holds N instances of each of the three sets (EXPR, VA, EXPR_VA).

Each group (a task's rows from some sources) is an endless *stream*: the concatenation of its
epochs, each epoch a fresh balanced resampling of the group's rows, shuffled, from a generator seeded
by (seed, group, epoch). Step t takes the next ``quota`` positions of every stream. So a batch is a
pure function of the step: resuming needs only the step, the data loader may prefetch freely, and
DistributedDataParallel ranks shard a step's positions without overlap and without gaps.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from affectlab.labels import N_VA_BINS

BALANCE_METHODS = ("none", "ml-ros", "classes", "va-bins")


def downsample_frames(videos: np.ndarray, frames: np.ndarray, every: int) -> np.ndarray:
    """Keep-mask for every ``every``-th frame of each video (frames 1, 1 + every, ...); stills are kept.

    SMM §4.1: "we downsampled the number of frames in the training set by 8 times"; teacher-student
    downsamples Aff-Wild2 by 5 for VA.
    """
    if every < 1:
        raise ValueError(f"downsample must be >= 1, got {every}")
    frames = np.asarray(frames)
    return (np.asarray(videos) == "") | (frames < 1) | ((frames - 1) % every == 0)


def assign_folds(keys: pd.Series, k: int, seed: int = 0, like: pd.Series | None = None) -> np.ndarray:
    """Fold 0..k-1 of each row, whole keys (videos, subjects) at a time, about equally many keys per fold.

    For k-fold training (streaming §4.3.1 splits by video) and held-out subjects (CK+ "split by
    subject, never by image"). Deterministic for a given set of keys and seed. ``like``: the keys of
    another table of the same people (CK+ in a second crop): a key it holds gets the fold it gets
    there, so that one subject's faces never sit on both sides of a split; the other keys are folded
    among themselves.
    """
    if k < 2:
        raise ValueError(f"folds must be >= 2, got {k}")
    keys = keys.astype(str)
    if like is not None:
        like = like.astype(str)
        shared = keys.isin(set(like)).to_numpy()
        fold = np.empty(len(keys), dtype=np.int64)
        fold[shared] = _fold_of(like, keys[shared], k, seed)
        fold[~shared] = _fold_of(keys[~shared], keys[~shared], k, seed)
        return fold
    return _fold_of(keys, keys, k, seed)


def _fold_of(universe: pd.Series, keys: pd.Series, k: int, seed: int) -> np.ndarray:
    """Fold of each of ``keys`` when the unique keys of ``universe`` are dealt into k folds."""
    unique = np.array(sorted(universe.unique()))
    fold_of_key = np.empty(len(unique), dtype=np.int64)
    fold_of_key[np.random.default_rng(seed).permutation(len(unique))] = np.arange(len(unique)) % k
    return fold_of_key[np.searchsorted(unique, keys.to_numpy())]


def ml_ros(labels: np.ndarray, percentage: float, rng: np.random.Generator) -> np.ndarray:
    """ML-ROS, multi-label random oversampling (Charte et al. 2015, Algorithm 1).

    ``labels`` (N, L): 1 positive, 0 negative, NaN missing. IRLbl(l) = max_l' count(l') / count(l) is
    the imbalance ratio of label l and MeanIR its mean over labels with positives. Samples of each
    minority label (IRLbl > MeanIR) are cloned at random, one bag after the other, until
    ``percentage`` % of N samples have been added; a label leaves the minority set once its IRLbl
    drops to MeanIR (cloning a sample adds to all of its labels). Returns row indices: 0..N-1 once
    each, then the clones.
    """
    positive = np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=0.0) >= 0.5
    n = len(positive)
    counts = positive.sum(0).astype(np.float64)
    present = counts > 0
    if n == 0 or present.sum() < 2:
        return np.arange(n)
    irlbl = np.where(present, counts[present].max() / np.maximum(counts, 1), 0.0)
    mean_ir = irlbl[present].mean()
    bags = {label: np.flatnonzero(positive[:, label]) for label in np.flatnonzero(irlbl > mean_ir)}
    clones: list[int] = []
    to_clone = int(n * percentage / 100)
    while to_clone > 0 and bags:
        for label in list(bags):
            row = int(bags[label][rng.integers(len(bags[label]))])
            clones.append(row)
            counts += positive[row]
            to_clone -= 1
            if counts[present].max() / counts[label] <= mean_ir:
                del bags[label]
            if to_clone == 0:
                break
    return np.concatenate([np.arange(n), np.asarray(clones, dtype=np.int64)])


def class_balanced(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Over- and undersampling so every class present appears equally often in an epoch.

    Teacher-student "Data Imbalance": "we oversample the minority classes and undersample the
    majority classes to ensure every class has the same probability of appearing in one epoch". The
    epoch keeps the pool's size: ceil(N / K) rows of each of the K classes, drawn without replacement
    from larger classes and with every row plus random repeats from smaller ones.
    """
    classes = np.asarray(classes)
    present = np.unique(classes)
    if len(present) == 0:
        return np.arange(0)
    per_class = math.ceil(len(classes) / len(present))
    out = []
    for c in present:
        rows = np.flatnonzero(classes == c)
        if len(rows) >= per_class:
            out.append(rng.choice(rows, per_class, replace=False))
        else:
            extra = rng.choice(rows, per_class - len(rows), replace=True)
            out.append(np.concatenate([rows, extra]))
    return np.concatenate(out)


def va_bin_labels(va: np.ndarray, n_bins: int = N_VA_BINS) -> np.ndarray:
    """(N, 2) VA -> (N, 2·n_bins) one-hot bin indicators (valence bins, then arousal), NaN where missing.

    The equal-width bins of teacher-student eq. 3 (:func:`affectlab.losses.va_to_bins`).
    """
    va = np.asarray(va, dtype=np.float64)
    out = np.zeros((len(va), 2 * n_bins))
    for d in range(2):
        idx = np.clip(np.floor((va[:, d] + 1) / 2 * n_bins), 0, n_bins - 1)
        missing = np.isnan(va[:, d])
        rows = np.flatnonzero(~missing)
        out[rows, d * n_bins + idx[rows].astype(np.int64)] = 1
        out[missing, d * n_bins : (d + 1) * n_bins] = np.nan
    return out


@dataclass
class GroupPool:
    """One quota of every batch: the rows it draws from and how each epoch of them is balanced.

    ``rows``: dataset row indices. ``balance``: ``none``; ``ml-ros`` over ``labels`` (the rows' AUs,
    N×n_au); ``classes`` over ``labels`` (expression ids, N); ``va-bins``: ML-ROS over the 20-bin
    indicators of ``labels`` (VA, N×2).
    """

    name: str
    rows: np.ndarray
    quota: int
    balance: str = "none"
    labels: np.ndarray | None = None
    ml_ros_percentage: float = 25.0
    _epochs: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.balance not in BALANCE_METHODS:
            raise ValueError(f"unknown balance {self.balance!r}; expected one of {', '.join(BALANCE_METHODS)}")
        if self.balance != "none" and (self.labels is None or len(self.labels) != len(self.rows)):
            raise ValueError(f"balance {self.balance!r} needs one label entry per row")
        if self.balance == "va-bins":
            self.labels = va_bin_labels(self.labels)
        if len(self.rows) == 0:
            raise ValueError(f"sampler group {self.name!r} has no rows")
        if self.quota < 1:
            raise ValueError(f"sampler group {self.name!r} needs a quota >= 1, got {self.quota}")
        self.epoch_length = len(self._resample(np.random.default_rng(0)))

    def _resample(self, rng: np.random.Generator) -> np.ndarray:
        """One epoch's positions into ``rows``, before shuffling."""
        if self.balance in ("ml-ros", "va-bins"):
            return ml_ros(self.labels, self.ml_ros_percentage, rng)
        if self.balance == "classes":
            return class_balanced(self.labels, rng)
        return np.arange(len(self.rows))

    def epoch(self, seed: int, group: int, epoch: int) -> np.ndarray:
        """Dataset rows of one epoch, balanced and shuffled; the last two epochs are cached."""
        if epoch not in self._epochs:
            rng = np.random.default_rng([seed, group, epoch])
            order = self._resample(rng)
            # ML-ROS may stop early when every minority label is balanced: keep epochs one length
            order = np.resize(order[rng.permutation(len(order))], self.epoch_length)
            self._epochs[epoch] = self.rows[order]
            while len(self._epochs) > 2:  # a batch spans at most two epochs
                del self._epochs[next(iter(self._epochs))]
        return self._epochs[epoch]

    def take(self, seed: int, group: int, start: int, stop: int) -> np.ndarray:
        """Stream positions [start, stop) as dataset rows."""
        positions = np.arange(start, stop)
        epochs, offsets = np.divmod(positions, self.epoch_length)
        return np.concatenate([self.epoch(seed, group, int(e))[offsets[epochs == e]] for e in np.unique(epochs)])


class MultiSourceBatchSampler:
    """Endless batches of ``(row, group, position)`` keys: every group's quota at every step.

    With ``world_size`` > 1 each quota is split evenly over the ranks, so the global batch (and the
    learning rate that goes with it) does not depend on the number of GPUs: rank r takes its share of
    the same positions. ``position`` (a group's stream position) seeds the sample's augmentation.
    """

    def __init__(self, pools: list[GroupPool], seed: int, *, rank: int = 0, world_size: int = 1,
                 start_step: int = 0):
        for pool in pools:
            if pool.quota % world_size:
                raise ValueError(f"sampler group {pool.name!r}: quota {pool.quota} does not split evenly over "
                                 f"{world_size} processes")
        self.pools, self.seed, self.rank, self.world_size, self.start_step = pools, seed, rank, world_size, start_step

    @property
    def batch_size(self) -> int:
        """Samples per step on this rank."""
        return sum(p.quota for p in self.pools) // self.world_size

    def steps_per_epoch(self) -> int:
        """Steps until the group with the longest epoch has been through it once."""
        return max(math.ceil(p.epoch_length / p.quota) for p in self.pools)

    def batch(self, step: int) -> list[tuple[int, int, int]]:
        """This rank's keys at ``step``."""
        keys: list[tuple[int, int, int]] = []
        for g, pool in enumerate(self.pools):
            share = pool.quota // self.world_size
            start = step * pool.quota + self.rank * share
            rows = pool.take(self.seed, g, start, start + share)
            keys += [(int(r), g, start + i) for i, r in enumerate(rows)]
        return keys

    def state_dict(self) -> dict:
        """What a resumed run must agree on: the seed and each group's epoch length."""
        return {"seed": self.seed, "epoch_lengths": {p.name: p.epoch_length for p in self.pools}}

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
