"""affectlab.analyze.formats: the OpenFace and py-feat formats against those tools' own files, and read back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectlab.analyze.media import video_info
from affectlab.analyze.run import run_analysis
from affectlab.analyze.formats import CsvRows, read_results
from affectlab.cli import main


@pytest.fixture(scope="module")
def analyzer(sample_analyzer):
    return sample_analyzer


@pytest.fixture(scope="module")
def media(sample_media):
    return sample_media


def openface_reference(media) -> list[str]:
    """OpenFace's own header (the sample file of py-feat's tests, written by OpenFace 2.0) with the
    ``face_id`` that 2.2 writes after ``frame`` and the gaze angles it writes after the gaze vectors."""
    names = [c.strip() for c in (media / "OpenFace_Test.csv").open().readline().split(",")]
    names.insert(1, "face_id")
    at = names.index("gaze_1_z") + 1
    return [*names[:at], "gaze_angle_x", "gaze_angle_y", *names[at:]]


def test_analyze_examples_as_openface_has_openface_header(media, tmp_path, capsys):
    """What a new user gets from ``affectlab analyze examples/media --format openface``."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "media"
    assert main(["analyze", str(examples), "--format", "openface", "--out", str(tmp_path), "--quiet"]) == 0
    reference = openface_reference(media)
    for name in ("single_face.csv", "WolfgangLanger_Pexels.csv", "images.csv"):
        lines = (tmp_path / name).read_text().splitlines()
        header = lines[0].split(", ")
        assert header[:5] == ["frame", "face_id", "timestamp", "confidence", "success"]
        ours = [c for c in header if c in reference]
        assert ours == [c for c in reference if c in header]  # OpenFace's columns in OpenFace's order
        last = header.index(ours[-1])
        assert [c for c in header[:last] if c not in reference] == ["AU24_r", "AU24_c"]  # sorted in, as OpenFace sorts
        assert ("AU12_r" in header and "AU12_c" in header and header.index("AU26_r") < header.index("AU01_c"))
        assert all(len(line.split(", ")) == len(header) for line in lines[1:])
    video = read_results(tmp_path / "single_face.csv", "openface")
    assert video["frame"].tolist() == list(range(1, 73)) and video["success"].eq(1).all()
    raw = pd.read_csv(tmp_path / "single_face.csv", skipinitialspace=True)
    fps = video_info(examples / "single_face.mp4").fps
    assert np.allclose(raw["timestamp"], (raw["frame"] - 1) / fps, atol=1e-3)  # seconds
    assert raw.filter(regex=r"^AU\d+_r$").stack().between(0, 1).all()  # probabilities, not 0-5 intensities
    assert set(raw.filter(regex=r"^AU\d+_c$").stack()) <= {0, 1}


def test_feat_format_has_py_feat_names_and_order(analyzer, media, tmp_path):
    report = run_analysis(analyzer, [media / "single_face.mp4", media / "multi_face.jpg", media / "single_face.jpg"],
                          tmp_path, fmt="feat", progress=False)
    assert not report.failures
    reference = list(pd.read_csv(media / "001.csv", nrows=0).columns)  # written by py-feat itself
    for name in ("single_face.csv", "images.csv"):
        header = list(pd.read_csv(tmp_path / name, nrows=0).columns)
        ours = [c for c in header if c in reference]
        assert ours == [c for c in reference if c in header]
        assert ours[:5] == ["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore"]
        assert {"anger", "neutral", "AU01", "input", "frame", "valence", "arousal"} <= set(header)
        assert header[-2:] == ["input", "frame"]
    video, images = pd.read_csv(tmp_path / "single_face.csv"), pd.read_csv(tmp_path / "images.csv")
    assert video["frame"].tolist() == list(range(72))  # py-feat counts frames from 0
    assert images.groupby("input", sort=False)["frame"].first().tolist() == [0, 1]  # and images within a file
    assert len(images) == 6


def test_formats_read_back_to_the_native_table(analyzer, media, tmp_path):
    native = analyzer.analyze(media / "single_face.mp4").head(8)
    for fmt in ("native", "openface", "feat"):
        with CsvRows(tmp_path / f"{fmt}.csv", fmt=fmt) as writer:
            writer.write(native.iloc[:3])
            writer.write(native.iloc[3:])
        back = read_results(tmp_path / f"{fmt}.csv", fmt)[list(native.columns)]
        numbers = [c for c in native.columns if c not in ("input", "expression")]
        np.testing.assert_allclose(back[numbers].to_numpy(float), native[numbers].to_numpy(float), atol=1e-4)
        assert back["expression"].tolist() == native["expression"].tolist()


def test_landmark_pose_and_gaze_columns_take_the_tools_places(analyzer, media, tmp_path):
    """The columns of ``analyze --landmarks`` (OpenFace's names in the native table) where each tool has them."""
    native = analyzer.analyze(media / "single_face.jpg")
    extra = {f"{a}_{i}": 10.0 + i for a in "xy" for i in range(68)}
    extra |= {"pose_Tx": 1.0, "pose_Ty": 2.0, "pose_Tz": 500.0, "pose_Rx": 0.1, "pose_Ry": -0.2, "pose_Rz": 0.3,
              "gaze_angle_x": 0.05, "gaze_angle_y": -0.05}
    native = pd.concat([native, pd.DataFrame(extra, index=native.index)], axis=1)
    with CsvRows(tmp_path / "of.csv", fmt="openface") as writer:
        writer.write(native)
    header = (tmp_path / "of.csv").read_text().splitlines()[0].split(", ")
    reference = openface_reference(media)
    assert [c for c in header if c in reference] == [c for c in reference if c in header]
    assert header.index("gaze_angle_y") < header.index("pose_Tx") < header.index("x_0") < header.index("y_67") \
        < header.index("AU01_r")
    with CsvRows(tmp_path / "feat.csv", fmt="feat") as writer:
        writer.write(native)
    feat = pd.read_csv(tmp_path / "feat.csv")
    reference = list(pd.read_csv(media / "001.csv", nrows=0).columns)
    assert [c for c in feat.columns if c in reference] == [c for c in reference if c in feat.columns]
    assert feat.loc[0, "Pitch"] == pytest.approx(np.degrees(-0.1), abs=1e-3)  # degrees, py-feat's signs
    assert feat.loc[0, "Yaw"] == pytest.approx(np.degrees(-0.2), abs=1e-3)
    assert feat.loc[0, "Roll"] == pytest.approx(np.degrees(0.3), abs=1e-3)
    for fmt in ("openface", "feat"):
        back = read_results(tmp_path / f"{'of' if fmt == 'openface' else fmt}.csv", fmt)
        for column, value in extra.items():
            assert back.loc[0, column] == pytest.approx(value, abs=1e-4)


def test_score_reads_images_csv_in_every_format(analyzer, media, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": [str(media / "multi_face.jpg"), str(media / "single_face.jpg")], "AU12": [1, 1],
                  "expression": ["Happiness", "Happiness"], "valence": [0.5, 0.6], "arousal": [0.1, 0.3]}
                 ).to_csv(labels, index=False)
    scores = {}
    for fmt in ("native", "openface", "feat"):
        run_analysis(analyzer, [media / "multi_face.jpg", media / "single_face.jpg"], tmp_path / fmt, fmt=fmt,
                     progress=False)
        assert main(["score", str(tmp_path / fmt / "images.csv"), str(labels), "--json", str(tmp_path / f"{fmt}.json")]) == 0
        scores[fmt] = pd.read_json(tmp_path / f"{fmt}.json", typ="series")["n"]
    assert scores["openface"] == scores["feat"] == scores["native"] == {"au": 2, "expr": 2, "va": 2}


def test_landmarks_in_openface_format_take_openface_places(media, tmp_path):
    """``--landmarks --format openface``: the pose, gaze-angle and 2D landmark columns in OpenFace's order."""
    photo = Path(__file__).resolve().parents[2] / "examples" / "media" / "multi_face.jpg"
    assert main(["analyze", str(photo), "--landmarks", "--format", "openface", "--out", str(tmp_path), "--quiet"]) == 0
    header = (tmp_path / "images.csv").read_text().splitlines()[0].split(", ")
    reference = openface_reference(media)
    for name in ("gaze_angle_x", "pose_Tx", "pose_Rz", "x_0", "x_67", "y_0", "y_67"):
        assert name in header
    ours = [c for c in header if c in reference]
    assert ours == [c for c in reference if c in header]
    table = read_results(tmp_path / "images.csv", "openface")
    faces = table[table["success"] == 1]
    assert np.isfinite(faces[["x_33", "y_33", "pose_Ry", "gaze_angle_y"]].to_numpy(float)).all()


def test_mesh_option_writes_the_mesh_columns(tmp_path):
    photo = Path(__file__).resolve().parents[2] / "examples" / "media" / "single_face.jpg"
    assert main(["analyze", str(photo), "--mesh", "--out", str(tmp_path), "--quiet"]) == 0
    header = (tmp_path / "images.csv").read_text().splitlines()[0].split(",")
    assert header[-1] == "mesh_z_467" and "x_67" in header and "pose_Rz" in header


def test_feat_pose_is_py_feats_decomposition_of_the_same_rotation():
    """py-feat's angles of OpenFace's rotation R = Rx Ry Rz, computed as py-feat computes them
    (convert_to_euler: R transposed, extrinsic "xyz", reported as x, -z, -y), equal what --format feat writes."""
    from scipy.spatial.transform import Rotation

    from affectlab.analyze.formats import to_format

    rx, ry, rz = 0.3, -0.5, 0.7
    rot = Rotation.from_euler("XYZ", [rx, ry, rz]).as_matrix()  # intrinsic X-Y-Z: Rx @ Ry @ Rz, OpenFace's order
    a = Rotation.from_matrix(rot.T).as_euler("xyz", degrees=True)
    expected = {"Pitch": a[0], "Roll": -a[2], "Yaw": -a[1]}
    native = pd.DataFrame({"input": ["a.jpg"], "frame": [-1], "face_id": [0], "pose_Rx": [rx], "pose_Ry": [ry],
                           "pose_Rz": [rz]})
    feat = to_format(native, "feat")
    for column, value in expected.items():
        assert feat.loc[0, column] == pytest.approx(value, abs=1e-6)
