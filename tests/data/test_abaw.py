import math
import re
import os

import numpy as np
import pytest

from affectlab.data.abaw import abaw_release, read_abaw, read_abaw_mtl
from affectlab.errors import DataError
from affectlab.labels import AU_ABAW, schema

NONE_AU = ",".join(["-1"] * 12)
AU_1_12 = "1,0,0,0,0,0,1,0,0,0,0,0"  # AU1 and AU12 on
AU_ZERO = ",".join(["0"] * 12)


def test_abaw3_layout_merges_tasks_masks_missing_and_skips_missing_images(abaw):
    abaw.annotate("AU_Detection_Challenge", "v1", [AU_1_12, NONE_AU, AU_ZERO, AU_ZERO])
    abaw.annotate("EXPR_Recognition_Challenge", "v1", ["4", "-1", "0", "2"])
    abaw.annotate("VA_Estimation_Challenge", "v1", ["0.5,-0.25", "-5,-5", "-5,-5", "0.1,0.2"])
    abaw.frames("v1", [1, 2, 3])  # frame 4 has labels but no image

    table = read_abaw(abaw.annotations, abaw.images)
    df = table.samples

    assert df["frame"].tolist() == [1, 3]  # frame 2: no labels at all; frame 4: no image
    assert table.skipped == {"frame has no labels (all -1 / -5)": 1, "image file missing": 1}
    first = df.iloc[0]
    assert (first["AU1"], first["AU2"], first["AU12"]) == (1.0, 0.0, 1.0)
    assert first["expr"] == 4 and (first["valence"], first["arousal"]) == (0.5, -0.25)
    third = df.iloc[1]
    assert third["expr"] == 0 and math.isnan(third["valence"]) and third["AU1"] == 0.0
    assert first["path"] == os.path.join(os.path.abspath(abaw.images), "v1", "00001.jpg")
    assert set(df["split"]) == {"train"} and set(df["source"]) == {"abaw"} and set(df["video"]) == {"v1"}


def test_abaw2_folder_names_and_seven_class_header(abaw):
    abaw.annotate("AU_Set", "a", [AU_1_12])
    abaw.annotate("EXPR_Set", "b", ["6", "3"], header="Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise",
                  split="Validation_Set")
    abaw.annotate("VA_Set", "c", ["1,-1"])
    df = read_abaw(abaw.annotations).samples
    assert sorted(zip(df["video"], df["frame"], df["split"])) == [
        ("a", 1, "train"), ("b", 1, "validation"), ("b", 2, "validation"), ("c", 1, "train")]
    assert df.loc[df["video"] == "b", "expr"].tolist() == [6, 3]
    assert df.loc[df["video"] == "a", "expr"].tolist() == [-1]
    assert df.loc[df["video"] == "c", ["valence", "arousal"]].values.tolist() == [[1.0, -1.0]]


AU_2020 = "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"


def test_abaw2020_eight_au_release_is_read(abaw):
    """ABAW 2020 annotated 8 AUs (with AU20) and 7 expressions; AUs outside the schema are dropped,
    schema AUs the release lacks are missing, never 0."""
    abaw.annotate("AU_Set", "a", ["1,0,0,0,1,0,1,1", "-1,-1,-1,-1,-1,-1,-1,-1"], header=AU_2020)
    abaw.annotate("EXPR_Set", "a", ["3", "5"], header="Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise")
    df = read_abaw(abaw.annotations, schema=schema("teacher-student")).samples
    assert df[["AU1", "AU12", "AU20", "AU25"]].iloc[0].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert df["expr"].tolist() == [3, 5] and math.isnan(df["AU20"].iloc[1])
    abaw12 = read_abaw(abaw.annotations).samples
    assert "AU20" not in abaw12 and math.isnan(abaw12["AU7"].iloc[0]) and abaw12["AU12"].iloc[0] == 1.0


@pytest.mark.parametrize("au_header, expr_header, release", [
    (AU_2020, "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise", "ABAW 2020: 8 AUs incl. AU20, 7 expressions"),
    (",".join(AU_ABAW), "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise", "ABAW2 (2021): 12 AUs, 7 expressions"),
    (",".join(AU_ABAW), "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
     "ABAW3 (2022) or later: 12 AUs, 8 expressions"),
])
def test_a_tree_says_which_release_it_is(abaw, au_header, expr_header, release):
    abaw.annotate("AU_Set", "a", [",".join(["0"] * len(au_header.split(",")))], header=au_header)
    abaw.annotate("EXPR_Set", "a", ["1"], header=expr_header)
    abaw.annotate("VA_Set", "a", ["0.1,0.2"])
    assert abaw_release(abaw.annotations) == release + ", valence/arousal"


def test_seven_class_header_rejects_other(abaw):
    path = abaw.annotate("EXPR_Set", "b", ["7"], header="Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise")
    with pytest.raises(DataError, match="0..6") as err:
        read_abaw(abaw.annotations)
    assert (err.value.path, err.value.line) == (str(path), 2)


@pytest.mark.parametrize("folder", ["EXPR_Classification_Challenge", "EXPR_Recognition_Challenge"])
def test_both_abaw3_expression_spellings(abaw, folder):
    abaw.annotate(folder, "v", ["7", "1"])
    assert read_abaw(abaw.annotations).samples["expr"].tolist() == [7, 1]


def test_without_images_paths_are_relative_and_unchecked(abaw):
    abaw.annotate("EXPR_Recognition_Challenge", "v", ["1", "2"])
    table = read_abaw(abaw.annotations)
    assert table.samples["path"].tolist() == ["v/00001.jpg", "v/00002.jpg"]
    assert table.skipped == {}


def test_left_right_pair_are_two_videos(abaw):
    abaw.annotate("AU_Detection_Challenge", "10-60-1280x720_left", [AU_1_12])
    abaw.annotate("AU_Detection_Challenge", "10-60-1280x720_right", [AU_ZERO])
    abaw.frames("10-60-1280x720_left", [1])
    abaw.frames("10-60-1280x720_right", [1])
    df = read_abaw(abaw.annotations, abaw.images).samples.set_index("video")
    assert df.loc["10-60-1280x720_left", "AU1"] == 1.0 and df.loc["10-60-1280x720_right", "AU1"] == 0.0
    assert df.loc["10-60-1280x720_left", "path"].endswith(os.path.join("10-60-1280x720_left", "00001.jpg"))
    assert df.loc["10-60-1280x720_right", "path"].endswith(os.path.join("10-60-1280x720_right", "00001.jpg"))


def test_split_selection_and_cross_split_frames_stay_apart(abaw):
    abaw.annotate("AU_Detection_Challenge", "v", [AU_1_12], split="Train_Set")
    abaw.annotate("VA_Estimation_Challenge", "v", ["0.3,0.3"], split="Validation_Set")
    both = read_abaw(abaw.annotations).samples
    assert len(both) == 2  # train AU labels never share a row with validation VA labels
    val = read_abaw(abaw.annotations, split="validation").samples
    assert val["split"].tolist() == ["validation"] and val["valence"].tolist() == [0.3]
    assert np.isnan(val[list(AU_ABAW)].to_numpy()).all()
    with pytest.raises(DataError, match="unknown split 'test'"):
        read_abaw(abaw.annotations, split="test")


def test_schema_restricts_aus_and_expressions(abaw):
    abaw.annotate("AU_Detection_Challenge", "v", [AU_1_12])
    abaw.annotate("EXPR_Recognition_Challenge", "v", ["7"])
    table = read_abaw(abaw.annotations, schema=schema("teacher-student", n_expr=7))
    df = table.samples
    assert "AU7" not in df and math.isnan(df["AU20"].iloc[0]) and df["AU12"].iloc[0] == 1.0
    assert df["expr"].tolist() == [-1]
    assert table.skipped == {"expression not in schema (label dropped)": 1}


@pytest.mark.parametrize("task, header, rows, message, line", [
    ("AU_Detection_Challenge", "AU1,AU2", [AU_ZERO],
     "wrong header 'AU1,AU2'; expected AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26", 1),
    ("VA_Estimation_Challenge", "valence;arousal", ["0,0"], "expected valence,arousal", 1),
    ("AU_Detection_Challenge", None, [AU_ZERO, "1,0"], "expected 12 comma-separated values, found 2", 3),
    ("AU_Detection_Challenge", None, [AU_ZERO, AU_ZERO, "2" + AU_ZERO[1:]], "AU1: 2 is not 0, 1 or -1", 4),
    ("EXPR_Recognition_Challenge", None, ["8"], "expression: 8 is not an expression id in 0..7", 2),
    ("EXPR_Recognition_Challenge", None, ["1", "happy"], "'happy' is not a number", 3),
    ("VA_Estimation_Challenge", None, ["0.5,1.5"], "arousal: 1.5 is not in [-1, 1] or -5", 2),
    ("VA_Estimation_Challenge", None, ["-5,-5", "-1,-1", "-2,0"], "valence: -2 is not in [-1, 1]", 4),
])
def test_bad_input_names_file_and_line(abaw, task, header, rows, message, line):
    path = abaw.annotate(task, "vid", rows, header=header)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_abaw(abaw.annotations)
    assert err.value.path == str(path) and err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_layout_errors(abaw, tmp_path):
    with pytest.raises(DataError, match="AU_Detection_Challenge.*EXPR_Recognition_Challenge"):
        read_abaw(tmp_path)  # no task folder
    abaw.annotate("AU_Set", "v", [AU_ZERO])
    abaw.annotate("AU_Detection_Challenge", "v", [AU_ZERO])
    with pytest.raises(DataError, match="both AU_Set and AU_Detection_Challenge"):
        read_abaw(abaw.annotations)
    (abaw.annotations / "AU_Set").rename(tmp_path / "old")
    with pytest.raises(DataError, match="no such image folder"):
        read_abaw(abaw.annotations, tmp_path / "nowhere")
    (abaw.annotations / "VA_Set").mkdir()
    with pytest.raises(DataError, match="Train_Set and/or Validation_Set"):
        read_abaw(abaw.annotations)


def mtl_row(image: str, v: str, a: str, expr: str, aus: str) -> str:
    return f"{image},{v},{a},{expr},{aus}"


def test_mtl_file(abaw, lines, tmp_path):
    path = lines(tmp_path / "training_set_annotations.txt", [
        "image,valence,arousal,expression,aus",
        mtl_row("v1/00001.jpg", "0.2", "-0.4", "3", AU_1_12),
        mtl_row("v1/00002.jpg", "-5", "-5", "5", NONE_AU),
        mtl_row("v1/00003.jpg", "-5", "-5", "-1", NONE_AU),  # nothing labelled
        mtl_row("v2_left/00010.jpg", "0.1", "0.1", "-1", AU_ZERO),  # no image
    ])
    abaw.frames("v1", [1, 2, 3])
    table = read_abaw_mtl(path, abaw.images)
    df = table.samples
    assert df["video"].tolist() == ["v1", "v1"] and df["frame"].tolist() == [1, 2]
    assert table.skipped == {"frame has no labels (all -1 / -5)": 1, "image file missing": 1}
    assert df["expr"].tolist() == [3, 5] and df["AU12"].iloc[0] == 1.0 and np.isnan(df["AU12"].iloc[1])
    assert df["valence"].iloc[0] == 0.2 and np.isnan(df["arousal"].iloc[1])
    assert set(df["source"]) == {"abaw-mtl"}
    rel = read_abaw_mtl(path).samples
    assert rel["path"].tolist() == ["v1/00001.jpg", "v1/00002.jpg", "v2_left/00010.jpg"]
    assert rel.loc[2, ["video", "frame"]].tolist() == ["v2_left", 10]


@pytest.mark.parametrize("row, message, line", [
    (mtl_row("v/00001.jpg", "0", "0", "9", AU_ZERO), "expression: 9 is not an expression id", 3),
    (mtl_row("v/00001.jpg", "0", "2", "1", AU_ZERO), "arousal: 2 is not in", 3),
    (mtl_row("v/00001.jpg", "0", "0", "1", "0,0,0"), "expected 16 comma-separated values, found 7", 3),
    (mtl_row("00001.jpg", "0", "0", "1", AU_ZERO), "is not <video>/<frame number>.jpg", 3),
    (mtl_row("v/00001.jpg", "0", "0", "1", "-2" + AU_ZERO[1:]), "AU1: -2 is not 0, 1 or -1", 3),
])
def test_mtl_bad_rows(lines, tmp_path, row, message, line):
    good = mtl_row("v/00001.jpg", "0", "0", "1", AU_ZERO)
    path = lines(tmp_path / "mtl.txt", ["image,valence,arousal,expression,aus", good, row])
    with pytest.raises(DataError, match=re.escape(message)) as err:
        read_abaw_mtl(path)
    assert (err.value.path, err.value.line) == (str(path), line)


def test_mtl_bad_header(lines, tmp_path):
    path = lines(tmp_path / "mtl.txt", ["image,expression", "v/00001.jpg,1"])
    with pytest.raises(DataError, match="expected image,valence,arousal,expression,aus") as err:
        read_abaw_mtl(path)
    assert err.value.path == str(path)


def test_data_summary_names_the_release(abaw, capsys):
    from affectlab.cli import main

    abaw.annotate("AU_Set", "a", ["1,0,0,0,1,0,1,1"], header=AU_2020)
    assert main(["data", "summary", str(abaw.annotations)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "release: ABAW 2020: 8 AUs incl. AU20"
