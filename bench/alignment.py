"""Which 5 points should align a face for the model: MTCNN's, the face mesh's, or the human annotation's?

    python bench/alignment.py [--model CKPT] [--recipe configs/default.yaml] [--no-report]

On the recipe's AffectNet validation images (the fold the model never trained on), each face is
found by MTCNN as ``affectlab analyze`` finds it in an image (with second looks; the face nearest the
annotation is taken) and aligned to the model's template three ways:

- **mtcnn**: MTCNN's 5 points, what ``analyze`` uses;
- **mesh**: the 5 points of the mesh's 68-point subset (affectlab.faces.mesh, ``landmarks68_to_5``),
  at the cost of the mesh (about 15 ms a face on one core);
- **annotation**: the 5 points of AffectNet's human 68 landmarks, how the model's AffectNet training
  faces were aligned (the reference, not available at run time).

Reported per alignment: 8-class accuracy and macro F1, CCC of valence and arousal, on the same faces.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from affectlab.analyze.analyzer import Analyzer  # noqa: E402
from affectlab.analyze.media import read_image  # noqa: E402
from affectlab.faces import landmarks68_to_5  # noqa: E402
from affectlab.faces.align import align_face  # noqa: E402
from affectlab.faces.mesh import face_meshes  # noqa: E402
from affectlab.faces.mtcnn import MTCNN, SECOND_LOOKS  # noqa: E402
from affectlab.metrics import accuracy, ccc, macro_f1  # noqa: E402
from affectlab.train.config import load_recipe  # noqa: E402
from affectlab.train.data import read_one  # noqa: E402
from affectlab.train.trainer import recipe_schema  # noqa: E402
from common import ROOT, report, table  # noqa: E402

WAYS = ("mtcnn", "mesh", "annotation")


def five_points(detector: MTCNN, image: np.ndarray, truth68: np.ndarray) -> dict[str, np.ndarray] | None:
    """Each way's 5 points for the face nearest the annotation; None where MTCNN finds no face."""
    found = detector.detect_batch([image], SECOND_LOOKS)[0]
    if not len(found):
        return None
    annotation = landmarks68_to_5(truth68)
    k = found.nearest(annotation)
    (mesh,) = face_meshes(image, [found.boxes[k]], [found.landmarks[k][:2]])
    return {"mtcnn": found.landmarks[k], "mesh": landmarks68_to_5(mesh.ibug68), "annotation": annotation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "default.yaml"))
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    rows = read_one(recipe.validation["affectnet"], recipe_schema(recipe), {}).samples
    analyzer = Analyzer(args.model)
    detector = MTCNN()
    crops: dict[str, list[np.ndarray]] = {w: [] for w in WAYS}
    kept = []
    for i, row in enumerate(rows.itertuples(index=False)):
        image = read_image(row.path)
        truth = rows.iloc[i][[f"lnd_{a}{j}" for j in range(68) for a in "xy"]].to_numpy(np.float64).reshape(68, 2)
        points = five_points(detector, image, truth)
        if points is None:
            continue
        kept.append(i)
        for way in WAYS:
            crops[way].append(align_face(image, points[way], analyzer.template, analyzer.size))
    truth = rows.iloc[kept]
    expr, va = truth["expr"].to_numpy(), truth[["valence", "arousal"]].to_numpy(np.float64)
    out = []
    for way in WAYS:
        pred = analyzer.backend(np.stack(crops[way]))
        label = pred.expr.argmax(axis=1)
        out.append([way, f"{accuracy(expr, label):.3f}", f"{macro_f1(expr, label, pred.expr.shape[1]):.3f}",
                    f"{ccc(va[:, 0], pred.va[:, 0]):.3f}", f"{ccc(va[:, 1], pred.va[:, 1]):.3f}"])
    body = table(["aligned by", "accuracy", "macro F1", "CCC valence", "CCC arousal"], out)
    body += (f"\n\n{len(kept)} of {len(rows)} AffectNet validation faces (those MTCNN finds), model "
             f"`{args.model or 'bundled'}`, recipe `{Path(args.recipe).name}`.")
    report("Alignment points for the model: MTCNN, mesh or annotation (AffectNet validation)", body,
           append=not args.no_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
