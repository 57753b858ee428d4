"""A tiny multi-database world on disk (ABAW tree, manifests, an MTL file, landmarks) and the overrides
that run each recipe on it at toy size: the same key=value overrides users type."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from affectlab.labels import AU_ABAW, EXPR_NAMES

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
FRAMES = 12


def _image(path: Path, rng: np.random.Generator, size: int = 24) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return str(path)


def _csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


@dataclass
class World:
    root: Path
    abaw: Path          # ABAW annotation root (AU_Set, EXPR_Set, VA_Set; train and validation)
    frames: Path        # cropped_aligned root
    au: Path            # manifests of stills with one task each
    expr: Path
    va: Path
    affectnet: Path     # expression, VA and 68 landmarks
    mtl: Path           # ABAW multi-task file (train) and its validation twin
    mtl_val: Path
    labelled: Path      # a manifest with every label, for evaluate


def _landmarks(size: int) -> list[float]:
    """68 points of a roughly centred face in a ``size`` image (eyes, nose, mouth where they belong)."""
    pts = np.zeros((68, 2))
    pts[:] = size / 2
    pts[36:42] = (0.35 * size, 0.4 * size)
    pts[42:48] = (0.65 * size, 0.4 * size)
    pts[30] = (0.5 * size, 0.55 * size)
    pts[48] = (0.38 * size, 0.75 * size)
    pts[54] = (0.62 * size, 0.75 * size)
    return [round(float(v), 2) for p in pts for v in p]


def build_world(root: Path) -> World:
    rng = np.random.default_rng(0)
    ann, frames = root / "abaw" / "annotations", root / "abaw" / "cropped_aligned"
    videos = {"Train_Set": ["v1", "v2", "v3"], "Validation_Set": ["v4"]}
    for split, names in videos.items():
        for video in names:
            for n in range(1, FRAMES + 1 + 2 * (split == "Train_Set")):  # two frames no annotation covers
                _image(frames / video / f"{n:05d}.jpg", rng)
            au_rows = [",".join(str(int(x)) for x in rng.integers(0, 2, len(AU_ABAW))) for _ in range(FRAMES)]
            expr_rows = [str(int(x)) for x in rng.integers(0, 8, FRAMES)]
            va_rows = [f"{v:.2f},{a:.2f}" for v, a in rng.uniform(-1, 1, (FRAMES, 2))]
            for task, header, rows in [("AU_Set", ",".join(AU_ABAW), au_rows),
                                       ("EXPR_Set", ",".join(EXPR_NAMES), expr_rows),
                                       ("VA_Set", "valence,arousal", va_rows)]:
                path = ann / task / split / f"{video}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(header + "\n" + "\n".join(rows) + "\n")
    stills = [Path(_image(root / "stills" / f"s{i:02d}.png", rng, 32)) for i in range(24)]
    aus = [*AU_ABAW, "AU20"]
    au = _csv(root / "au.csv", ["path", *aus], [[f"stills/{p.name}", *rng.integers(0, 2, len(aus))] for p in stills])
    expr = _csv(root / "expr.csv", ["path", "expression"], [[f"stills/{p.name}", i % 8] for i, p in enumerate(stills)])
    va = _csv(root / "va.csv", ["path", "valence", "arousal"],
              [[f"stills/{p.name}", *np.round(rng.uniform(-1, 1, 2), 2)] for p in stills])
    lnd = [f"lnd_{a}{i}" for i in range(68) for a in ("x", "y")]
    affectnet = _csv(root / "affectnet.csv", ["path", "expression", "valence", "arousal", *lnd],
                     [[f"stills/{p.name}", i % 8, *np.round(rng.uniform(-1, 1, 2), 2), *_landmarks(32)]
                      for i, p in enumerate(stills)])
    mtl_rows = []
    for video in videos["Train_Set"]:
        for n in range(1, FRAMES + 1):
            mtl_rows.append([f"{video}/{n:05d}.jpg", *np.round(rng.uniform(-1, 1, 2), 2), int(rng.integers(0, 8)),
                             *rng.integers(0, 2, len(AU_ABAW))])
    mtl = _csv(root / "mtl_train.txt", ["image", "valence", "arousal", "expression", "aus"], mtl_rows)
    mtl_val = _csv(root / "mtl_val.txt", ["image", "valence", "arousal", "expression", "aus"],
                   [[f"v4/{n:05d}.jpg", *np.round(rng.uniform(-1, 1, 2), 2), int(rng.integers(0, 8)),
                     *rng.integers(0, 2, len(AU_ABAW))] for n in range(1, FRAMES + 1)])
    labelled = _csv(root / "labelled.csv", ["path", *AU_ABAW, "expression", "valence", "arousal"],
                    [[f"stills/{p.name}", *rng.integers(0, 2, len(AU_ABAW)), i % 8, *np.round(rng.uniform(-1, 1, 2), 2)]
                     for i, p in enumerate(stills)])
    return World(root, ann, frames, au, expr, va, affectnet, mtl, mtl_val, labelled)


#: Toy size for every recipe: small backbone and input, no workers, no progress bar.
TINY = ["model.config.backbone=mobilenet_v2", "data.input_size=32", "data.workers=0", "data.eval_batch_size=16",
        "train.progress=false", "train.log_every=1", "train.eval_every_steps=2"]


def abaw(world: World, source: str, key: str = "sources") -> list[str]:
    """Point a recipe's Aff-Wild2 source at the tiny ABAW tree."""
    return [f"{key}.{source}.path={world.abaw}", f"{key}.{source}.images={world.frames}"]


def seq_len(n: int, *stages: str) -> list[str]:
    """Short clips for the temporal stages."""
    return [f"stages.{s}.overrides.model.config.seq_len={n}" for s in stages]


def recipe_overrides(world: World, name: str) -> list[str]:
    """Each recipe on the tiny world: its datasets by path, toy quotas and a few steps per stage."""
    q = lambda *groups: [f"sampler.{g}.quota=2" for g in groups]  # noqa: E731
    if name == "smm":
        return [*abaw(world, "au"), *abaw(world, "expr"), *abaw(world, "va"), *abaw(world, "aff-wild2", "validation"),
                *q("au", "expr", "va"), "stages.static.steps=3", "data.input_size=48"]
    if name == "teacher-student":
        return [*abaw(world, "affwild2_au"), *abaw(world, "affwild2_expr"), *abaw(world, "affwild2_va"),
                *abaw(world, "aff-wild2", "validation"), f"sources.disfa.path={world.au}",
                f"sources.expw.path={world.expr}", f"sources.afew_va.path={world.va}", *q("au", "expr", "va"),
                "stages.teacher.steps=3", "stages.student.steps=2", "stages.student.repeat=2",
                "stages.rnn-teacher.steps=2", "stages.rnn-student.steps=2", "stages.rnn-student.repeat=2",
                *seq_len(4, "rnn-teacher", "rnn-student")]
    if name == "multi-database":
        return [*abaw(world, "affwild2"), *abaw(world, "aff-wild2", "validation"), f"sources.expw.path={world.expr}",
                f"sources.afew_va.path={world.va}", f"sources.affectnet.path={world.affectnet}",
                *q("expr", "va", "expr_va"), "stages.teacher.steps=4", "stages.student.steps=4",
                "stages.gru-teacher.steps=2", "stages.gru-student.steps=2", *seq_len(4, "gru-teacher", "gru-student")]
    if name == "streaming":
        return [*abaw(world, "affwild2"), *abaw(world, "aff-wild2", "validation"), f"sources.bp4d.path={world.au}",
                f"sources.dfew.path={world.expr}", f"sources.affectnet.path={world.va}", *q("au", "expr", "va"),
                "stages.prior.steps=2", "stages.affwild2.steps=2", "sources.dfew.confident.threshold=0.1",
                "stages.original.steps=2", "stages.fold.steps=2", "stages.fold.folds.k=2", "stages.pseudo.steps=2",
                "stages.pseudo.pseudo_labels.rules.min_support=1", "stages.pseudo.pseudo_labels.threshold=0.5",
                f"stages.pseudo.overrides.sources.unlabelled.path={world.frames}"]
    if name == "smm-vs-mss":
        return [*abaw(world, "au"), *abaw(world, "expr"), *abaw(world, "va"), *abaw(world, "aff-wild2", "validation"),
                *q("au", "expr", "va"), "stages.smm.steps=2", "stages.mss.steps=2", "data.input_size=48"]
    if name == "default":  # the bundled model's recipe, its sources (and its later stages' wild faces) stood in for by manifests
        sources = {"ferplus": world.expr, "affectnet": world.affectnet, "ckplus": world.au, "sfew": world.expr}
        return [*(f"{key}.{n}.path={p}" for n, p in sources.items() for key in ("sources", "validation")),
                *(f"{key}.{n}.{k}=null" for key in ("sources", "validation")
                  for n, k in [("ferplus", "split"), ("ckplus", "subset"), ("sfew", "subset")]),
                *(f"stages.{stage}.overrides.sources.{n}.{k}" for stage in ("student", "distilled")
                  for n in ("lfw", "lfw_film") for k in (f"path={world.expr}", "split=null", "subset=null")),
                *q("expr", "expr_va", "au", "wild"), "stages.student.overrides.sampler.faces.quota=2",
                "stages.distilled.overrides.sampler.faces.quota=2", "model.backbone_weights=imagenet", "train.amp=off",
                "stages.teacher.steps=3", "stages.student.steps=2", "stages.distilled.steps=2"]
    if name == "context-ensemble":
        return [f"sources.mtl.path={world.mtl}", f"sources.mtl.images={world.frames}",
                f"validation.mtl.path={world.mtl_val}", f"validation.mtl.images={world.frames}",
                "sampler.all.quota=4", "stages.face.steps=2", "stages.context.steps=2", "data.input_size=48"]
    raise ValueError(name)


def mini_recipe(world: World, folder: Path, *, model: str = "mtl-baseline", config: str = "{backbone: mobilenet_v2}",
                stages: str = "[{name: main, steps: 4}]", extra: str = "") -> Path:
    """A small three-source recipe over the still-image manifests, for trainer tests."""
    path = folder / "mini.yaml"
    path.write_text(f"""
name: mini
version: 1
paper: "test recipe §0"
seed: 1
sources:
  au: {{path: {world.au}, tasks: [au]}}
  expr: {{path: {world.expr}, tasks: [expr]}}
  va: {{path: {world.va}, tasks: [va]}}
validation:
  labelled: {{path: {world.labelled}}}
sampler:
  au: {{sources: [au], require: [au], quota: 2, balance: ml-ros}}
  expr: {{sources: [expr], require: [expr], quota: 2, balance: classes}}
  va: {{sources: [va], require: [va], quota: 2}}
data: {{input_size: 32, workers: 0, eval_batch_size: 16}}
model: {{name: {model}, config: {config}}}
loss:
  terms:
    au: {{fn: weighted_bce}}
    expr: {{fn: ce}}
    va: {{fn: ccc}}
optimizer: {{name: sgd, lr: 0.01}}
scheduler: {{name: cosine}}
train: {{progress: false, log_every: 1, eval_every_steps: 2, checkpoint_every: 2}}
stages: {stages}
{extra}
""")
    return path
