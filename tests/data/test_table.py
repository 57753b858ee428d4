import numpy as np
import pandas as pd
import pytest

from affectlab.data.table import (SOFT_COLUMNS, SampleTable, build_table, concat_tables, label_columns, select_split,
                                  soft_columns, validate_table)
from affectlab.errors import DataError
from affectlab.labels import AU_ABAW, DEFAULT_SCHEMA, schema


def soft_row(**mass: float) -> list[float]:
    return [mass.get(c.removeprefix("expr_soft_"), 0.0) for c in SOFT_COLUMNS]


def test_build_fills_missing_columns_orders_and_types():
    frame = pd.DataFrame({"note": ["x", "y"], "path": ["/a.jpg", "/b.jpg"], "source": "test",
                          "AU12": [1, np.nan], "AU5": [1, 0], "arousal": [0.5, np.nan]})
    table = build_table(frame)
    df = table.samples
    assert list(df.columns) == ["path", "source", "video", "frame", *AU_ABAW, "expr", "valence", "arousal", "note"]
    assert df["video"].tolist() == ["", ""] and df["frame"].tolist() == [-1, -1]
    assert df["expr"].tolist() == [-1, -1] and df["expr"].dtype == np.int64
    assert df["AU12"].iloc[0] == 1.0 and np.isnan(df["AU12"].iloc[1]) and np.isnan(df["AU1"]).all()
    assert "AU5" not in df and np.isnan(df["valence"]).all() and table.skipped == {}
    assert all(df[c].dtype == np.float64 for c in [*AU_ABAW, "valence", "arousal"])
    assert len(table) == 2


def test_schema_without_other_masks_labels_and_renormalises_soft_targets():
    frame = pd.DataFrame([soft_row(Neutral=0.5, Other=0.5), soft_row(Other=1.0), soft_row(Anger=1.0)],
                         columns=list(SOFT_COLUMNS)).assign(path=["/a", "/b", "/c"], source="t", expr=[7, 7, 1])
    table = build_table(frame, schema(n_expr=7), {"image file missing": 2})
    df = table.samples
    assert df["expr"].tolist() == [-1, -1, 1]
    assert [c for c in df if c.startswith("expr_soft_")] == soft_columns(schema(n_expr=7))
    assert df["expr_soft_Neutral"].iloc[0] == 1.0 and np.isnan(df["expr_soft_Neutral"].iloc[1])
    assert table.skipped == {"image file missing": 2, "expression not in schema (label dropped)": 2,
                             "soft expression target not in schema (label dropped)": 1}


@pytest.mark.parametrize("column, value, message", [
    ("valence", 1.5, "'valence' outside"),
    ("AU1", 2.0, "'AU1' outside"),
    ("expr", 8, "expr outside"),
    ("frame", 0, "frame must be"),
    ("path", "", "empty path"),
])
def test_validate_rejects_contract_breaches(column, value, message):
    df = build_table(pd.DataFrame({"path": ["/a"], "source": "t"})).samples
    df[column] = pd.Series([value], dtype=df[column].dtype)
    with pytest.raises(ValueError, match=message):
        validate_table(df)


def test_validate_rejects_missing_columns_and_partial_soft_targets():
    df = build_table(pd.DataFrame({"path": ["/a"], "source": "t"})).samples
    with pytest.raises(ValueError, match="lacks columns"):
        validate_table(df.drop(columns=["arousal"]))
    soft = df.assign(**{c: np.nan for c in soft_columns()})
    validate_table(soft)
    soft["expr_soft_Anger"] = 1.0
    with pytest.raises(ValueError, match="partly missing"):
        validate_table(soft)


def test_concat_tables_aligns_columns_and_adds_skipped():
    a = build_table(pd.DataFrame({"path": ["/a"], "source": "x", "expr_soft_Anger": [1.0]}), skipped={"r": 1})
    b = build_table(pd.DataFrame({"path": ["/b"], "source": "y", "AU1": [1.0], "subject": ["s"]}), skipped={"r": 2})
    both = concat_tables([a, b])
    assert both.skipped == {"r": 3}
    df = both.samples
    assert df["source"].tolist() == ["x", "y"] and df["expr_soft_Anger"].iloc[0] == 1.0
    assert np.isnan(df["expr_soft_Anger"].iloc[1]) and np.isnan(df["AU1"].iloc[0]) and df["AU1"].iloc[1] == 1.0
    with pytest.raises(ValueError):
        concat_tables([])


def test_select_split():
    frame = pd.DataFrame({"split": ["train", "valid", "train"], "x": [1, 2, 3]})
    assert select_split(frame, "train", "f.csv")["x"].tolist() == [1, 3]
    assert select_split(frame, None, "f.csv") is frame
    with pytest.raises(DataError, match="no split 'test'; it has 'train', 'valid'"):
        select_split(frame, "test", "f.csv")
    with pytest.raises(DataError, match="has no 'split' column"):
        select_split(frame.drop(columns="split"), "train", "f.csv")


def test_label_columns_follow_schema():
    assert label_columns(DEFAULT_SCHEMA) == [*AU_ABAW, "expr", "valence", "arousal"]
    assert label_columns(schema("bp4d"))[7] == "AU14"
    assert isinstance(build_table(pd.DataFrame({"path": ["/a"], "source": "t"})), SampleTable)
