"""FaceDataset: batch dicts with masked partial labels, unreadable images, clips and views."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from affectlab.data import build_table
from affectlab.data.dataset import LANDMARK_COLUMNS, FaceDataset
from affectlab.data.table import SOFT_COLUMNS
from affectlab.data.transforms import Augmentation
from affectlab.labels import DEFAULT_SCHEMA, schema
from affectlab.models.meta import InputSpec

AUS = DEFAULT_SCHEMA.au_names


def _img(path, value: int, size: int = 20) -> str:
    Image.new("RGB", (size, size), (value, value, value)).save(path)
    return str(path)


@pytest.fixture
def table(tmp_path) -> pd.DataFrame:
    rows = [
        {"path": _img(tmp_path / "a.png", 10), "source": "s", **{a: 1.0 for a in AUS}},
        {"path": _img(tmp_path / "b.png", 20), "source": "s", "expr": 4},
        {"path": _img(tmp_path / "c.png", 30), "source": "s", "valence": 0.5, "arousal": np.nan},
        {"path": _img(tmp_path / "d.png", 40), "source": "s", **dict(zip(SOFT_COLUMNS, [0.5, 0.5, 0, 0, 0, 0, 0, 0]))},
    ]
    return build_table(pd.DataFrame(rows)).samples


def test_items_carry_masked_partial_labels(table):
    ds = FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16))
    a, b, c, d = (ds[i] for i in range(4))
    assert a["image"].shape == (3, 16, 16) and a["au_mask"].all() and a["au"].sum() == 12
    assert not a["expr_mask"] and not a["va_mask"].any()
    assert b["expr_mask"] and b["expr"] == 4 and not b["au_mask"].any()
    assert c["va_mask"].tolist() == [True, False] and c["va"].tolist() == [0.5, 0.0], "masked values are 0, not NaN"
    assert d["expr_soft_mask"] and d["expr_soft"][:2].tolist() == [0.5, 0.5] and not d["expr_mask"]
    assert (a["index"], a["group"], a["source"], a["corrupt"], a["error"]) == (0, -1, "s", False, "")


def test_items_are_normalised_as_the_spec_says(table):
    """The model's normalisation comes with the input specification, not a constant of the dataset."""
    gray = FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0)))[1]["image"]
    value = 20 / 255  # b.png is a flat gray of 20
    expected = [(value - 0.5) / s for s in (0.25, 0.5, 1.0)]
    assert torch.allclose(gray.mean((1, 2)), torch.tensor(expected), atol=1e-3)


def test_unreadable_image_is_masked_and_named(table, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    table = table.copy()
    table.loc[0, "path"] = str(bad)
    item = FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16))[0]
    assert item["corrupt"] and str(bad) in item["error"]
    assert not item["au_mask"].any() and (item["image"] == 0).all()


def test_augmented_items_depend_only_on_their_key(table):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(table.loc[0, "path"])
    ds = FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16), augmentation=Augmentation(), seed=3)
    assert torch.equal(ds[(0, 1, 7)]["image"], ds[(0, 1, 7)]["image"])
    assert ds[(0, 1, 7)]["group"] == 1
    assert not torch.equal(FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16))[0]["image"], ds[(0, 1, 7)]["image"])


def test_loader_with_workers_collates_batches(table):
    ds = FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16))
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=2)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["au_mask"].shape == (4, 12)
    assert batch["expr"].dtype == torch.int64 and batch["path"] == table["path"].tolist()


def test_clips_take_neighbouring_frames_of_the_same_video(tmp_path):
    rows = [{"path": _img(tmp_path / f"{v}{f}.png", 10 * f), "source": "s", "video": v, "frame": f, "expr": f % 8}
            for v in ("x", "y") for f in (3, 1, 2, 4, 5)]
    samples = build_table(pd.DataFrame(rows)).samples
    ds = FaceDataset(samples, DEFAULT_SCHEMA, InputSpec(8, clip_len=3))
    item = ds[0]  # video x, frame 3: frames 2, 3, 4
    assert item["image"].shape == (3, 3, 8, 8) and item["expr"].tolist() == [2, 3, 4] and item["anchor"] == 1
    edge = ds[1]  # frame 1: the clip shifts to frames 1, 2, 3
    assert edge["expr"].tolist() == [1, 2, 3] and edge["anchor"] == 0
    assert all(ds.paths[r].startswith(str(tmp_path / "y")) for r in ds.clip_rows[5])


def test_two_views_stack_for_context_models(table):
    item = FaceDataset(table, DEFAULT_SCHEMA, InputSpec(16, views=(0.0, 0.25)))[0]
    assert item["image"].shape == (2, 3, 16, 16) and item["au_mask"].shape == (12,)


def test_rows_with_landmarks_are_aligned(tmp_path):
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[:, 50:] = 255  # right half white
    Image.fromarray(image).save(tmp_path / "f.png")
    lnd = np.tile([50.0, 50.0], (68, 1))
    # the face seen upside down: aligning rotates it by 180 degrees, so white moves to the left half
    lnd[36:42], lnd[42:48], lnd[30], lnd[48], lnd[54] = [70, 60], [30, 60], [50, 50], [65, 35], [35, 35]
    row = {"path": str(tmp_path / "f.png"), "source": "s", **dict(zip(LANDMARK_COLUMNS, lnd.reshape(-1)))}
    samples = build_table(pd.DataFrame([row]), schema("teacher-student")).samples
    img = FaceDataset(samples, schema("teacher-student"), InputSpec(32, margin=0.0))[0]["image"]
    assert img[0, :, :8].mean() > img[0, :, -8:].mean()
    unaligned = FaceDataset(samples.drop(columns=list(LANDMARK_COLUMNS)), schema("teacher-student"),
                            InputSpec(32, margin=0.0))[0]["image"]
    assert unaligned[0, :, :8].mean() < unaligned[0, :, -8:].mean()
