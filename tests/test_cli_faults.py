"""The fault campaign: every command of the README against generated bad inputs.

Each case runs one command line in-process and asserts its outcome: the exit status (2 when nothing
could be done, 1 when other inputs of the call were still done, 0 when the input is fine after all),
the error lines (one per bad input, each naming the file or key and what is wrong), no traceback, and
where the call also held good inputs, that they were done. Inputs are a few pixels and a few frames,
and the model is a small random checkpoint, so the whole campaign takes seconds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import bad_inputs as bad
from affectlab.cli import main
from affectlab.models import create_model, save_checkpoint
from train.train_world import World, build_world, mini_recipe

AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


@dataclass
class Env:
    """The generated world of one test: a folder, a small model, a tiny labelled world and a recipe."""

    root: Path
    model: Path
    world: World
    recipe: Path
    held: Any = None  # a lock the test holds as another run would (released after the test)

    def __call__(self, name: str) -> Path:
        """A fresh path under the test's folder."""
        return self.root / name

    def analyze(self, *inputs: Path | str, out: str | Path = "out", model: Path | None = None,
                extra: tuple[str, ...] = ()) -> list[str]:
        return ["analyze", *map(str, inputs), "--out", str(self(out)), "--model", str(model or self.model),
                "--quiet", *extra]

    def train(self, *overrides: str, out: str | Path = "run", recipe: Path | None = None) -> list[str]:
        return ["train", str(recipe or self.recipe), *overrides, "--out", str(self(out))]

    @property
    def labelled(self) -> str:
        return str(self.world.labelled)

    def images_done(self, *images: Path, out: str | Path = "out") -> bool:
        table = pd.read_csv(self(out) / "images.csv")
        return set(table["input"]) == {str(i) for i in images}


@dataclass(frozen=True)
class Case:
    """One bad input: the command it is given to, the command line, the exit status and the text of
    each error line."""

    command: str
    name: str
    argv: Callable[[Env], list[str]]
    status: int
    errors: tuple[str, ...] = ()  # text that each "affectlab: error:" line holds, in order
    done: Callable[[Env], bool] | None = None  # the good inputs of the same call were done
    stderr: tuple[str, ...] = field(default=())  # further text on stderr (warnings, notes)


def _abaw(env: Env, header: str, rows: list[str], task: str = "VA_Set") -> Path:
    """An ABAW annotation root with one file of ``task``."""
    root = env("abaw")
    path = root / task / "Train_Set" / "v1.txt"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return root


def _manifest(env: Env, name: str, rows: dict[str, list]) -> Path:
    for p in rows["path"]:
        bad.good_image(env.root / p)
    pd.DataFrame(rows).to_csv(env(name), index=False)
    return env(name)


def _checkpoint_faults(env: Env, kind: str) -> Path:
    if kind == "damaged":
        return bad.truncated_file(env.model, env("damaged.safetensors"), keep=0.01)
    if kind == "foreign":  # a torch pickle renamed
        torch.save({"w": torch.zeros(2)}, env("foreign.safetensors"))
        return env("foreign.safetensors")
    if kind == "code":
        return bad.code_running_pickle(env("evil.safetensors"), env("code-ran"))
    if kind == "onnx":
        return bad.plain_pickle(env("evil.onnx"), env("code-ran"))
    if kind == "tensor missing":
        return bad.checkpoint_without_a_tensor(env.model, env("missing.safetensors"))
    raise ValueError(kind)


def _not_writable(env: Env) -> Path:
    """A folder this process cannot write to: a read-only one, or for root (who writes anywhere) /sys."""
    import os

    folder = env("locked")
    folder.mkdir()
    folder.chmod(0o500)
    return folder if not os.access(folder, os.W_OK) else Path("/sys")


def _text(env: Env, name: str, text: str) -> Path:
    env(name).parent.mkdir(parents=True, exist_ok=True)
    env(name).write_text(text)
    return env(name)


def _folder(env: Env, name: str) -> Path:
    env(name).mkdir()
    return env(name)


def _without_images(env: Env) -> Path:
    """A manifest whose every image is gone."""
    labels = _manifest(env, "gone.csv", {"path": ["a.png"], "valence": [0.1], "arousal": [0.2]})
    (env.root / "a.png").unlink()
    return labels


def _damaged_run(env: Env) -> Path:
    """A run folder whose recipe.yaml was cut mid-way."""
    _text(env, "run/recipe.yaml", "name: [mini,\n")
    return env("run")


def _fifo(env: Env, name: str) -> Path:
    """A named pipe: reading it would wait for a writer that never comes."""
    import os

    os.mkfifo(env(name))
    return env(name)


def _busy_out(env: Env) -> Path:
    """An output folder another analyze run is writing to (its lock held, as that run holds it)."""
    from affectlab.analyze.lock import OutputLock

    env("busy").mkdir()
    env.held = OutputLock(env("busy"))
    env.held.acquire()
    return env("busy")


def _semicolons(env: Env) -> Path:
    """A labels file saved by a spreadsheet that writes ';' between cells."""
    bad.good_image(env("a.png"))
    return _text(env, "semi.csv", "path;valence;arousal\na.png;0.1;0.2\n")


def _elsewhere(env: Env) -> Path:
    """A predictions table whose image paths match none of the labels' paths."""
    return _manifest(env, "pred.csv", {"path": ["other/a.png"], "valence": [0.1], "arousal": [0.2]})


def good(env: Env) -> Path:
    return bad.good_image(env("good.png"))


def good_done(env: Env) -> bool:
    return env.images_done(env("good.png"))


def _native_table(env: Env) -> Path:
    """An output folder holding an images.csv that analyze wrote in the native format."""
    assert main(env.analyze(good(env), out="earlier")) == 0
    return env("earlier")


def nan_labels(env: Env) -> str:
    return str(_manifest(env, "nan.csv", {"path": ["a.png"], "valence": ["nan"], "arousal": [0.1]}))


def no_code_ran(env: Env) -> bool:
    return not env("code-ran").exists()


ANALYZE = [
    Case("analyze", "zero-byte image alone", lambda e: e.analyze(bad.zero_byte(e("empty.jpg"))),
         2, ("empty.jpg: cannot decode image",)),
    Case("analyze", "text file named .jpg", lambda e: e.analyze(bad.text_as_image(e("notes.jpg")), good(e)),
         1, ("notes.jpg: cannot decode image",), good_done),
    Case("analyze", "truncated JPEG", lambda e: e.analyze(bad.truncated_jpeg(e("half.jpg"))),
         2, ("half.jpg: cannot decode image",)),
    Case("analyze", "16-bit PNG", lambda e: e.analyze(bad.sixteen_bit_png(e("deep.png"))),
         0, (), lambda e: e.images_done(e("deep.png"))),
    Case("analyze", "1x1 image", lambda e: e.analyze(bad.one_pixel(e("dot.png"))),
         0, (), lambda e: e.images_done(e("dot.png"))),
    Case("analyze", "huge image (decompression bomb)", lambda e: e.analyze(bad.huge_png(e("bomb.png")), good(e)),
         1, ("bomb.png: image too large to analyse",), good_done),
    Case("analyze", "audio-only video", lambda e: e.analyze(bad.audio_only(e("sound.mp4")), good(e)),
         1, ("sound.mp4: file has no video stream",), good_done),
    Case("analyze", "truncated mp4 (index lost)", lambda e: e.analyze(bad.truncated_video(e("cut.mp4"))),
         2, ("cut.mp4: cannot open video",)),
    Case("analyze", "truncated mkv (frames kept)",
         lambda e: e.analyze(bad.truncated_file(bad.video(e("whole.mkv"), n=40), e("cut.mkv"), keep=0.6)),
         1, ("cut.mkv: video ends at",), lambda e: len(pd.read_csv(e("out") / "cut.csv")) > 5),
    Case("analyze", "empty folder", lambda e: e.analyze(_folder(e, "nothing")),
         2, ("nothing: folder holds no image or video files",)),
    Case("analyze", "glob matching nothing", lambda e: e.analyze(str(e("*.gif")), good(e)),
         1, ("*.gif: pattern matches no image or video files",), good_done),
    Case("analyze", "missing path", lambda e: e.analyze(e("gone.jpg"), good(e)),
         1, ("gone.jpg: no such file or folder",), good_done),
    Case("analyze", "a named pipe (FIFO)", lambda e: e.analyze(_fifo(e, "stream.mp4"), good(e)),
         1, ("stream.mp4: is a named pipe (FIFO), not a regular file or folder",), good_done),
    Case("analyze", "a device", lambda e: e.analyze("/dev/null", good(e)),
         1, ("/dev/null: is a character device, not a regular file or folder",), good_done),
    Case("analyze", "another run writing to --out", lambda e: e.analyze(good(e), out=_busy_out(e)),
         2, ("busy: another affectlab analyze (process",), lambda e: not (e("busy") / "images.csv").exists()),
    Case("analyze", "checkpoint with a tensor missing",
         lambda e: e.analyze(good(e), model=_checkpoint_faults(e, "tensor missing")),
         2, ("missing.safetensors: weights do not fit model 'mtl-baseline': 1 missing",)),
    Case("analyze", "spaces and non-ASCII in paths",
         lambda e: e.analyze(bad.good_image(e("my photos") / "Zoë à la plage.png"), out="sortie é"),
         0, (), lambda e: e.images_done(e("my photos") / "Zoë à la plage.png", out="sortie é")),
    Case("analyze", "--out is a file", lambda e: e.analyze(good(e), out=_text(e, "taken", "x")),
         2, ("taken: the output folder (--out) is a file",)),
    Case("analyze", "--out not writable", lambda e: e.analyze(good(e), out=_not_writable(e)),
         2, ("cannot write to the output folder",)),
    Case("analyze", "--out under a file", lambda e: e.analyze(good(e), out=_text(e, "taken", "x") / "sub"),
         2, ("taken/sub: cannot write to the output folder",)),
    Case("analyze", "damaged checkpoint", lambda e: e.analyze(good(e), model=_checkpoint_faults(e, "damaged")),
         2, ("damaged.safetensors: not a safetensors file, or a corrupt one",)),
    Case("analyze", "foreign checkpoint (torch pickle)",
         lambda e: e.analyze(good(e), model=_checkpoint_faults(e, "foreign")),
         2, ("foreign.safetensors: not a safetensors file",)),
    Case("analyze", "checkpoint that would run code", lambda e: e.analyze(good(e), model=_checkpoint_faults(e, "code")),
         2, ("evil.safetensors: not a safetensors file",), no_code_ran),
    Case("analyze", "ONNX file that is a pickle", lambda e: e.analyze(good(e), model=_checkpoint_faults(e, "onnx")),
         2, ("evil.onnx: not a loadable ONNX model",), no_code_ran),
    Case("analyze", "--stride 0", lambda e: e.analyze(good(e), extra=("--stride", "0")),
         2, ("--stride: must be at least 1",)),
    Case("analyze", "--smooth of the wrong form", lambda e: e.analyze(good(e), extra=("--smooth", "au=seven")),
         2, ("smoothing 'au=seven': expected TASK=MU",)),
    Case("analyze", "--format unknown", lambda e: e.analyze(good(e), extra=("--format", "csv")),
         2, ("--format: invalid choice: 'csv'",)),
    Case("analyze", "--skip-existing over a table of another --format",
         lambda e: e.analyze(good(e), out=_native_table(e), extra=("--format", "openface", "--skip-existing")),
         2, ("images.csv: is a results table in the native format, not openface: run with --format native",)),
    Case("analyze", "face-less clip with --abaw",
         lambda e: e.analyze(bad.video(e("blank.mp4"), n=4), extra=("--abaw",)),
         0, (), lambda e: len((e("out") / "abaw" / "VA" / "blank.txt").read_text().splitlines()) == 5,
         ("affectlab: warning: blank: no face was found",)),
]

SCORE = [
    Case("score", "predictions missing", lambda e: ["score", str(e("none.csv")), e.labelled],
         2, ("none.csv: no such file",)),
    Case("score", "labels: ABAW file with a wrong header",
         lambda e: ["score", e.labelled, str(_abaw(e, "arousal,valence", ["0.1,0.2"]))],
         2, ("VA_Set/Train_Set/v1.txt",)),
    Case("score", "labels: NaN valence", lambda e: ["score", e.labelled, nan_labels(e)],
         2, ("nan.csv:2: valence: 'nan' is not a number",)),
    Case("score", "labels: valence out of range", lambda e: ["score", e.labelled, str(
         _manifest(e, "far.csv", {"path": ["a.png"], "valence": [3.0], "arousal": [0.1]}))],
         2, ("far.csv:2: valence: '3.0' is not in [-1, 1]",)),
    Case("score", "predictions: AU probability 1.5",
         lambda e: ["score", str(_manifest(e, "p.csv", {"path": ["a.png"], "AU12": [1.5]})), e.labelled],
         2, ("p.csv:2: AU12: '1.5' is not a probability in [0, 1]",)),
    Case("score", "thresholds not JSON",
         lambda e: ["score", e.labelled, e.labelled, "--thresholds", str(bad.text_as_image(e("t.json")))],
         2, ("t.json: not a JSON file",)),
    Case("score", "--json is a folder", lambda e: ["score", e.labelled, e.labelled, "--json", str(e.root)],
         2, ("is a folder; give a file name to write",)),
    Case("score", "labels: a folder that is no source", lambda e: ["score", e.labelled, str(e.root)],
         2, ("not a recognised source folder",)),
    Case("score", "labels separated by ';'", lambda e: ["score", e.labelled, str(_semicolons(e))],
         2, ("semi.csv:1: its header is separated by ';'; labels files are comma-separated",)),
    Case("score", "no image path in common", lambda e: ["score", str(_elsewhere(e)), e.labelled],
         2, ("pred.csv: no image path in common with",),
         stderr=("other/a.png' here", "s00.png' there", "a relative path in a labels file is read from that file's folder")),
]

def _contempt(env: Env) -> str:
    return str(_manifest(env, "contempt.csv", {"path": ["a.png", "b.png"], "expression": ["contempt", "Happiness"]}))


DATA = [
    Case("data summary", "ABAW wrong header",
         lambda e: ["data", "summary", str(_abaw(e, "arousal,valence", ["0.1,0.2"]))], 2, ("v1.txt",)),
    Case("data summary", "ABAW NaN label",
         lambda e: ["data", "summary", str(_abaw(e, "valence,arousal", ["nan,0.2"]))], 2, ("v1.txt:2",)),
    Case("data summary", "ABAW AU label 7",
         lambda e: ["data", "summary", str(_abaw(e, AU_HEADER, [",".join(["7"] * 12)], "AU_Set"))], 2, ("v1.txt:2",)),
    Case("data summary", "manifest with a wrong header",
         lambda e: ["data", "summary", str(bad.text_as_image(e("labels.csv")))],
         2, ("labels.csv:1: not a recognised source",)),
    Case("data summary", "empty folder", lambda e: ["data", "summary", str(e.root)],
         2, ("not a recognised source folder",)),
    Case("data summary", "manifest with contempt (Other, as the README says)",
         lambda e: ["data", "summary", _contempt(e)], 0, ()),
]

MODELS = [
    Case("models", "unknown name", lambda e: ["models", "resnet-9000"], 2, ("unknown model 'resnet-9000'",)),
    Case("export", "damaged checkpoint",
         lambda e: ["export", str(_checkpoint_faults(e, "damaged")), "--out", str(e("m.onnx"))],
         2, ("damaged.safetensors: not a safetensors file",)),
    Case("export", "missing checkpoint", lambda e: ["export", str(e("none.safetensors")), "--out", str(e("m.onnx"))],
         2, ("none.safetensors: no such checkpoint file",)),
    Case("export", "--out not writable (said before the model loads)",
         lambda e: ["export", str(_checkpoint_faults(e, "damaged")), "--out", str(_not_writable(e) / "m.onnx")],
         2, ("m.onnx: cannot write",)),
    Case("evaluate", "--model default, as export takes it",
         lambda e: ["evaluate", "--model", "default", "--data", e.labelled], 0, ()),
    Case("evaluate", "--faces detect with an ensemble",
         lambda e: ["evaluate", "--model", str(e.model), "--model", str(e.model), "--faces", "detect", "--data",
                    e.labelled], 2, ("--faces detect scores one model",)),
    Case("evaluate", "checkpoint that would run code",
         lambda e: ["evaluate", "--model", str(_checkpoint_faults(e, "code")), "--data", e.labelled],
         2, ("evil.safetensors: not a safetensors file",), no_code_ran),
    Case("evaluate", "missing data", lambda e: ["evaluate", "--model", str(e.model), "--data", str(e("none.csv"))],
         2, ("none.csv: no such file or folder",)),
    Case("evaluate", "every image missing",
         lambda e: ["evaluate", "--model", str(e.model), "--data", str(_without_images(e))],
         2, ("gone.csv: no labelled image to use (1 image file missing)",)),
    Case("evaluate", "--batch-size 0",
         lambda e: ["evaluate", "--model", str(e.model), "--data", e.labelled, "--batch-size", "0"],
         2, ("--batch-size: must be at least 1",)),
    Case("visualize", "--out is a file",
         lambda e: ["visualize", "--model", str(e.model), "--data", e.labelled, "--out", e.labelled],
         2, ("labelled.csv: the output folder (--out) is a file",)),
    Case("visualize", "foreign checkpoint", lambda e: ["visualize", "--model", str(_checkpoint_faults(e, "foreign")),
                                                       "--data", e.labelled, "--out", str(e("viz"))],
         2, ("foreign.safetensors: not a safetensors file",)),
    Case("calibrate smoothing", "stills, not videos",
         lambda e: ["calibrate", "smoothing", "--model", str(e.model), "--data", e.labelled],
         2, ("labelled.csv: holds no video frames",)),
    Case("calibrate smoothing", "--folds 1",
         lambda e: ["calibrate", "smoothing", "--model", str(e.model), "--data", str(e.world.abaw), "--folds", "1"],
         2, ("--folds: must be at least 2",)),
    Case("calibrate thresholds", "no AU labels",
         lambda e: ["calibrate", "thresholds", "--model", str(e.model), "--data", str(e.world.expr)],
         2, ("expr.csv: 0 AU-labelled rows: too few to tune thresholds",)),
    Case("calibrate thresholds", "--folds 1",
         lambda e: ["calibrate", "thresholds", "--model", str(e.model), "--data", e.labelled, "--folds", "1"],
         2, ("--folds: must be at least 2",)),
    Case("calibrate thresholds", "a recipe without that source",
         lambda e: ["calibrate", "thresholds", "--model", str(e.model), "--recipe", "configs/default.yaml",
                    "--data", "nope"],
         2, ("configs/default.yaml: no source 'nope'",)),
    Case("calibrate va", "no VA labels",
         lambda e: ["calibrate", "va", "--model", str(e.model), "--data", str(e.world.expr)],
         2, ("expr.csv: 0 VA-labelled rows: too few to calibrate",)),
    Case("calibrate va", "--folds 1",
         lambda e: ["calibrate", "va", "--model", str(e.model), "--data", e.labelled, "--folds", "1"],
         2, ("--folds: must be at least 2",)),
    Case("calibrate flip", "recipe missing",
         lambda e: ["calibrate", "flip", "--model", str(e.model), "--recipe", str(e("none.yaml"))],
         2, ("none.yaml: no such recipe file",)),
    Case("compare", "missing run", lambda e: ["compare", str(e("none.json"))],
         2, ("none.json: no such file or folder",)),
    Case("compare", "JSON that is no evaluation", lambda e: ["compare", str(_text(e, "x.json", "[1]"))],
         2, ("x.json: not an evaluation JSON",)),
    Case("compare", "checkpoint without --data", lambda e: ["compare", str(e.model)], 2, ("give --data SOURCE",)),
    Case("compare", "folder that is no run", lambda e: ["compare", str(e.root)], 2, ("not a finished training run",)),
]

TRAIN = [
    Case("train", "recipe missing", lambda e: e.train(recipe=e("none.yaml")), 2, ("none.yaml: no such recipe file",)),
    Case("train", "recipe not YAML", lambda e: e.train(recipe=_text(e, "r.yaml", "a: [1,\n")),
         2, ("r.yaml:2: not valid YAML",)),
    Case("train", "recipe with an unknown key", lambda e: e.train("data.sise=32"), 2, ("data: unknown key 'sise'",)),
    Case("train", "recipe without a format version", lambda e: e.train(recipe=_text(e, "old.yaml", "name: old\n")),
         2, ("old.yaml: no recipe format version; this affectlab reads version 1",)),
    Case("train", "override of the wrong type", lambda e: e.train("data.input_size=big"),
         2, ("data.input_size: expected a whole number, got 'big'",)),
    Case("train", "override: zero size", lambda e: e.train("data.input_size=0"),
         2, ("data: input_size must be >= 16, got 0",)),
    Case("train", "override: negative quota", lambda e: e.train("sampler.au.quota=-2"),
         2, ("sampler.au: quota must be >= 1, got -2",)),
    Case("train", "override: model config of impossible size", lambda e: e.train("model.config.va_bins=-2"),
         2, ("model 'mtl-baseline': Trying to create tensor with negative dimension -4",)),
    Case("train", "override not key=value", lambda e: e.train("data.input_size"), 2, ("is not key=value",)),
    Case("train", "override: lr=nan", lambda e: e.train("optimizer.lr=nan"),
         2, ("optimizer.lr: expected a finite number, got 'nan'",)),
    Case("train", "override: lr=inf", lambda e: e.train("optimizer.lr=inf"),
         2, ("optimizer.lr: expected a finite number, got 'inf'",)),
    Case("train", "validation=null with early stopping",
         lambda e: e.train("validation=null", "stages.main.early_stopping={patience: 1}", "train.progress=false"),
         0, (), lambda e: e("run/main.safetensors").exists(),
         ("stage 'main': no validation data, so no early stopping (on P): it runs all its steps",)),
    Case("train", "data_root without the data", lambda e: e.train(f"data_root={e('nowhere')}", "sources.au.path=au.csv"),
         2, ("nowhere/au.csv: no such file or folder; a recipe's source paths are read under its data_root",),
         stderr=("give --data-root DIR where your copy of the data is",)),
    Case("train", "source file missing", lambda e: e.train(f"sources.au.path={e('none.csv')}"),
         2, ("none.csv: no such file or folder",)),
    Case("train", "source with NaN labels", lambda e: e.train(f"sources.va.path={nan_labels(e)}"),
         2, ("nan.csv:2: valence: 'nan' is not a number",)),
    Case("train", "ABAW source with a wrong header",
         lambda e: e.train(f"sources.va.path={_abaw(e, 'arousal,valence', ['0.1,0.2'])}"), 2, ("v1.txt",)),
    Case("train", "--out is a file", lambda e: e.train(out=e.world.labelled),
         2, ("the run directory (--out) is a file",)),
    Case("train", "--resume without a run", lambda e: [*e.train(out="typo"), "--resume"],
         2, ("typo: no run to resume",), lambda e: not e("typo").exists()),
    Case("train", "--resume with a damaged recipe.yaml", lambda e: [*e.train(out=_damaged_run(e)), "--resume"],
         2, ("run/recipe.yaml: damaged recipe of this run",), lambda e: e("run/recipe.yaml").exists()),
]



def _folder(env: Env, name: str) -> Path:
    env(name).mkdir()
    return env(name)


def _results(env: Env, *, renamed: bool = False) -> Path:
    """An analyze output folder with one video's table, and with ``renamed`` a second table whose
    ``frame`` column was renamed."""
    from affectlab.analyze.results import finalize, prediction_frame
    from affectlab.labels import DEFAULT_SCHEMA as schema

    out = env("results")
    out.mkdir()
    meta = pd.DataFrame({"input": str(env("clip.mp4")), "frame": [1, 2], "timestamp": [0.0, 0.1], "face_id": 0,
                         "x": 1.0, "y": 1.0, "width": 9.0, "height": 9.0, "confidence": 0.9, "success": 1})
    preds = prediction_frame(schema, np.full((2, schema.n_au), 0.6), np.full((2, schema.n_expr), 1 / schema.n_expr),
                             np.zeros((2, 2)), np.full(schema.n_au, 0.5))
    table = finalize(pd.concat([meta, preds], axis=1), schema)
    table.to_csv(out / "clip.csv", index=False)
    if renamed:
        table.rename(columns={"frame": "frame_no"}).to_csv(out / "other.csv", index=False)
    return out


REPORT = [
    Case("report", "folder without tables", lambda e: ["report", str(_folder(e, "empty"))],
         2, ("empty: holds no results tables",)),
    Case("report", "no such folder", lambda e: ["report", str(e("none"))], 2, ("none: no such folder",)),
    Case("report", "a file for the folder", lambda e: ["report", str(e.world.labelled)], 2, ("is a file, not a folder",)),
    Case("report", "a table with a renamed column", lambda e: ["report", str(_results(e, renamed=True))],
         1, ("other.csv: not a results table of affectlab analyze: no 'frame' column",),
         lambda e: e("results/clip.html").is_file() and e("results/index.html").is_file()),
    Case("report", "the video moved away", lambda e: ["report", str(_results(e))], 0, (),
         lambda e: "is not there any more" in e("results/clip.html").read_text()),
]

CASES = ANALYZE + SCORE + DATA + MODELS + TRAIN + REPORT


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, World]:
    """The small model and the tiny labelled world, made once for the campaign."""
    root = tmp_path_factory.mktemp("campaign")
    torch.manual_seed(0)
    model = save_checkpoint(create_model("mtl-baseline", backbone="mobilenet_v2"), root / "tiny.safetensors",
                            input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return model, build_world(root / "world")


@pytest.fixture
def env(shared, tmp_path) -> Env:
    model, world = shared
    env = Env(tmp_path, model, world, mini_recipe(world, tmp_path))
    yield env
    if env.held is not None:
        env.held.release()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}: {c.name}" for c in CASES])
def test_fault(case: Case, env: Env, capsys):
    argv = case.argv(env)
    assert " ".join(argv).startswith(case.command)
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's own refusal: its usage line, then one error line
        status = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if "error:" in line]
    assert status == case.status, err
    assert len(errors) == len(case.errors), err
    for line, text in zip(errors, case.errors):
        assert text in line, err
    for text in case.stderr:
        assert text in err, err
    if case.done is not None:
        assert case.done(env), err


def test_every_command_is_in_the_campaign():
    """Done when the suite covers every command in the README: every subcommand of the parser, each named there."""
    import argparse

    from affectlab.cli import build_parser

    def commands_of(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)] or [None]
        if sub is None:
            return {prefix.strip()}
        return set().union(*(commands_of(p, f"{prefix}{name} ") for name, p in sub.choices.items()))

    commands = commands_of(build_parser())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(f"affectlab {c}" in readme for c in commands)
    assert {c.command for c in CASES} == commands
