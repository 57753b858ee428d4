import csv
import json
import os

import numpy as np
import pandas as pd
import pytest

from affectlab.data import format_summary, read_source, summarize
from affectlab.data.table import build_table
from affectlab.labels import AU_ABAW, EXPR_NAMES, schema


@pytest.fixture
def table():
    frame = pd.DataFrame({
        "path": ["/a", "/b", "/c", "/d"], "source": ["x", "x", "y", "y"], "video": ["v1", "v1", "v2", ""],
        "AU1": [1, 0, np.nan, np.nan], "AU12": [1, np.nan, np.nan, np.nan],
        "expr": [4, -1, 4, 0], "valence": [0.5, np.nan, -0.5, np.nan], "arousal": [0.0, np.nan, 1.0, np.nan],
    })
    return build_table(frame, skipped={"image file missing": 3})


def test_summary_contract(table):
    s = summarize(table)
    json.dumps(s)  # JSON-ready
    assert s["images"] == 4 and s["videos"] == 2 and s["skipped"] == {"image file missing": 3}
    assert s["sources"] == {"x": 2, "y": 2}
    assert s["au"]["labelled"] == 2 and s["au"]["missing"] == 2
    assert s["au"]["positives"] == {**{a: 0 for a in AU_ABAW}, "AU1": 1, "AU12": 1}
    assert s["au"]["rates"]["AU1"] == 0.5 and s["au"]["rates"]["AU12"] == 1.0 and s["au"]["rates"]["AU2"] is None
    assert s["expr"]["labelled"] == 3 and s["expr"]["counts"] == {**{n: 0 for n in EXPR_NAMES}, "Happiness": 2,
                                                                   "Neutral": 1}
    assert s["expr"]["shares"]["Happiness"] == pytest.approx(2 / 3)
    assert s["va"]["labelled"] == 2 and s["va"]["missing"] == 2
    assert s["va"]["valence"] == {"labelled": 2, "mean": 0.0, "std": 0.5, "min": -0.5, "max": 0.5}


def test_format_summary_reports_everything(table):
    text = format_summary(summarize(table))
    for expected in ("images: 4", "videos: 2", "image file missing: 3", "AU: 2 labelled, 2 missing",
                     "AU12", "100.0%", "Happiness", "66.7%", "valence  mean +0.000"):
        assert expected in text


def test_empty_tasks_and_schema():
    s = summarize(build_table(pd.DataFrame({"path": ["/a"], "source": "t"}), schema(n_expr=7)), schema(n_expr=7))
    assert list(s["expr"]["counts"]) == list(EXPR_NAMES[:7]) and s["expr"]["labelled"] == 0
    assert s["va"]["arousal"]["mean"] is None
    json.dumps(s)
    assert "VA: 0 labelled, 1 missing" in format_summary(s)


@pytest.mark.parametrize("folder", ["ferplus", "affectnet", "ckplus", "ckplus_second_crop"])
def test_real_sets_summaries_are_consistent(shared_data, folder):
    table = read_source(shared_data / folder)
    s = summarize(table)
    with open(shared_data / folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert s["images"] + sum(s["skipped"].values()) == len(rows)
    assert sum(s["expr"]["counts"].values()) == s["expr"]["hard"] == int((table.samples["expr"] >= 0).sum())
    assert s["au"]["labelled"] + s["au"]["missing"] == s["images"]
    if folder.startswith("ckplus"):
        assert s["au"]["positives"]["AU25"] == sum(r["AU25"] == "1" for r in rows)
        assert s["videos"] == len({r["sequence"] for r in rows})
    if folder == "affectnet":
        assert s["va"]["labelled"] == len(rows) and -1 <= s["va"]["valence"]["min"] <= s["va"]["valence"]["max"] <= 1
        assert s["expr"]["counts"]["Other"] == 299
    if folder == "ferplus":
        kept = set(table.samples["path"])
        kept_rows = [r for r in rows if os.path.abspath(shared_data / folder / r["path"]) in kept]
        assert s["expr"]["soft"] == s["images"] == len(kept_rows)
        assert s["expr"]["hard"] == sum(r["majority_idx"] != "-1" for r in kept_rows)
    json.dumps(s)
