"""A recipe's sources as tables: k-fold assignment (streaming §4.3.1) and tight-crop framing."""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.labels import DEFAULT_SCHEMA
from affectlab.train import data as tdata
from affectlab.train.config import Folds, Source, Subset


def tables(videos: list[str], names: list[str]) -> tdata.SourceTables:
    samples = pd.DataFrame({"path": [f"{v}/{i}.jpg" for i, v in enumerate(videos)], "video": videos})
    return tdata.SourceTables(samples, np.array(names, dtype=object), {})


def test_both_people_of_a_two_person_video_share_a_fold():
    videos = [f"v{i}{side}" for i in range(10) for side in ("_left", "_right")]
    fold = tdata.fold_of_rows(tables(videos, ["affwild2"] * len(videos)), Folds(sources=["affwild2"], k=5))
    assert (fold[0::2] == fold[1::2]).all() and set(fold) == set(range(5))


def test_external_sources_train_every_fold_member():
    t = tables(["a", "b", "c", "d", "x", "y"], ["affwild2"] * 4 + ["dfew"] * 2)
    fold = tdata.fold_of_rows(t, Folds(sources=["affwild2"], k=2))
    assert (fold[4:] == -1).all() and set(fold[:4]) == {0, 1}


def test_framing_gives_tight_crops_their_five_points(shared_data):
    points = [[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]
    source = Source(str(shared_data / "sfew"), tasks=["expr"], framing=points)
    samples = tdata.read_one(source, DEFAULT_SCHEMA, {}).samples
    assert np.allclose(samples[["framing_x0", "framing_y0", "framing_x4", "framing_y4"]].iloc[0], [0.3, 0.4, 0.65, 0.8])


def test_a_second_crop_of_ckplus_keeps_the_held_out_subjects_out(shared_data):
    """ckplus_second_crop's subjects are ckplus's plus five: split alike, no held-out subject trains."""
    held_out = tdata.read_one(Source(str(shared_data / "ckplus"), subset=Subset(keep=[4], by="subject")),
                              DEFAULT_SCHEMA, {}).samples
    like = str(shared_data / "ckplus")
    train = tdata.read_one(Source(str(shared_data / "ckplus_second_crop"),
                                  subset=Subset(keep=[0, 1, 2, 3], by="subject", like=like)), DEFAULT_SCHEMA, {}).samples
    assert len(held_out) and len(train) and not set(train["subject"]) & set(held_out["subject"])
    unlike = tdata.read_one(Source(str(shared_data / "ckplus_second_crop"), subset=Subset(keep=[0, 1, 2, 3], by="subject")),
                            DEFAULT_SCHEMA, {}).samples
    assert set(unlike["subject"]) & set(held_out["subject"])  # folded on its own, it would leak


def test_va_range_keeps_valence_and_arousal_inside_it():
    """Streaming §3.4: AffectNet's VA "between -1.0 and -0.25"; its expression stays."""
    samples = pd.DataFrame({"valence": [-0.8, -0.5, 0.3, np.nan], "arousal": [-0.3, -0.1, -0.9, -0.5],
                            "expr": [1, 2, 3, 4]})
    out = tdata.within_va_range(samples, DEFAULT_SCHEMA, -1.0, -0.25)
    assert out["valence"].notna().tolist() == [True, False, False, False] and out["expr"].tolist() == [1, 2, 3, 4]


def test_context_views_read_the_cropped_folder_beside_cropped_aligned(abaw, tmp_path, caplog):
    """Ensemble with context: the face view is the aligned crop, the context view Aff-Wild2's ``cropped``
    image of the same frame; a frame missing there is cut by margin, said in one warning."""
    from PIL import Image

    from affectlab.data.dataset import FaceDataset
    from affectlab.models.meta import InputSpec

    abaw.annotate("EXPR_Set", "v1", ["1", "2"])
    for n in (1, 2):
        abaw.images.joinpath("v1").mkdir(exist_ok=True)
        Image.new("RGB", (16, 16), (0, 0, 255)).save(abaw.images / "v1" / f"{n:05d}.jpg")
    (tmp_path / "cropped" / "v1").mkdir(parents=True)
    Image.new("RGB", (24, 24), (255, 0, 0)).save(tmp_path / "cropped" / "v1" / "00001.jpg")
    source = Source(path=str(abaw.annotations), images=str(abaw.images), split="train",
                    context_images=str(tmp_path / "cropped"))
    with caplog.at_level("WARNING", logger="affectlab"):
        table = tdata.read_one(source, DEFAULT_SCHEMA, {}).samples
    assert [m for m in caplog.messages if "context" in m] == [
        f"{tmp_path / 'cropped'}: 1 of 2 frames have no image with context there; their context view is cut "
        "from the crop by margin"]
    spec = InputSpec(16, 0.0, (0.0, 0.2), 0.2, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    dataset = FaceDataset(table, DEFAULT_SCHEMA, spec)
    red_then_blue = [dataset[i]["image"][:, :, 4:12, 4:12].mean(dim=(2, 3)) for i in range(2)]
    face, context = red_then_blue[0]
    assert face[2] > 0.9 > 0.1 > face[0] and context[0] > 0.9 > 0.1 > context[2]  # blue face, red context
    assert (red_then_blue[1][1][2] > 0.9) and red_then_blue[1][1][0] < 0.1  # no cropped image: the blue crop
