"""The affectlab command line: data summary and score, their JSON contracts and their errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

from affectlab.cli import main
from affectlab.labels import AU_ABAW, EXPR_NAMES


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Written out here, independently of affectlab.metrics."""
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return 2 * cov / (x.var() + y.var() + (mx - my) ** 2)


@pytest.fixture
def known_answers(tmp_path: Path):
    """Labels with partial annotations and predictions whose scores are computed here by hand/sklearn."""
    rng = np.random.default_rng(0)
    n = 40
    img_dir = tmp_path / "data" / "faces"
    img_dir.mkdir(parents=True)
    names = [f"faces/{i:03d}.png" for i in range(n)]
    for name in names:
        Image.new("L", (8, 8)).save(tmp_path / "data" / name)
    au = rng.integers(0, 2, size=(n, 12)).astype(float)
    au[30:] = np.nan  # last 10 rows carry no AU label
    expr = rng.integers(0, 8, size=n)
    expr_lab = [EXPR_NAMES[e] if i % 4 else str(e) for i, e in enumerate(expr)]  # names and ids mixed
    expr_lab[:5] = [""] * 5  # first 5 rows carry no expression
    va = rng.uniform(-1, 1, size=(n, 2))
    va[10:20] = np.nan
    labels = pd.DataFrame({"path": names})
    for j, a in enumerate(AU_ABAW):
        labels[a] = au[:, j]
    labels["expression"] = expr_lab
    labels["valence"], labels["arousal"] = va[:, 0], va[:, 1]
    labels.to_csv(tmp_path / "data" / "labels.csv", index=False)

    au_prob = np.nan_to_num(au, nan=0.5) * 0.4 + rng.uniform(0, 0.6, size=(n, 12))  # overlapping classes
    expr_pred = np.where(rng.uniform(size=n) < 0.6, expr, rng.integers(0, 8, size=n))
    va_pred = np.clip(np.nan_to_num(va) * 0.7 + rng.normal(0, 0.2, size=(n, 2)), -1, 1)
    preds = pd.DataFrame({"path": [f"../data/{p}" for p in names]})  # other folder: paths resolve to the same files
    for j, a in enumerate(AU_ABAW):
        preds[f"AU{int(a[2:]):02d}"] = au_prob[:, j]  # OpenFace spelling
    preds["expression"] = [EXPR_NAMES[e] for e in expr_pred]
    preds["valence"], preds["arousal"] = va_pred[:, 0], va_pred[:, 1]
    (tmp_path / "out").mkdir()
    preds.to_csv(tmp_path / "out" / "preds.csv", index=False)

    au_rows = slice(0, 30)
    au_pred = (au_prob >= 0.5).astype(int)
    f1_au = [f1_score(au[au_rows, j], au_pred[au_rows, j]) for j in range(12)]
    e_rows = np.arange(5, n)
    va_rows = np.r_[0:10, 20:40]
    expected = {
        "n": {"au": 30, "expr": 35, "va": 30},
        "au_f1": f1_au,
        "f1_macro": f1_score(expr[e_rows], expr_pred[e_rows], average="macro"),
        "accuracy": accuracy_score(expr[e_rows], expr_pred[e_rows]),
        "ccc_valence": ccc(va[va_rows, 0], va_pred[va_rows, 0]),
        "ccc_arousal": ccc(va[va_rows, 1], va_pred[va_rows, 1]),
    }
    expected["au_prob"], expected["au_true"] = au_prob, au
    return tmp_path / "out" / "preds.csv", tmp_path / "data" / "labels.csv", expected


def test_score_known_answers(capsys, tmp_path, known_answers):
    preds, labels, expected = known_answers
    code, out, err = run(capsys, "score", str(preds), str(labels), "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["n"] == expected["n"]
    assert [s["au"]["f1"][a] for a in AU_ABAW] == pytest.approx(expected["au_f1"], abs=1e-9)
    assert s["au"]["f1_mean"] == pytest.approx(np.mean(expected["au_f1"]), abs=1e-9)
    assert s["expr"]["f1_macro"] == pytest.approx(expected["f1_macro"], abs=1e-9)
    assert s["expr"]["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
    assert s["va"]["ccc_valence"] == pytest.approx(expected["ccc_valence"], abs=1e-9)
    assert s["va"]["ccc_arousal"] == pytest.approx(expected["ccc_arousal"], abs=1e-9)
    assert s["P_AU"] == pytest.approx(np.mean(expected["au_f1"]), abs=1e-9)
    assert s["P_VA"] == pytest.approx((expected["ccc_valence"] + expected["ccc_arousal"]) / 2, abs=1e-9)
    assert s["P_MTL"] == pytest.approx(s["P_AU"] + s["P_EXPR"] + s["P_VA"], abs=1e-12)
    assert "Happiness" in out and "CCC" in out  # the table for people


def test_score_needs_no_images(capsys, tmp_path, known_answers):
    """Scoring pairs rows by path: labels whose images are not on disk (shared without them) score the same."""
    preds, labels, expected = known_answers
    for image in (labels.parent / "faces").iterdir():
        image.unlink()
    code, _, err = run(capsys, "score", str(preds), str(labels), "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["n"] == expected["n"] and "warning" not in err
    assert [s["au"]["f1"][a] for a in AU_ABAW] == pytest.approx(expected["au_f1"], abs=1e-9)
    assert s["va"]["ccc_valence"] == pytest.approx(expected["ccc_valence"], abs=1e-9)
    code, out, _ = run(capsys, "data", "summary", str(labels))  # reading for training still skips them
    assert code == 0 and "image file missing: 40" in out


def test_score_with_thresholds(capsys, tmp_path, known_answers):
    preds, labels, expected = known_answers
    thresholds = np.linspace(0.3, 0.8, 12)
    (tmp_path / "t.json").write_text(json.dumps({f"AU{int(a[2:]):02d}": t for a, t in zip(AU_ABAW, thresholds)}))
    code, _, err = run(capsys, "score", str(preds), str(labels), "--thresholds", str(tmp_path / "t.json"),
                       "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    au, prob = expected["au_true"][:30], expected["au_prob"][:30]
    want = [f1_score(au[:, j], prob[:, j] >= thresholds[j]) for j in range(12)]
    assert [s["au"]["f1"][a] for a in AU_ABAW] == pytest.approx(want, abs=1e-9)
    assert want != pytest.approx(expected["au_f1"])  # the thresholds changed the answer


def test_score_task_absent_from_labels(capsys, tmp_path, known_answers):
    preds, labels, _ = known_answers
    only_va = pd.read_csv(labels)[["path", "valence", "arousal"]]
    only_va.to_csv(labels, index=False)
    code, _, err = run(capsys, "score", str(preds), str(labels), "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    s = json.loads((tmp_path / "s.json").read_text())
    assert set(s) == {"n", "va", "P_VA"}


@pytest.mark.parametrize("problem", ["missing", "no-common", "bad-thresholds"])
def test_score_errors_are_one_line(capsys, tmp_path, known_answers, problem):
    preds, labels, _ = known_answers
    args = ["score", str(preds), str(labels)]
    if problem == "missing":
        args[1] = str(tmp_path / "nope.csv")
    elif problem == "no-common":
        pd.DataFrame({"path": ["elsewhere.png"], "valence": [0.1], "arousal": [0.2]}).to_csv(preds, index=False)
    else:
        (tmp_path / "t.json").write_text('{"AU1": 0.5}')
        args += ["--thresholds", str(tmp_path / "t.json")]
    code, out, err = run(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("affectlab: error: ") and "Traceback" not in err


def test_data_summary_json_contract(capsys, tmp_path, known_answers):
    _, labels, expected = known_answers
    code, out, err = run(capsys, "data", "summary", str(labels), "--json", str(tmp_path / "d.json"))
    assert code == 0, err
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["images"] == 40 and d["videos"] == 0
    assert d["au"]["labelled"] == expected["n"]["au"] and set(d["au"]["positives"]) == set(AU_ABAW)
    assert d["expr"]["labelled"] == expected["n"]["expr"] and sum(d["expr"]["counts"].values()) == 35
    assert d["va"]["labelled"] == expected["n"]["va"]
    assert isinstance(d["skipped"], dict)


def test_data_summary_missing_source(capsys, tmp_path):
    code, _, err = run(capsys, "data", "summary", str(tmp_path / "nothing-here"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nothing-here" in err


@pytest.mark.parametrize("name", ["ferplus", "affectnet", "ckplus"])
def test_data_summary_on_shared_sets(capsys, tmp_path, shared_data, name):
    rows = len(pd.read_csv(shared_data / name / "labels.csv"))
    code, out, err = run(capsys, "data", "summary", str(shared_data / name), "--json", str(tmp_path / "d.json"))
    assert code == 0, err
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["images"] + sum(d["skipped"].values()) == rows  # every CSV row is either read or accounted for
    assert d["images"] > 0.99 * rows


def test_console_script_installed():
    exe = Path(sys.executable).with_name("affectlab")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("affectlab ")


def test_data_summary_of_abaw_layout(capsys, tmp_path, abaw):
    abaw.annotate("AU_Set", "v1", ["1,0,0,0,0,0,1,0,0,0,0,0", "-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1", "0,0,0,0,0,0,0,0,0,0,0,0"])
    abaw.annotate("EXPR_Set", "v1", ["4", "4", "-1"], split="Validation_Set")
    abaw.annotate("VA_Set", "v2_left", ["0.5,0.1", "-5,-5"])
    abaw.frames("v1", [1, 2])
    abaw.frames("v2_left", [1, 2])
    code, out, err = run(capsys, "data", "summary", str(abaw.annotations), "--images", str(abaw.images),
                         "--json", str(tmp_path / "d.json"))
    assert code == 0, err
    d = json.loads((tmp_path / "d.json").read_text())
    # v1 train: frame 1 (AU); frame 2 no labels; frame 3 no image. v1 validation: frames 1, 2 (EXPR). v2_left: frame 1.
    assert (d["images"], d["videos"]) == (4, 2)
    assert d["au"]["labelled"] == 1 and d["au"]["positives"]["AU12"] == 1
    assert d["expr"]["counts"]["Happiness"] == 2 and d["va"]["labelled"] == 1
    assert d["skipped"]["image file missing"] == 1


def test_data_summary_bad_header_is_one_line(capsys, abaw):
    bad = abaw.annotate("VA_Set", "v1", ["0.1,0.2"], header="arousal,valence")
    code, _, err = run(capsys, "data", "summary", str(abaw.annotations))
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err


def test_models_table_json(capsys, tmp_path):
    code, out, err = run(capsys, "models", "mtl-baseline", "streaming", "--json", str(tmp_path / "m.json"))
    assert code == 0, err
    rows = json.loads((tmp_path / "m.json").read_text())
    assert [r["name"] for r in rows] == ["mtl-baseline", "streaming"]
    assert all(set(r) == {"name", "params", "gflops", "input_size"} for r in rows)
    assert rows[0]["params"] > 20e6 and 0.9 < rows[0]["gflops"] < 1.3  # ResNet50 at 112 px: 4.1 / 4
    assert "mtl-baseline" in out


def test_models_unknown_name(capsys):
    code, _, err = run(capsys, "models", "nope")
    assert code == 2 and "known:" in err and len(err.strip().splitlines()) == 1


def test_analyze_command(capsys, tmp_path, shared_data):
    media = shared_data / "media"
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG broken")
    code, out, err = run(capsys, "analyze", str(media / "single_face.mp4"), str(media / "multi_face.jpg"),
                         str(tmp_path / "corrupt.png"), "--out", str(tmp_path / "out"), "--detect-every", "3")
    assert code == 1  # one input failed; the others were analysed
    assert "single_face: faces in 72/72 frames (1 person tracked)" in out and "images: 5 faces in 1/1 images" in out
    errors = [line for line in err.splitlines() if line.startswith("affectlab: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"affectlab: error: {tmp_path / 'corrupt.png'}: cannot decode image")
    assert len(pd.read_csv(tmp_path / "out" / "images.csv")) == 5


def test_export_command(capsys, tmp_path):
    import torch

    from affectlab.models import create_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(create_model("mtl-baseline"), tmp_path / "m.safetensors", input_size=64,
                    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    code, out, err = run(capsys, "export", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.onnx"))
    assert code == 0, err
    assert (tmp_path / "m.onnx").is_file() and "checked against PyTorch" in out
    code, _, err = run(capsys, "export", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x.onnx"))
    assert code == 2 and "none.safetensors: no such checkpoint file" in err


def test_analyze_smooth_option(capsys, tmp_path, shared_data):
    video = shared_data / "media" / "single_face.mp4"
    code, out, err = run(capsys, "analyze", str(video), "--out", str(tmp_path), "--smooth", "--detect-every", "4")
    assert code == 0, err
    assert "no smoothing; using SMM's mu" in err and len(pd.read_csv(tmp_path / "single_face.csv")) == 72
    code, _, err = run(capsys, "analyze", str(video), "--out", str(tmp_path), "--smooth", "au=seven")
    assert code == 2 and "expected TASK=MU" in err and len(err.strip().splitlines()) <= 2


def test_analyze_precision_option(capsys, tmp_path):
    image = Path(__file__).resolve().parents[1] / "examples" / "media" / "multi_face.jpg"
    tables = {}
    for precision in ("fp32", "bf16"):
        code, out, err = run(capsys, "analyze", str(image), "--out", str(tmp_path / precision), "--precision", precision)
        assert code == 0, err
        tables[precision] = pd.read_csv(tmp_path / precision / "images.csv")
    assert len(tables["bf16"]) == len(tables["fp32"]) == 5
    diff = (tables["bf16"]["valence"] - tables["fp32"]["valence"]).abs()
    assert 0 < diff.max() < 0.2  # bf16 really ran, and stayed close
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "analyze", str(image), "--out", str(tmp_path), "--precision", "fp8")
    assert exit_.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err


def test_help_opens_with_a_whole_sentence(capsys):
    """``affectlab --help`` opened with a sentence cut at its semicolon."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    description = text.split("positional arguments")[0].split("...")[-1].strip()
    assert description.startswith("Facial action units") and description.endswith(".")
    assert ";" not in description


def test_export_accepts_default_for_the_bundled_model(capsys, tmp_path):
    """The README names the bundled model to export as ``default``."""
    code, out, err = run(capsys, "export", "default", "--out", str(tmp_path / "default.onnx"))
    assert code == 0, err
    assert (tmp_path / "default.onnx").is_file() and "checked against PyTorch" in out
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "affectlab export default" in readme


def test_analyze_detects_every_as_the_analyzer_does():
    """The CLI keeps its own copy of the default (its parser must not import the analysis stack)."""
    from affectlab.analyze.analyzer import DETECT_EVERY
    from affectlab.cli import build_parser
    from affectlab.cli.analyze import DETECT_EVERY as CLI_DEFAULT

    assert CLI_DEFAULT == DETECT_EVERY == build_parser().parse_args(["analyze", "x.mp4"]).detect_every


@pytest.mark.parametrize("problem", ["missing input", "out is a file", "bad smoothing"])
def test_analyze_checks_its_arguments_before_the_model_loads(capsys, tmp_path, monkeypatch, problem):
    """A mistake in the arguments ends at once, not after the 5-7 s the model takes to load."""
    from affectlab.inference import backends

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(backends, "open_backend", no_model)
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    (tmp_path / "taken").write_text("a file")
    args = {"missing input": [str(tmp_path / "nope.jpg")],
            "out is a file": [str(tmp_path / "face.png"), "--out", str(tmp_path / "taken")],
            "bad smoothing": [str(tmp_path / "face.png"), "--smooth", "au=seven"]}[problem]
    code, _, err = run(capsys, "analyze", *(args if "--out" in args else [*args, "--out", str(tmp_path / "o")]))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    if problem == "out is a file":
        assert err.strip() == (f"affectlab: error: {tmp_path / 'taken'}: the output folder (--out) is a file; "
                               "give a folder (it is created if missing)")


def test_analyze_formats_are_the_writers():
    from affectlab.analyze.formats import FORMATS
    from affectlab.cli import build_parser

    analyze = next(a for a in build_parser()._subparsers._group_actions[0].choices["analyze"]._actions
                   if a.dest == "format")
    assert tuple(analyze.choices) == FORMATS and analyze.default == "native"


@pytest.mark.parametrize("argv, overrides", [
    (["train", "r.yaml", "a=1", "--out", "d", "b=2"], ["a=1", "b=2"]),
    (["train", "r.yaml", "--out", "d", "--resume", "a=1", "b.c=[1, 2]"], ["a=1", "b.c=[1, 2]"]),
    (["train", "r.yaml", "a=1"], ["a=1"]),
])
def test_train_overrides_may_follow_its_options(argv, overrides):
    from affectlab.cli import parse_args

    args = parse_args(argv)
    assert args.recipe == "r.yaml" and args.overrides == overrides and args.out == ("d" if "--out" in argv else None)


def test_leftover_arguments_are_refused_in_one_line(capsys):
    from affectlab.cli import parse_args

    for argv in (["train", "r.yaml", "--out", "d", "--bogus"], ["analyze", "x.jpg", "--out", "d", "k=v"]):
        with pytest.raises(SystemExit) as stop:
            parse_args(argv)
        assert stop.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_openface_format_writes_landmarks_unless_told_not_to(capsys, tmp_path):
    """OpenFace's files always hold landmarks and pose: --format openface turns --landmarks on; with
    --no-landmarks their columns are there (py-feat's reader needs them) but empty."""
    image = Path(__file__).resolve().parents[1] / "examples" / "media" / "single_face.jpg"
    tables = {}
    for name, extra in (("on", []), ("off", ["--no-landmarks"])):
        code, _, err = run(capsys, "analyze", str(image), "--out", str(tmp_path / name), "--format", "openface", *extra)
        assert code == 0, err
        tables[name] = pd.read_csv(tmp_path / name / "images.csv", skipinitialspace=True)
    assert tables["on"][["x_0", "y_67", "pose_Rx", "gaze_angle_x"]].notna().all().all()
    assert tables["off"][["x_0", "pose_Rx"]].isna().all().all() and tables["off"]["AU01_r"].notna().all()


def test_engine_options_without_ray_engine_are_refused(capsys, tmp_path):
    image = Path(__file__).resolve().parents[1] / "examples" / "media" / "single_face.jpg"
    code, _, err = run(capsys, "analyze", str(image), "--out", str(tmp_path), "--workers", "2")
    assert code == 2 and err == "affectlab: error: --address and --workers go with --engine ray\n"
