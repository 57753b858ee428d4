"""Sampling: ML-ROS, class and VA-bin balancing, frame downsampling, folds, and the per-step batch sampler."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affectlab.data.sampling import (GroupPool, MultiSourceBatchSampler, assign_folds, class_balanced,
                                     downsample_frames, ml_ros, va_bin_labels)


def mean_ir(labels: np.ndarray) -> float:
    counts = (np.nan_to_num(labels) >= 0.5).sum(0)
    counts = counts[counts > 0]
    return float((counts.max() / counts).mean())


def test_ml_ros_clones_minority_labels_and_lowers_mean_ir():
    rng = np.random.default_rng(0)
    labels = np.zeros((200, 3))
    labels[:150, 0] = 1   # majority
    labels[:40, 1] = 1    # minority
    labels[190:, 2] = 1   # rarest
    out = ml_ros(labels, 25, rng)
    # IRLbl = (1, 3.75, 15), MeanIR 6.58: only the rarest label is a minority, cloned until
    # 150 / count <= 6.58, i.e. 13 clones, then the bag leaves and cloning stops short of 25 %
    assert (out[:200] == np.arange(200)).all() and len(out) == 213
    assert set(out[200:]) <= set(range(190, 200)), "only samples of minority labels are cloned"
    assert mean_ir(labels[out]) < mean_ir(labels)


def test_ml_ros_ignores_missing_labels_and_balanced_data():
    labels = np.array([[1, 0], [0, 1], [np.nan, 1], [1, np.nan]], dtype=float)
    assert (ml_ros(labels, 100, np.random.default_rng(0)) == np.arange(4)).all()  # IRLbl = 1 for both


def test_ml_ros_stops_cloning_a_label_once_balanced():
    labels = np.zeros((100, 2))
    labels[:90, 0] = 1
    labels[90:, 1] = 1  # IRLbl = 9, MeanIR = 5: cloning stops when count(label 1) reaches 18
    out = ml_ros(labels, 100, np.random.default_rng(1))
    assert len(out) == 100 + 8


def test_class_balanced_gives_every_class_the_same_count():
    classes = np.array([0] * 50 + [1] * 5 + [4] * 15)
    out = class_balanced(classes, np.random.default_rng(0))
    assert np.bincount(classes[out]).tolist() == [24, 24, 0, 0, 24]
    assert set(np.flatnonzero(classes == 1)) <= set(out), "small classes keep every row"
    assert len(set(out[classes[out] == 0])) == 24, "large classes are undersampled without repeats"


def test_va_bin_labels_one_hot_per_dimension():
    bins = va_bin_labels(np.array([[-1.0, 0.99], [0.0, np.nan]]))
    assert bins.shape == (2, 40)
    assert bins[0, 0] == 1 and bins[0, 39] == 1 and np.nansum(bins[0]) == 2
    assert bins[1, 10] == 1 and np.isnan(bins[1, 20:]).all()


def test_downsample_keeps_every_kth_frame_per_video_and_all_stills():
    videos = np.array(["a"] * 10 + ["", ""])
    frames = np.array([*range(1, 11), -1, -1])
    keep = downsample_frames(videos, frames, 4)
    assert frames[keep & (videos == "a")].tolist() == [1, 5, 9] and keep[10:].all()


def test_folds_keep_keys_together_and_are_balanced():
    keys = pd.Series([f"s{i % 10}" for i in range(100)])
    folds = assign_folds(keys, 5, seed=3)
    per_key = pd.Series(folds).groupby(keys).nunique()
    assert (per_key == 1).all()
    assert sorted(pd.Series(folds).groupby(keys).first().value_counts().tolist()) == [2, 2, 2, 2, 2]
    assert (assign_folds(keys, 5, seed=3) == folds).all()


def test_folds_like_another_table_give_its_keys_their_folds_there():
    """Two crops of one subject set: a subject held out in one is held out in the other."""
    reference = pd.Series([f"s{i}" for i in range(20)])
    keys = pd.Series(["s3", "s3", "s17", "new1", "new2", "s0"])
    folds = assign_folds(keys, 5, like=reference)
    there = dict(zip(reference, assign_folds(reference, 5)))
    assert folds[[0, 1, 2, 5]].tolist() == [there["s3"], there["s3"], there["s17"], there["s0"]]
    assert folds[3:5].tolist() == assign_folds(pd.Series(["new1", "new2"]), 5).tolist()


def pools() -> list[GroupPool]:
    expr = np.array([0] * 30 + [1] * 6 + [2] * 4)
    return [GroupPool("a", np.arange(0, 40), 4, "classes", expr),
            GroupPool("b", np.arange(100, 113), 2)]


def test_sampler_fills_each_groups_quota_from_its_rows():
    sampler = MultiSourceBatchSampler(pools(), seed=0)
    for step in range(30):
        keys = sampler.batch(step)
        groups = [g for _, g, _ in keys]
        assert groups == [0] * 4 + [1] * 2
        assert all(0 <= r < 40 for r, g, _ in keys if g == 0) and all(100 <= r < 113 for r, g, _ in keys if g == 1)
    assert sampler.steps_per_epoch() == 11  # group a: 3 classes x ceil(40 / 3) = 42 rows, 4 a step


def test_an_epoch_of_an_unbalanced_group_is_a_permutation_of_its_rows():
    sampler = MultiSourceBatchSampler(pools(), seed=0)
    stream = [r for step in range(13) for r, g, _ in sampler.batch(step) if g == 1]  # 26 = two epochs of 13
    assert sorted(stream[:13]) == list(range(100, 113)) and sorted(stream[13:]) == list(range(100, 113))
    assert stream[:13] != stream[13:], "each epoch is shuffled anew"


def test_batches_are_a_pure_function_of_seed_and_step():
    a, b = MultiSourceBatchSampler(pools(), seed=5), MultiSourceBatchSampler(pools(), seed=5)
    assert [a.batch(s) for s in range(25)] == [b.batch(s) for s in reversed(range(25))][::-1]
    resumed = MultiSourceBatchSampler(pools(), seed=5, start_step=7)
    assert next(iter(resumed)) == a.batch(7)
    assert MultiSourceBatchSampler(pools(), seed=6).batch(0) != a.batch(0)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_shard_every_step_without_overlap_or_gaps(world_size):
    """DDP: the ranks' keys at a step are the single-process batch, split without overlap."""
    p = [GroupPool("a", np.arange(50), 4), GroupPool("b", np.arange(50, 57), 8)]
    single = MultiSourceBatchSampler(p, seed=1)
    ranks = [MultiSourceBatchSampler(p, seed=1, rank=r, world_size=world_size) for r in range(world_size)]
    for step in range(20):
        shards = [rank.batch(step) for rank in ranks]
        positions = [(g, pos) for shard in shards for _, g, pos in shard]
        assert len(positions) == len(set(positions)), "no stream position is drawn twice"
        assert sorted(k for shard in shards for k in shard) == sorted(single.batch(step))
        assert {len(s) for s in shards} == {12 // world_size}


def test_quota_must_split_over_ranks():
    with pytest.raises(ValueError, match="split evenly"):
        MultiSourceBatchSampler([GroupPool("a", np.arange(10), 3)], seed=0, world_size=2)


def test_balanced_pool_epochs_keep_one_length():
    au = np.zeros((60, 3))
    au[:50, 0] = 1
    au[50:, 1] = 1
    au[55:, 2] = 1
    pool = GroupPool("au", np.arange(60), 5, "ml-ros", au, ml_ros_percentage=50)
    lengths = {len(pool.epoch(0, 0, e)) for e in range(5)}
    assert lengths == {pool.epoch_length} and pool.epoch_length > 60
