"""Re-identification through the Analyzer and the command line: face_id kept in a stream, person_id
across inputs (--reid across), the columns in every table format, bad thresholds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reid_clips import MIDDLE, compose, hold, leave_and_return, video_person

from affectlab.analyze.analyzer import Analyzer
from affectlab.analyze.formats import to_format
from affectlab.cli import main
from affectlab.errors import AffectlabError
from affectlab.faces import MTCNN


@pytest.fixture(scope="module")
def people() -> dict[str, list[np.ndarray]]:
    detector = MTCNN()
    return {"A": video_person(detector, "single_face.mp4", [0, 60]),
            "B": video_person(detector, "WolfgangLanger_Pexels.mp4", [0, 300])}


def ids(rows: pd.DataFrame) -> list[int]:
    return rows.loc[rows["success"] == 1, "face_id"].astype(int).tolist()


def test_stream_keeps_the_returning_persons_face_id(people):
    """A, 12 empty frames, A elsewhere, 12 empty frames, B: ids 0 0 0 0 0 0 1 1 1 (box tracking alone: 0 1 2)."""
    frames = compose(leave_and_return(people["A"], people["B"]))
    with_reid = pd.concat(Analyzer(detect_every=1).stream(iter(frames), fps=10))
    without = pd.concat(Analyzer(detect_every=1, reid="off").stream(iter(frames), fps=10))
    assert ids(with_reid) == [0] * 6 + [1] * 3 and ids(without) == [0] * 3 + [1] * 3 + [2] * 3
    assert "person_id" not in with_reid.columns


def test_reid_across_gives_one_person_id_per_person_across_inputs(people, tmp_path):
    analyzer = Analyzer(detect_every=1, reid="across")
    first = pd.concat(analyzer.stream(iter(compose(hold("B", people["B"][0], MIDDLE, 3))), name="one"))
    second = pd.concat(analyzer.stream(iter(compose(leave_and_return(people["A"], people["B"]))), name="two"))
    photo = tmp_path / "a.png"
    Image.fromarray(compose(hold("A", people["A"][0], MIDDLE, 1))[0]).save(photo)
    image = analyzer.analyze(photo)
    b = set(first["person_id"].dropna())
    a = set(second.loc[second["face_id"] == 0, "person_id"]) | set(image["person_id"])
    assert len(b) == 1 and len(a) == 1 and a != b
    assert set(second.loc[second["face_id"] == 1, "person_id"]) == b
    assert second.loc[second["success"] == 0, "person_id"].isna().all()
    assert list(image.columns).index("person_id") == list(image.columns).index("arousal") + 1


@pytest.mark.parametrize("fmt", ["openface", "feat"])
def test_person_id_goes_where_other_extra_columns_go(fmt):
    from affectlab.analyze.results import finalize
    from affectlab.labels import DEFAULT_SCHEMA

    table = finalize(pd.DataFrame({"input": ["v"], "frame": [1], "face_id": [0], "success": [1], "person_id": [3]}),
                     DEFAULT_SCHEMA, person=True)
    out = to_format(table, fmt)
    assert out["person_id"].tolist() == [3]
    tail = ["person_id", "input", "frame"] if fmt == "feat" else ["person_id"]  # py-feat: input and frame last
    assert list(out.columns)[-len(tail):] == tail


def test_reid_across_needs_detected_faces():
    with pytest.raises(AffectlabError, match="needs detected faces"):
        Analyzer(faces="crops", reid="across")


@pytest.mark.parametrize("value", ["0", "2", "-0.5", "nan", "x"])
def test_a_reid_threshold_outside_0_2_is_refused_in_one_line(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["analyze", str(tmp_path), "--reid-threshold", value])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert e.value.code == 2 and len(errors) == 1 and "--reid-threshold" in errors[0]


def test_the_cli_threshold_default_is_dlibs_as_the_analyzer_has_it():
    """The CLI keeps its own copy (its parser must not import the analysis stack)."""
    from affectlab.cli import build_parser
    from affectlab.faces.descriptor import SAME_PERSON

    args = build_parser().parse_args(["analyze", "x.mp4"])
    assert args.reid_threshold == SAME_PERSON and args.reid == "video"
    assert build_parser().parse_args(["analyze", "x.mp4", "--no-reid"]).reid == "off"


def test_no_reid_and_reid_across_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["analyze", str(tmp_path), "--no-reid", "--reid", "across"])
    assert "not allowed with" in capsys.readouterr().err


def test_smoothing_starts_afresh_when_a_face_returns(people):
    """SMM eq. 9 runs along a track: a returning face keeps its face_id but its first frame back is
    smoothed from itself (Λ_0 = ε_1), as without smoothing, not from the frames before it left."""
    frames = compose(leave_and_return(people["A"], people["B"]))
    smoothed = pd.concat(Analyzer(detect_every=1, smooth={"expr": 9, "va": 9}).stream(iter(frames)))
    faces = smoothed[smoothed["success"] == 1].reset_index(drop=True)
    assert faces["face_id"].tolist() == [0] * 6 + [1] * 3
    alone = pd.concat(Analyzer(detect_every=1, smooth={"expr": 9, "va": 9}).stream(iter(frames[15:18])))
    np.testing.assert_allclose(faces.loc[3, ["valence", "arousal"]].astype(float),
                               alone.loc[alone["success"] == 1, ["valence", "arousal"]].iloc[0].astype(float), atol=1e-5)
