"""Analyzer and run_analysis on the real sample media: rows, success flags, face ids, errors, files."""
from __future__ import annotations


from itertools import islice

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.results import result_columns
from affectlab.analyze.run import run_analysis
from affectlab.errors import AffectlabError, DataError


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer()  # the bundled default model


@pytest.fixture(scope="module")
def media(shared_data):
    return shared_data / "media"


def test_single_face_image(analyzer, media):
    df = analyzer.analyze(media / "single_face.jpg")
    assert list(df.columns) == result_columns(analyzer.schema)
    assert len(df) == 1 and df["success"].tolist() == [1] and df["frame"].tolist() == [-1]
    row = df.iloc[0]
    assert 150 < row["x"] < 250 and 150 < row["width"] < 260 and row["confidence"] > 0.9
    probs = df[list(analyzer.schema.expr_names)].to_numpy(dtype=float)
    assert np.allclose(probs.sum(1), 1, atol=1e-3) and row["expression"] in analyzer.schema.expr_names
    assert -1 <= row["valence"] <= 1 and set(df.filter(like="_c").iloc[0]) <= {0, 1}


def test_several_faces_and_no_face(analyzer, media):
    many = analyzer.analyze(media / "multi_face.jpg")
    assert len(many) == 5 and many["face_id"].tolist() == list(range(5)) and (many["success"] == 1).all()
    none = analyzer.analyze(media / "free-mountain-vector-01.jpg")
    assert len(none) == 1 and none["success"].tolist() == [0] and none["face_id"].tolist() == [-1]
    assert none[["AU01", "valence", "expression"]].isna().all(axis=None)


def test_grayscale_and_alpha_images(analyzer, media, tmp_path):
    Image.open(media / "single_face.jpg").convert("L").save(tmp_path / "gray.png")
    gray = analyzer.analyze(tmp_path / "gray.png")
    assert gray["success"].tolist() == [1]
    alpha = analyzer.analyze(media / "Image_with_alpha.png")
    assert len(alpha) >= 1 and alpha["success"].iloc[0] == 1
    big_gray = analyzer.analyze(media / "BWPictureHuman.jpg")  # 2560x1912 L: decodes and runs (MTCNN misses the face)
    assert len(big_gray) >= 1


def test_video_rows_ids_and_stride(analyzer, media):
    df = analyzer.analyze(media / "single_face.mp4")
    assert df["frame"].tolist() == list(range(1, 73)) and (df["success"] == 1).all()
    assert df["face_id"].nunique() == 1 and df["timestamp"].is_monotonic_increasing
    strided = Analyzer(analyzer.backend, stride=3, detect_every=2).analyze(media / "single_face.mp4")
    assert strided["frame"].tolist() == list(range(1, 73, 3)) and strided["face_id"].nunique() == 1
    both = df.set_index("frame").loc[strided["frame"], ["x", "y"]].to_numpy(dtype=float)
    assert np.abs(both - strided[["x", "y"]].to_numpy(dtype=float)).max() < 40  # tracked boxes stay on the face


def test_refined_tracking_agrees_with_detecting_every_frame(analyzer, media):
    """The default (full detection every 6th frame, O-Net refinement between) against the full
    detector on every frame, on real faces. Measured on single_face.mp4 / WolfgangLanger_Pexels.mp4:
    mean |difference| of AU and expression probabilities 0.017 / 0.025, of VA 0.030 / 0.042, the same
    expression on 93 % / 87 % of frames: MTCNN's landmarks move with the window it is given, and the
    model with them (refined landmarks score as well against AffectNet's annotations; BENCHMARKS.md)."""
    tracked = analyzer.analyze(media / "single_face.mp4")
    every = Analyzer(analyzer.backend, detect_every=1).analyze(media / "single_face.mp4")
    assert analyzer.detect_every == 6 and (tracked["success"] == every["success"]).all()
    for columns, tolerance in (([c for c in tracked if c.startswith("AU") and not c.endswith("_c")], 0.03),
                               (["valence", "arousal"], 0.05)):
        assert np.abs(tracked[columns].to_numpy() - every[columns].to_numpy()).mean() < tolerance
    assert (tracked["expression"] == every["expression"]).mean() >= 0.85
    assert np.abs(tracked[["x", "y"]].to_numpy() - every[["x", "y"]].to_numpy()).max() < 20


def test_hevc_video_with_and_without_face(analyzer, media):
    df = analyzer.analyze(media / "face_noface.mov")
    assert df["frame"].tolist() == list(range(1, 170))  # every frame has a row, face or not
    found = df[df["success"] == 1]
    assert 0 < len(found) < len(df) and found["face_id"].nunique() <= 2
    assert (df.loc[df["success"] == 0, "face_id"] == -1).all()


def test_no_face_video(analyzer, media):
    df = analyzer.analyze(media / "no_face.mp4")
    assert len(df) == 95 and (df["success"] == 0).all()


def test_crops_mode_skips_detection(analyzer, shared_data):
    crops = Analyzer(analyzer.backend, faces="crops")
    path = sorted((shared_data / "affectnet" / "images").iterdir())[0]
    df = crops.analyze(path)
    assert df[["x", "y", "width", "height", "confidence", "success"]].iloc[0].tolist() == [0, 0, 224, 224, 1, 1]


def test_flip_averages_a_face_and_its_mirror_image(analyzer, shared_data, tmp_path):
    """With flip, a face crop and its mirror image get the same outputs (each is the mean over both);
    without, they differ; and the average is that of the two plain predictions."""
    import copy
    from dataclasses import replace

    from affectlab.models.meta import TEST_TIME_FLIP

    path = sorted((shared_data / "affectnet" / "images").iterdir())[0]
    image = np.asarray(Image.open(path).convert("RGB"))
    Image.fromarray(image[:, ::-1]).save(tmp_path / "mirrored.png")
    Image.fromarray(image).save(tmp_path / "face.png")
    aus = [c for c in result_columns(analyzer.schema) if c.startswith("AU") and not c.endswith("_c")]
    columns = [*aus, *analyzer.schema.expr_names, "valence", "arousal"]
    # resized crops (no crop_framing) are exactly mirror-symmetric: the crop of the mirror image is the
    # crop's mirror image, which a similarity fit to the (slightly asymmetric) template is not
    resized = copy.copy(analyzer.backend)
    resized.meta = replace(resized.meta, extra={**resized.meta.extra,
                                                "crop": {**resized.meta.extra.get("crop", {}), "framing": None}})
    run = {flip: [Analyzer(resized, faces="crops", flip=flip).analyze(tmp_path / name)[columns]
                  .to_numpy(float)[0] for name in ("face.png", "mirrored.png")] for flip in (False, True)}
    assert np.abs(run[False][0] - run[False][1]).max() > 1e-3
    assert np.allclose(run[True][0], run[True][1], atol=1e-5)
    assert np.allclose(run[True][0][-2:], (run[False][0][-2:] + run[False][1][-2:]) / 2, atol=1e-5)  # VA: the mean
    flagged = copy.copy(analyzer.backend)
    flagged.meta = replace(flagged.meta, extra={**flagged.meta.extra, TEST_TIME_FLIP: True})
    assert Analyzer(flagged).flip and not Analyzer(flagged, flip=False).flip  # the checkpoint's, unless told


def test_bad_options():
    with pytest.raises(AffectlabError, match="faces must be"):
        Analyzer(faces="guess")


def test_run_keeps_going_past_bad_inputs(analyzer, media, tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 broken")
    data = (media / "WolfgangLanger_Pexels.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.3)])
    out = tmp_path / "out"
    report = run_analysis(analyzer, [media / "single_face.jpg", tmp_path / "corrupt.jpg", tmp_path / "cut.mp4",
                                     tmp_path / "missing.mp4"], out, progress=False, abaw=True)
    failures = "\n".join(report.failures)
    assert len(report.failures) == 3 and "corrupt.jpg: cannot decode image" in failures
    assert "cut.mp4" in failures and "kept the" in failures and "missing.mp4: no such file" in failures
    images = pd.read_csv(out / "images.csv")
    assert images["input"].tolist() == [str(media / "single_face.jpg")]
    cut = pd.read_csv(out / "cut.csv")  # the frames before the break are kept
    assert len(cut) > 50 and cut["frame"].tolist() == list(range(1, len(cut) + 1))
    assert (out / "abaw" / "AU" / "cut.txt").is_file() and (out / "abaw" / "mtl.txt").is_file()


def test_abaw_files_have_one_line_per_frame(analyzer, media, tmp_path):
    run_analysis(analyzer, [media / "single_face.mp4"], tmp_path, abaw=True, progress=False)
    au = (tmp_path / "abaw" / "AU" / "single_face.txt").read_text().splitlines()
    expr = (tmp_path / "abaw" / "EXPR" / "single_face.txt").read_text().splitlines()
    va = (tmp_path / "abaw" / "VA" / "single_face.txt").read_text().splitlines()
    assert au[0] == ",".join(analyzer.schema.au_names) and len(au) == 73
    assert all(set(line.split(",")) <= {"0", "1"} for line in au[1:])
    assert expr[0] == ",".join(analyzer.schema.expr_names) and all(0 <= int(e) <= 7 for e in expr[1:])
    assert va[0] == "valence,arousal" and all(-1 <= float(x) <= 1 for line in va[1:] for x in line.split(","))


def test_skip_existing_redoes_only_unfinished(analyzer, media, tmp_path):
    first = run_analysis(analyzer, [media / "single_face.mp4", media / "single_face.jpg"], tmp_path, progress=False)
    assert not first.failures
    (tmp_path / "single_face.csv").rename(tmp_path / "single_face.csv.partial")  # as if interrupted
    again = run_analysis(analyzer, [media / "single_face.mp4", media / "single_face.jpg"], tmp_path,
                         skip_existing=True, progress=False)
    assert not again.failures and again.skipped == [str(media / "single_face.jpg")]  # the partial video was redone
    assert len(pd.read_csv(tmp_path / "single_face.csv")) == 72
    assert len(pd.read_csv(tmp_path / "images.csv")) == 1  # the image was not analysed twice
    last = run_analysis(analyzer, [media / "single_face.mp4"], tmp_path, skip_existing=True, progress=False)
    assert last.skipped == [str(media / "single_face.mp4")] and not last.written


def test_face_less_clip_abaw_is_a_warning(analyzer, media, tmp_path):
    report = run_analysis(analyzer, [media / "no_face.mp4"], tmp_path, abaw=True, progress=False)
    assert not report.failures and report.warnings == [
        f"no_face: no face was found in {media / 'no_face.mp4'}; its ABAW files hold the neutral default "
        "on every frame"]
    assert len(pd.read_csv(tmp_path / "no_face.csv")) == 95
    assert len((tmp_path / "abaw" / "VA" / "no_face.txt").read_text().splitlines()) == 96


def test_analyze_warns_and_keeps_rows_of_a_truncated_video(analyzer, media, tmp_path):
    data = (media / "WolfgangLanger_Pexels.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.3)])
    with pytest.warns(UserWarning, match="cut.mp4"):
        df = analyzer.analyze(tmp_path / "cut.mp4")
    assert len(df) > 50
    with pytest.raises(DataError):
        analyzer.analyze(tmp_path / "nothing.mp4")


@pytest.fixture(scope="module")
def imagenet_backend(shared_data, tmp_path_factory):
    """A model whose outputs move with the face (ImageNet features, random heads): enough to see smoothing."""
    import torch

    from affectlab.inference.backends import open_backend
    from affectlab.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("mtl-baseline", backbone_weights=shared_data.parent / "weights" / "mobilenet_v2-b0353104.pth")
    path = save_checkpoint(model, tmp_path_factory.mktemp("m") / "m.safetensors", input_size=112,
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    return open_backend(path)


def test_smoothing_follows_each_face_track(imagenet_backend, media):
    """SMM eq. 9 with mu = 0 changes nothing; a large mu damps frame-to-frame changes of each track."""
    analyzer = Analyzer(imagenet_backend)
    raw = analyzer.analyze(media / "single_face.mp4")
    same = Analyzer(analyzer.backend, smooth={"au": 0, "expr": 0, "va": 0}).analyze(media / "single_face.mp4")
    np.testing.assert_allclose(same["valence"], raw["valence"], atol=2e-4)
    smooth = Analyzer(analyzer.backend, smooth={"au": 9, "expr": 9, "va": 9}).analyze(media / "single_face.mp4")
    jitter = lambda df, c: np.abs(np.diff(df[c].to_numpy(dtype=float))).mean()  # noqa: E731
    for column in ("valence", "AU12", "Happiness"):
        assert jitter(smooth, column) < jitter(raw, column)
    assert smooth.loc[0, "valence"] == pytest.approx(raw.loc[0, "valence"], abs=2e-4)  # Λ_0 = ε_1
    still = Analyzer(analyzer.backend, smooth={"va": 9}).analyze(media / "single_face.jpg")
    assert still["valence"].iloc[0] == pytest.approx(analyzer.analyze(media / "single_face.jpg")["valence"].iloc[0], abs=2e-4)


def test_smoothing_needs_the_pytorch_model(analyzer):
    from affectlab.inference.backends import OnnxBackend

    assert isinstance(analyzer.backend, OnnxBackend)  # the bundled model on the CPU
    with pytest.raises(AffectlabError, match="PyTorch checkpoint"):
        Analyzer(analyzer.backend, smooth={"au": 7})
    assert Analyzer(smooth={"au": 7}).smoother is not None  # the bundled model then runs on PyTorch


def test_stream_of_decoded_frames_gives_the_video_files_rows(analyzer, media):
    """Arrays from another decoder, in chunks of any size, give the rows of the file: tracking, the
    detector every 6th frame and refinement in between are the same code."""
    from affectlab.analyze.media import iter_video, video_info

    clip = media / "WolfgangLanger_Pexels.mp4"
    file = analyzer.analyze(clip).head(150)
    arrays = (f.image for f in islice(iter_video(clip), 150))
    small_chunks = Analyzer(analyzer.backend, chunk_frames=5)  # a live loop wants rows soon
    streamed = pd.concat(small_chunks.stream(arrays, fps=video_info(clip).fps, name=str(clip)), ignore_index=True)
    pd.testing.assert_frame_equal(streamed.drop(columns="timestamp"), file.drop(columns="timestamp"))
    np.testing.assert_allclose(streamed["timestamp"], file["timestamp"], atol=1e-6)


def test_stream_keeps_the_frames_before_a_decoder_error(analyzer, media):
    from affectlab.analyze.media import iter_video

    def broken():
        yield from (f.image for f in islice(iter_video(media / "single_face.mp4"), 10))
        raise DataError("camera", "disconnected")

    rows = []
    with pytest.raises(DataError, match="disconnected"):
        for chunk in analyzer.stream(broken()):
            rows.append(chunk)
    assert pd.concat(rows)["frame"].tolist() == list(range(1, 11)) and pd.concat(rows)["timestamp"].isna().all()
    with pytest.raises(AffectlabError, match="frame 2 is not an RGB uint8 image"):
        list(analyzer.stream([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)]))


def test_landmarks_add_geometry_columns_and_change_nothing_else(analyzer):
    """--landmarks: every face gets its 68 points (inside its box), pose and gaze; the rest is as without."""
    from pathlib import Path

    from affectlab.faces.geometry import GEOMETRY_COLUMNS

    photo = Path(__file__).resolve().parents[2] / "examples" / "media" / "multi_face.jpg"
    plain = analyzer.analyze(photo)
    shaped = Analyzer(analyzer.backend, landmarks=True).analyze(photo)
    assert list(shaped.columns) == [*plain.columns, *GEOMETRY_COLUMNS]
    pd.testing.assert_frame_equal(shaped[plain.columns], plain)
    faces = shaped[shaped["success"] == 1]
    assert len(faces) >= 2 and np.isfinite(faces[list(GEOMETRY_COLUMNS)].to_numpy(float)).all()
    for _, face in faces.iterrows():
        xs, ys = face[[f"x_{i}" for i in range(68)]].astype(float), face[[f"y_{i}" for i in range(68)]].astype(float)
        pad = 0.25 * face["width"]
        assert face["x"] - pad <= xs.median() <= face["x"] + face["width"] + pad
        assert face["y"] - pad <= ys.median() <= face["y"] + face["height"] + pad
        assert abs(face["pose_Rz"]) < 0.8 and face["pose_Tz"] > 0  # upright faces in front of the camera


def test_landmarks_of_a_faceless_video_are_empty_columns(analyzer, media):
    df = Analyzer(analyzer.backend, landmarks=True).analyze(media / "no_face.mp4")
    assert (df["success"] == 0).all() and df[["x_0", "pose_Rx", "gaze_angle_x"]].isna().all().all()


def test_mesh_adds_the_full_mesh_whose_ibug_subset_is_the_landmarks(analyzer):
    from pathlib import Path

    from affectlab.faces.geometry import GEOMETRY_COLUMNS, MESH_COLUMNS
    from affectlab.faces.mesh import to_ibug68

    photo = Path(__file__).resolve().parents[2] / "examples" / "media" / "single_face.jpg"
    df = Analyzer(analyzer.backend, mesh=True).analyze(photo)
    assert list(df.columns[-len(MESH_COLUMNS) - len(GEOMETRY_COLUMNS):]) == [*GEOMETRY_COLUMNS, *MESH_COLUMNS]
    face = df[df["success"] == 1].iloc[0]
    assert np.isfinite(face[list(MESH_COLUMNS)].to_numpy(float)).all()
    mesh = np.stack([face[[f"mesh_{a}_{i}" for i in range(468)]].to_numpy(float) for a in "xy"], axis=1)
    ibug = to_ibug68(mesh)
    assert np.allclose(face[[f"x_{k}" for k in range(68)]].to_numpy(float), ibug[:, 0])
    assert np.allclose(face[[f"y_{k}" for k in range(68)]].to_numpy(float), ibug[:, 1])
