"""The bundled default model on real faces it never trained on (AffectNet's and CK+'s held-out folds)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.analyzer import Analyzer
from affectlab.inference.backends import DEFAULT_MODEL
from affectlab.data import read_affectnet, read_ckplus
from affectlab.data.sampling import assign_folds
from affectlab.models import read_checkpoint_meta

HELD_OUT = 4  # configs/default.yaml trains on folds 0-3 and validates on fold 4


def test_the_default_model_is_bundled_and_self_describing():
    meta = read_checkpoint_meta(DEFAULT_MODEL)
    assert meta.model == "mtl-baseline" and meta.input_size == 112 and meta.schema.n_au == 12
    assert DEFAULT_MODEL.stat().st_size < 20e6


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer()


def held_out(table: pd.DataFrame, by: str) -> pd.DataFrame:
    return table[assign_folds(table[by].astype(str), 5) == HELD_OUT]


def test_clearly_happy_faces_read_as_happy_and_positive(analyzer, shared_data):
    faces = held_out(read_affectnet(shared_data / "affectnet" / "labels.csv").samples, "path")
    happy = faces[(faces["expr"] == 4) & (faces["valence"] > 0.5)].head(20)
    sad = faces[(faces["expr"] == 5) & (faces["valence"] < -0.4)].head(20)
    assert len(happy) >= 10 and len(sad) >= 10
    rows = {name: pd.concat([analyzer.analyze(p) for p in group["path"]]) for name, group in (("happy", happy), ("sad", sad))}
    for df in rows.values():
        assert (df["success"] == 1).mean() > 0.9
    happy_reads = rows["happy"]["expression"].value_counts()
    assert happy_reads.index[0] == "Happiness" and happy_reads.iloc[0] >= 0.4 * len(rows["happy"])
    assert (rows["sad"]["expression"] == "Happiness").mean() < 0.15
    happy_v, sad_v = rows["happy"]["valence"].mean(), rows["sad"]["valence"].mean()
    assert happy_v > 0.1 and sad_v < -0.1 and happy_v - sad_v > 0.4
    assert rows["happy"]["AU12"].mean() > rows["sad"]["AU12"].mean() + 0.2  # lip corner puller


def test_posed_aus_of_held_out_subjects(analyzer, shared_data):
    faces = held_out(read_ckplus(shared_data / "ckplus" / "labels.csv").samples, "subject")
    crops = Analyzer(analyzer.backend, faces="crops")  # CK+ images are already tight face crops
    smiles, others = faces[faces["AU12"] == 1].head(15), faces[faces["AU12"] == 0].head(15)
    p_smile = np.mean([crops.analyze(p)["AU12"].iloc[0] for p in smiles["path"]])
    p_other = np.mean([crops.analyze(p)["AU12"].iloc[0] for p in others["path"]])
    assert p_smile > 0.5 > p_other
