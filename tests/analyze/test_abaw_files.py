"""affectlab.analyze.abaw: ABAW submission files, one person per file, read back by affectlab.data.abaw."""
from __future__ import annotations

import numpy as np
import pandas as pd

from affectlab.analyze.abaw import main_face, write_abaw_mtl
from affectlab.analyze.results import main_face_id, prediction_frame
from affectlab.analyze.run import run_analysis
from affectlab.data.abaw import read_abaw_mtl
from affectlab.labels import DEFAULT_SCHEMA


def tied_table() -> pd.DataFrame:
    """Faces 1 and 0 each seen in 3 of 4 frames (face 1's rows first), AU12 telling them apart."""
    rows = [(1, 1, 0.9), (1, 0, 0.1), (2, 1, 0.9), (2, 0, 0.1), (3, 1, 0.9), (4, 0, 0.1)]
    return pd.DataFrame({"input": "clip.mp4", "frame": [r[0] for r in rows], "face_id": [r[1] for r in rows],
                         "success": 1, "AU12": [r[2] for r in rows]})


def test_abaw_main_face_tie_goes_to_the_lowest_face_id():
    """A tie in frames seen is broken by the lowest face_id, not by which face's rows come first; the plots
    pick the same face (one function)."""
    from affectlab.analyze import plots

    table = tied_table()
    assert main_face_id(table) == 0 and plots.main_face_id is main_face_id
    rows = main_face(table)
    assert rows["frame"].tolist() == [1, 2, 3, 4] and rows["face_id"].tolist() == [0, 0, 0, 0]
    assert rows["AU12"].tolist() == [0.1, 0.1, 0.1, 0.1]  # frame 3, where face 0 was missed, filled from it
    assert main_face_id(table.iloc[::-1]) == 0  # whatever the order of the rows


def test_abaw_two_people_get_left_and_right_files(sample_analyzer, sample_media, tmp_path):
    """A real two-person clip (two faces of multi_face.jpg): one file per person and task, named by side,
    one line per frame, each person's own predictions."""
    import bad_inputs as bad
    from affectlab.analyze.media import read_image

    two = np.ascontiguousarray(read_image(sample_media / "multi_face.jpg")[250:450, 500:800])  # faces at x 529 and 682
    clip = bad.video(tmp_path / "pair.mp4", n=12, fps=10, picture=two)
    report = run_analysis(sample_analyzer, [clip], tmp_path / "out", abaw=True, progress=False)
    assert not report.failures
    table = pd.read_csv(tmp_path / "out" / "pair.csv")
    assert table.groupby("frame")["success"].sum().eq(2).all()
    abaw = tmp_path / "out" / "abaw"
    assert not (abaw / "VA" / "pair.txt").exists()
    faces = table[table["success"] == 1]
    left_id = int(faces.loc[faces["x"].idxmin(), "face_id"])
    for side, face_id in (("left", left_id), ("right", 1 - left_id)):
        for task in ("AU", "EXPR", "VA"):
            assert len((abaw / task / f"pair_{side}.txt").read_text().splitlines()) == 13  # header + 12 frames
        va = pd.read_csv(abaw / "VA" / f"pair_{side}.txt")
        own = faces[faces["face_id"] == face_id].sort_values("frame")
        np.testing.assert_allclose(va["valence"], own["valence"], atol=1e-4)


def test_the_multitask_file_reads_back_as_the_labels_it_predicts(tmp_path):
    """Written by analyze.abaw, read by data.abaw: the same header, the same values (VA to 4 decimals)."""
    rng = np.random.default_rng(0)
    schema = DEFAULT_SCHEMA
    au = rng.uniform(size=(3, schema.n_au))
    expr = rng.dirichlet(np.ones(schema.n_expr), size=3)
    va = rng.uniform(-1, 1, size=(3, 2))
    table = prediction_frame(schema, au, expr, va, np.full(schema.n_au, 0.5))
    table.insert(0, "input", [f"/data/cropped_aligned/v{i}/0000{i + 1}.jpg" for i in range(3)])
    table.insert(1, "face_id", 0)
    table.insert(2, "success", 1)
    back = read_abaw_mtl(write_abaw_mtl(table, tmp_path / "mtl.txt", schema), check_images=False).samples
    assert back["path"].tolist() == ["v0/00001.jpg", "v1/00002.jpg", "v2/00003.jpg"]
    np.testing.assert_allclose(back[list(schema.va_names)].to_numpy(), va, atol=5e-5)
    assert back["expr"].tolist() == expr.argmax(1).tolist()
    np.testing.assert_array_equal(back[list(schema.au_names)].to_numpy(), (au >= 0.5).astype(float))


def test_abaw_files_of_a_wide_table_give_no_pandas_warning(sample_analyzer, sample_media, tmp_path):
    """``--landmarks --abaw``: the 170-column table read back fills its frames without a PerformanceWarning."""
    import warnings

    from affectlab.analyze.formats import CsvRows, read_results

    native = sample_analyzer.analyze(sample_media / "single_face.mp4").head(6)
    extra = {f"{a}_{i}": 10.0 + i for a in "xy" for i in range(68)}
    native = pd.concat([native, pd.DataFrame(extra, index=native.index)], axis=1).iloc[[0, 2, 3, 5]]
    with CsvRows(tmp_path / "wide.csv") as writer:
        writer.write(native)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        rows = main_face(read_results(tmp_path / "wide.csv"))
    assert len(rows) == 4 and rows["x_3"].eq(13.0).all()


def test_abaw_main_face_of_a_fragmented_table_gives_no_pandas_warning():
    """A table built column by column in memory (the corpus engine's, with landmarks) is filled as one block."""
    import warnings

    table = pd.DataFrame({"input": "clip.mp4", "frame": [0, 1, 2, 2], "success": [1, 0, 1, 1], "face_id": [0, 0, 0, 1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for i in range(150):
            table[f"x_{i}"] = np.arange(4.0) + i
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        rows = main_face(table)
    assert rows["frame"].tolist() == [0, 1, 2] and rows["x_1"].tolist() == [1.0, 1.0, 3.0]
