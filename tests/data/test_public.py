"""Public readers on the real sets (skipped where absent), checked against counts taken from the CSVs here."""
import csv
import re
from collections import Counter

import numpy as np
import pytest

from affectlab.data.public import LANDMARKS, read_affectnet, read_ckplus, read_ferplus, read_lfw_expressions
from affectlab.data.table import soft_columns
from affectlab.errors import DataError
from affectlab.labels import AFFECTNET_TO_ABAW, AU_ABAW, CKPLUS_TO_ABAW, FERPLUS_TO_ABAW, OTHER, schema

FER_EMOTIONS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
FER_HEADER = "path,split," + ",".join(f"votes_{e}" for e in FER_EMOTIONS) + ",votes_unknown,votes_NF,majority_idx"


def csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ferplus(shared_data):
    return read_ferplus(shared_data / "ferplus" / "labels.csv"), csv_rows(shared_data / "ferplus" / "labels.csv")


def test_ferplus_rows_skips_and_labels_match_the_csv(ferplus):
    table, rows = ferplus
    votes = [[int(r[f"votes_{e}"]) for e in FER_EMOTIONS] for r in rows]
    no_votes = [sum(v) == 0 for v in votes]
    not_face = [not nv and int(r["votes_NF"]) > max(*v, int(r["votes_unknown"]))
                for r, v, nv in zip(rows, votes, no_votes)]
    kept = [r for r, a, b in zip(rows, no_votes, not_face) if not (a or b)]
    assert Counter(r["split"] for r in rows) == {"train": 28558, "valid": 3579}
    assert table.skipped == {k: v for k, v in {"no emotion votes": sum(no_votes),
                                               "not a face (NF has the most votes)": sum(not_face)}.items() if v}
    df = table.samples
    assert len(df) == len(rows) - sum(no_votes) - sum(not_face)
    assert Counter(df["split"]) == Counter(r["split"] for r in kept)
    hard = Counter(FERPLUS_TO_ABAW[int(r["majority_idx"])] for r in kept if int(r["majority_idx"]) >= 0)
    assert Counter(df["expr"][df["expr"] >= 0]) == hard
    assert (df["expr"] == -1).sum() == sum(int(r["majority_idx"]) == -1 for r in kept)
    soft = df[soft_columns()].to_numpy()
    assert np.allclose(soft.sum(axis=1), 1.0)
    first = kept[0]
    total = sum(int(first[f"votes_{e}"]) for e in FER_EMOTIONS)
    for i, e in enumerate(FER_EMOTIONS):
        assert soft[0, FERPLUS_TO_ABAW[i]] == pytest.approx(int(first[f"votes_{e}"]) / total)
    assert df["path"].str.endswith(first["path"]).iloc[0]


def test_ferplus_split_and_seven_class_schema(shared_data, ferplus):
    _, rows = ferplus
    valid = read_ferplus(shared_data / "ferplus" / "labels.csv", split="valid", schema=schema(n_expr=7))
    df = valid.samples
    assert set(df["split"]) == {"valid"} and "expr_soft_Other" not in df
    contempt = sum(r["split"] == "valid" and r["majority_idx"] == "7" for r in rows)
    assert valid.skipped["expression not in schema (label dropped)"] == contempt
    present = df[soft_columns(schema(n_expr=7))].notna().all(axis=1)
    assert np.allclose(df.loc[present, soft_columns(schema(n_expr=7))].sum(axis=1), 1.0)


def test_affectnet(shared_data):
    path = shared_data / "affectnet" / "labels.csv"
    rows = csv_rows(path)
    table = read_affectnet(path)
    df = table.samples
    assert len(df) == len(rows) == 2399 and table.skipped == {}
    expected = Counter(AFFECTNET_TO_ABAW[int(r["expression_idx"])] for r in rows)
    assert Counter(df["expr"]) == expected
    assert expected == {0: 300, 1: 300, 2: 300, 3: 300, 4: 300, 5: 300, 6: 300, 7: 299}
    assert df["valence"].between(-1, 1).all() and df["arousal"].between(-1, 1).all()
    assert df["valence"].sum() == pytest.approx(sum(float(r["valence"]) for r in rows))
    assert all(c in df and df[c].dtype == np.float64 for c in LANDMARKS) and df[list(LANDMARKS)].notna().all().all()
    assert df["lnd_y67"].iloc[0] == pytest.approx(float(rows[0]["lnd_y67"]))
    assert np.isnan(df[list(AU_ABAW)].to_numpy()).all()


@pytest.mark.parametrize("folder, n_rows, n_subjects", [("ckplus", 732, 88), ("ckplus_second_crop", 648, 93)])
def test_ckplus(shared_data, folder, n_rows, n_subjects):
    path = shared_data / folder / "labels.csv"
    rows = csv_rows(path)
    table = read_ckplus(path)
    df = table.samples
    assert len(df) == len(rows) == n_rows and df["subject"].nunique() == n_subjects and table.skipped == {}
    for au in AU_ABAW:
        assert df[au].sum() == sum(int(r[au]) for r in rows)
    assert Counter(df["expr"]) == Counter(CKPLUS_TO_ABAW[r["expression"]] for r in rows)
    assert df["video"].tolist() == [r["sequence"] for r in rows]
    assert df["frame"].tolist() == [int(r["frame"]) for r in rows]
    other_schema = read_ckplus(path, schema=schema("bp4d", n_expr=7))
    assert other_schema.samples["AU14"].sum() == sum(int(r["AU14"]) for r in rows)
    assert other_schema.skipped == {"expression not in schema (label dropped)":
                                    sum(r["expression"] == "contempt" for r in rows)}


def test_schema_au_absent_from_ckplus_file_is_missing(tmp_path, image, lines):
    image(tmp_path / "a.png")
    path = lines(tmp_path / "labels.csv", ["path,subject,sequence,frame,expression,au_source,AU1,AU12",
                                           "a.png,S1,S1_1,3,happy,x,0,1"])
    df = read_ckplus(path).samples
    assert df["AU12"].tolist() == [1.0] and np.isnan(df["AU4"]).all() and df["expr"].tolist() == [4]


@pytest.mark.parametrize("reader, rows, message, line", [
    (read_ckplus, ["path,subject,sequence,frame,expression,AU1", "a.png,S1,S1_1,1,joy,0"],
     "expression: 'joy' is not a CK+ expression", 2),
    (read_ckplus, ["path,subject,sequence,frame,expression,AU1", "a.png,S1,S1_1,1,happy,0", "a.png,S1,S1_1,2,happy,3"],
     "AU1: '3' is not 0 or 1", 3),
    (read_ckplus, ["path,subject,sequence,expression", "a.png,S1,S1_1,happy"], "missing column(s) frame", 1),
    (read_affectnet, ["path,expression_idx,valence,arousal," + ",".join(LANDMARKS),
                      "a.png,8,0,0," + ",".join(["1"] * len(LANDMARKS))], "expression_idx: '8' is not an AffectNet", 2),
    (read_affectnet, ["path,expression_idx,valence,arousal," + ",".join(LANDMARKS),
                      "a.png,1,0,-1.2," + ",".join(["1"] * len(LANDMARKS))], "arousal: '-1.2' is not in [-1, 1]", 2),
    (read_ferplus, [FER_HEADER, "a.png,train,1,2,0,0,0,0,0,0,0,0,x"], "majority_idx: 'x' is not a number", 2),
    (read_lfw_expressions, ["path,expression,person,labeller,kind", "a.png,happy,A_B,1,lfw"],
     "expression: 'happy' is not an expression name (neutral, anger", 2),
])
def test_bad_public_rows_name_file_and_line(tmp_path, lines, reader, rows, message, line):
    path = lines(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        reader(path)
    assert (err.value.path, err.value.line) == (str(path), line)


def test_ferplus_skips_by_reason(tmp_path, image, lines):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        image(tmp_path / "train" / name)
    path = lines(tmp_path / "labels.csv", [
        FER_HEADER,
        "train/a.png,train,0,0,0,0,0,0,0,0,0,10,-1",    # no emotion votes
        "train/b.png,train,1,0,0,0,0,0,0,0,2,4,-1",     # NF outvotes everything
        "train/c.png,train,4,0,0,0,0,0,0,0,2,4,-1",     # NF ties: kept, no majority
        "train/d.png,train,0,0,0,0,0,0,0,9,0,0,7",      # contempt -> Other
        "train/gone.png,train,9,0,0,0,0,0,0,0,0,0,0",   # image missing
    ])
    table = read_ferplus(path)
    assert table.skipped == {"no emotion votes": 1, "not a face (NF has the most votes)": 1, "image file missing": 1}
    df = table.samples
    assert df["expr"].tolist() == [-1, 7]
    assert df["expr_soft_Neutral"].tolist() == [1.0, 0.0] and df["expr_soft_Other"].tolist() == [0.0, 1.0]


def test_lfw_expressions_real_set(shared_data):
    """The students' labels: 13,682 faces, the README's class counts, persons never split, kind as split."""
    path = shared_data / "lfw_expressions" / "labels.csv"
    rows = csv_rows(path)
    df = read_lfw_expressions(path).samples
    assert len(df) == len(rows) == 13682
    names = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert [int((df["expr"] == i).sum()) for i in range(7)] == [sum(r["expression"] == n for r in rows) for n in names]
    assert int((df["expr"] == OTHER).sum()) == sum(r["expression"] == "contempt" for r in rows)
    lfw = df[df["split"] == "lfw"]
    assert lfw["subject"].tolist() == [r["person"] for r in rows if r["kind"] == "lfw"]
    assert len(read_lfw_expressions(path, split="film").samples) == sum(r["kind"] == "film" for r in rows)


def test_lfw_expressions_unnamed_person_is_its_own_subject(tmp_path, image, lines):
    for name in ("a.png", "b.png", "c.png"):
        image(tmp_path / name)
    path = lines(tmp_path / "labels.csv", ["path,expression,person,labeller,kind", "a.png,contempt,,7,film",
                                           "b.png,Happiness,Ann_Lee,7,lfw", "c.png,neutral,Ann_Lee,8,lfw"])
    df = read_lfw_expressions(path).samples
    assert df["expr"].tolist() == [OTHER, 4, 0]
    assert df["subject"].tolist() == ["image:a.png", "Ann_Lee", "Ann_Lee"]
    assert df["split"].tolist() == ["film", "lfw", "lfw"]
