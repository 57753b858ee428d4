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


# What py-feat 2.1.5's readers hand to Fex (feat.utils and feat.multitask; feat.utils.io.read_feat and
# read_openface), written out: py-feat needs torch, torchvision, timm and xgboost, too much for a test
# dependency. A file with valence and arousal is a Detectorv2 file to read_feat.
FEAT_V2_FACEBOX = ["FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore"]
FEAT_LANDMARKS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
FEAT_V2_POSE = ["Pitch", "Roll", "Yaw", "X", "Y", "Z"]
FEAT_V2_AUS = ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12", "AU14", "AU15",
               "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43"]
FEAT_V2_EMOTIONS = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger"]
#: The head of Detectorv2.detect's table (faceboxes, landmarks, poses, AUs, emotions, valence/arousal,
#: gaze), then its last two columns.
FEAT_V2_HEADER = [*FEAT_V2_FACEBOX, *FEAT_LANDMARKS, *FEAT_V2_POSE, *FEAT_V2_AUS, *FEAT_V2_EMOTIONS,
                  "valence", "arousal", "gaze_pitch", "gaze_yaw", "gaze_angle", "input", "frame"]
_OF_AUS = [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45]
OPENFACE_FEX = {
    "aus": [f"AU{i:02d}_r" for i in _OF_AUS] + sorted(f"AU{i:02d}_c" for i in [*_OF_AUS, 28]),
    "landmarks": FEAT_LANDMARKS,
    "facepose": ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"],
    "gaze": ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z"],
    "time": ["frame", "timestamp"],
}


@pytest.fixture(scope="module")
def both_formats(analyzer, media, tmp_path_factory) -> Path:
    """A clip and two photos analysed in the openface and the feat format, in <tmp>/<format>/."""
    out = tmp_path_factory.mktemp("formats")
    for fmt in ("openface", "feat"):
        report = run_analysis(analyzer, [media / "single_face.mp4", media / "multi_face.jpg", media / "single_face.jpg"],
                              out / fmt, fmt=fmt, progress=False)
        assert not report.failures
    return out


def test_feat_file_gives_read_feat_every_part(both_formats, media):
    """What read_feat finds in a --format feat file: seven emotion columns, six pose columns, AU columns
    holding probabilities only (no 0/1 decisions), py-feat's AUs that affectlab does not estimate empty."""
    for name in ("single_face.csv", "images.csv"):
        table = pd.read_csv(both_formats / "feat" / name)  # as read_feat reads it
        header = list(table.columns)
        assert {"valence", "arousal"} <= set(header)  # so read_feat takes it for a Detectorv2 file
        assert [c for c in FEAT_V2_EMOTIONS if c in header] == FEAT_V2_EMOTIONS
        assert set(FEAT_V2_POSE) <= set(header) and set(FEAT_LANDMARKS) <= set(header)
        assert {"gaze_pitch", "gaze_yaw", "gaze_angle"} <= set(header)  # read_feat's gaze columns, for .gazes
        assert [c for c in header if c in FEAT_V2_HEADER] == [c for c in FEAT_V2_HEADER if c in header]
        aus = [c for c in header if "AU" in c]  # read_feat's AU columns
        assert set(FEAT_V2_AUS) <= set(aus) and not any(c.endswith("_c") for c in aus)
        faces = table[table["FaceScore"] > 0]
        assert faces[aus].stack().dropna().between(0, 1).all()
        estimated = {"AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"}
        assert table[[a for a in FEAT_V2_AUS if a not in estimated] + ["X", "Y", "Z", "gaze_pitch"]].isna().all().all()
        assert faces[sorted(estimated)].notna().all().all()
        np.testing.assert_allclose(faces[[*FEAT_V2_EMOTIONS, "Other"]].sum(axis=1), 1, atol=1e-3)
        assert set(table.filter(regex=r"^au\d+_c$").stack().dropna()) <= {0, 1}  # the decisions, where read_feat does not look
        assert table["frame"].dtype.kind == "i"
    ours = list(pd.read_csv(both_formats / "feat" / "images.csv", nrows=0).columns)
    for file in ("Feat_Test.csv", "001.csv"):  # py-feat 1's own files (whose orders differ): its names but the emotions
        real = set(pd.read_csv(media / file, nrows=0).columns)
        assert real - set(ours) == {"anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"}


def test_openface_file_gives_read_openface_every_part(both_formats, media):
    """What read_openface finds in a --format openface file (it splits on "," and strips the names):
    every AU, landmark, pose, gaze and time column its Fex reads, numbers typed as numbers (an image's
    timestamp is empty, not a blank text), OpenFace's AUs that affectlab does not estimate empty."""
    real = [c.strip() for c in pd.read_csv(media / "OpenFace_Test.csv", nrows=0).columns]  # OpenFace's own file
    for name in ("single_face.csv", "images.csv"):
        table = pd.read_csv(both_formats / "openface" / name, sep=",")
        table.columns = table.columns.str.strip(" ")
        for part, columns in OPENFACE_FEX.items():
            assert set(columns) <= set(real), part
            assert set(columns) <= set(table.columns), part
        numbers = [c for c in table.columns if c not in ("input", "expression")]
        assert all(table[c].dtype.kind in "fi" for c in numbers), table[numbers].dtypes[lambda d: d == object]
        not_ours = ["AU05", "AU09", "AU14", "AU17", "AU20", "AU28", "AU45"]
        empty = [f"AU{a[2:]}_c" for a in not_ours] + [f"{a}_r" for a in not_ours if a != "AU28"] + OPENFACE_FEX["gaze"]
        assert table[empty].isna().all().all()
        assert table.loc[table["success"] == 1, ["AU12_r", "AU12_c", "confidence"]].notna().all().all()
    images = pd.read_csv(both_formats / "openface" / "images.csv", sep=",")
    assert images[" timestamp"].isna().all() and images[" timestamp"].dtype.kind == "f"
    ours = list(pd.read_csv(both_formats / "openface" / "images.csv", skipinitialspace=True, nrows=0).columns)
    assert [c for c in ours if c in real] == [c for c in real if c in ours]


def test_py_feat_reads_both_formats(both_formats):
    """py-feat's own readers, where py-feat is installed (it is not a dependency of affectlab's tests)."""
    pytest.importorskip("feat")
    from feat.utils.io import read_feat, read_openface

    fex = read_feat(str(both_formats / "feat" / "images.csv"))
    assert fex.detector == "Detectorv2" and list(fex.emotions.columns) == FEAT_V2_EMOTIONS
    assert fex.poses.shape[1] == 6 and not any(c.endswith("_c") for c in fex.aus.columns)
    assert fex.landmarks.shape[1] == 136 and fex.gazes.shape[1] == 3
    openface = read_openface(str(both_formats / "openface" / "images.csv"))
    assert openface.aus.shape[1] == len(OPENFACE_FEX["aus"]) and openface["timestamp"].dtype.kind == "f"
    assert openface.poses.shape[1] == 6 and openface.gazes.shape[1] == 6 and openface.landmarks.shape[1] == 136


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
        assert all(len(line.split(",")) == len(header) for line in lines[1:])
    video = read_results(tmp_path / "single_face.csv", "openface")
    assert video["frame"].tolist() == list(range(1, 73)) and video["success"].eq(1).all()
    raw = pd.read_csv(tmp_path / "single_face.csv", skipinitialspace=True)
    fps = video_info(examples / "single_face.mp4").fps
    assert np.allclose(raw["timestamp"], (raw["frame"] - 1) / fps, atol=1e-3)  # seconds
    assert raw.filter(regex=r"^AU\d+_r$").stack().dropna().between(0, 1).all()  # probabilities, not 0-5 intensities
    assert set(raw.filter(regex=r"^AU\d+_c$").stack().dropna()) <= {0, 1}


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
        assert {"Anger", "Neutral", "AU01", "input", "frame", "valence", "arousal"} <= set(header)
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
        back = read_results(tmp_path / f"{fmt}.csv", fmt)
        assert set(back.columns) == set(native.columns), fmt  # the format's empty places are dropped again
        back = back[list(native.columns)]
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
