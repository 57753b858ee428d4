import math
import os
import re

import numpy as np
import pandas as pd
import pytest

from affectlab.data.manifest import read_manifest
from affectlab.errors import DataError
from affectlab.labels import schema


@pytest.fixture
def folder(tmp_path, image):
    for name in ("a.jpg", "b.png", "sub/c.jpg", "d.jpg"):
        image(tmp_path / name)
    return tmp_path


def test_partial_columns_are_masked_not_zero_filled(folder, lines):
    path = lines(folder / "mine.csv", [
        "path,AU01,AU12,expression,valence,arousal,subject,split,video,frame,quality",
        "a.jpg,1,,happiness,0.5,,007,train,,,0.9",
        "b.png,,0,ANGER,,,008,train,clip,3,0.8",
        "sub/c.jpg,0,1,4,-1,1,009,val,clip,4,",
        f"{folder / 'd.jpg'},,,,,,010,val,,,0.5",
        "missing.jpg,1,1,1,0,0,011,train,,,0.1",
    ])
    table = read_manifest(path)
    df = table.samples
    assert table.skipped == {"image file missing": 1}
    assert df["path"].tolist() == [str(folder / n) for n in ("a.jpg", "b.png", "sub/c.jpg", "d.jpg")]
    assert df["AU1"].tolist()[:1] == [1.0] and math.isnan(df["AU1"].iloc[1]) and df["AU1"].iloc[2] == 0.0
    assert math.isnan(df["AU12"].iloc[0]) and df["AU12"].tolist()[1:3] == [0.0, 1.0]
    assert np.isnan(df["AU2"]).all()  # not in the file: missing for every row
    assert df["expr"].tolist() == [4, 1, 4, -1]
    assert df["valence"].iloc[0] == 0.5 and math.isnan(df["arousal"].iloc[0]) and df["arousal"].iloc[2] == 1.0
    assert df["video"].tolist() == ["", "clip", "clip", ""] and df["frame"].tolist() == [-1, 3, 4, -1]
    assert df["subject"].tolist() == ["007", "008", "009", "010"]  # identifiers stay text
    assert df["quality"].dtype == np.float64 and math.isnan(df["quality"].iloc[2])
    assert set(df["source"]) == {"manifest:mine"}


def test_split_selection(folder, lines):
    path = lines(folder / "m.csv", ["path,split,expression", "a.jpg,train,1", "b.png,test,2"])
    assert read_manifest(path, split="test").samples["expr"].tolist() == [2]
    with pytest.raises(DataError, match="no split 'val'; it has 'test', 'train'"):
        read_manifest(path, split="val")


def test_predictions_probabilities_and_argmax(tmp_path, lines):
    names = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    path = lines(tmp_path / "pred.csv", [
        f"path,AU1,AU2,valence,arousal,{names}",
        "nowhere/a.jpg,0.25,0.9,0.1,-0.2,0.1,0.1,0,0,0.7,0.1,0,0",
        "nowhere/b.jpg,0.75,0.1,0,0,0,0,0,0,0,0,0.2,0.8",
    ])
    table = read_manifest(path, predictions=True)
    df = table.samples
    assert len(df) == 2 and table.skipped == {}  # images are not checked
    assert df["AU1"].tolist() == [0.25, 0.75] and df["expr"].tolist() == [4, 7]
    with pytest.raises(DataError, match=re.escape("AU1: '0.25' is not 0 or 1")):
        read_manifest(path)


def test_predictions_argmax_follows_schema(tmp_path, lines):
    path = lines(tmp_path / "pred.csv", ["path,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise",
                                         "a.jpg,0.1,0.6,0,0,0.3,0,0", "b.jpg,,,,,,,"])
    df = read_manifest(path, predictions=True, schema=schema(n_expr=7)).samples
    assert df["expr"].tolist() == [1, -1]


@pytest.mark.parametrize("rows, message, line", [
    (["path,AU1", "a.jpg,1", "b.png,2"], "AU1: '2' is not 0 or 1", 3),
    (["path,AU1", "a.jpg,-1"], "AU1: '-1' is not 0 or 1", 2),
    (["path,AU1", "a.jpg,1,3"], "more fields than the header names", 2),
    (["path,AU1", "a.jpg,1", "b.png,1,3"], "expected 2 fields, found 3", 3),
    (["path,expression", "a.jpg,", "b.png,joy"], "expression: 'joy' is not an ABAW expression", 3),
    (["path,expression", "a.jpg,8"], "expression: '8' is not an ABAW expression", 2),
    (["path,valence", "a.jpg,1.5"], "valence: '1.5' is not in [-1, 1]", 2),
    (["path,valence", "a.jpg,nan"], "valence: 'nan' is not a number", 2),
    (["path,frame", "a.jpg,1", "b.png,0"], "frame: '0' is not a frame number", 3),
    (["path,video", "a.jpg,x", ",x"], "path: '' is not an image path", 3),
    (["path,AU1,AU01", "a.jpg,1,1"], "columns 'AU1' and 'AU01' both name AU1", 1),
    (["image,AU1", "a.jpg,1"], "missing column(s) path", 1),
    (["path,expr_soft_Neutral,expr_soft_Anger", "a.jpg,0.5,"], "fill every class or none", 2),
    (["path,expr_soft_Neutral,expr_soft_Anger", "a.jpg,0.5,0.2"], "summing to 1", 2),
    (["path,expr_soft_Joy", "a.jpg,1"], "unknown soft-label column(s) expr_soft_Joy", 1),
])
def test_bad_values_name_file_and_line(folder, lines, rows, message, line):
    path = lines(folder / "bad.csv", rows)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_manifest(path)
    assert (err.value.path, err.value.line) == (str(path), line)


def test_sample_table_round_trips_through_csv(folder, lines):
    path = lines(folder / "m.csv", [
        "path,AU1,expression,expr_soft_Neutral,expr_soft_Anger,valence,arousal,video,frame,subject",
        "a.jpg,1,neutral,0.75,0.25,0.5,,v,1,s1",
        "b.png,,,,,,,,,s2",
    ])
    first = read_manifest(path)
    written = folder / "table.csv"
    first.samples.to_csv(written, index=False)
    again = read_manifest(written)
    pd.testing.assert_frame_equal(first.samples, again.samples)
    assert first.samples["expr_soft_Neutral"].iloc[0] == 0.75 and first.samples["expr_soft_Other"].iloc[0] == 0.0
    assert np.isnan(first.samples["expr_soft_Neutral"].iloc[1])
    assert os.path.isabs(again.samples["path"].iloc[0])
