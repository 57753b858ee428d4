"""affectlab.analyze.parquet: the tables of a run as one Parquet dataset, typed, one schema for all."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bad_inputs as bad
from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.run import run_analysis

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is part of the optional extra affectlab[ray]")


def test_every_table_has_one_schema_and_the_csv_values(tiny_model, tmp_path):
    """A video without any face (its predictions all empty), a video with faces and the images: the same
    columns and types in every file, whole numbers as int64 with nulls, the values of the CSV tables."""
    out = tmp_path / "out"
    run_analysis(Analyzer(tiny_model), [bad.video(tmp_path / "blank.mp4", n=4)], out, fmt="feat", parquet=True,
                 progress=False)
    run_analysis(Analyzer(tiny_model, faces="crops"), [bad.video(tmp_path / "grey.mp4", n=5),
                                                       bad.good_image(tmp_path / "a.png")],
                 out, fmt="feat", parquet=True, progress=False)
    folder = out / "parquet"
    assert sorted(p.name for p in folder.iterdir()) == ["blank.parquet", "grey.parquet", "images.parquet"]
    schemas = [pq.read_schema(folder / name) for name in ("blank.parquet", "grey.parquet", "images.parquet")]
    assert all(s.equals(schemas[0]) for s in schemas)
    types = {f.name: str(f.type) for f in schemas[0]}
    assert types["frame"] == types["face_id"] == types["au01_c"] == "int64"  # py-feat's name for a decision
    assert types["input"] == types["expression"] == "string" and types["FaceScore"] == "double"
    blank = pq.read_table(folder / "blank.parquet")
    assert blank.column("au01_c").null_count == blank.num_rows == 4
    grey = pq.read_table(folder / "grey.parquet").to_pandas()
    csv = pd.read_csv(out / "grey.csv")
    assert list(grey.columns) == list(csv.columns)
    numbers = csv.select_dtypes("number").columns
    assert np.allclose(grey[numbers].astype(float), csv[numbers].astype(float), equal_nan=True)
