"""The mesh's 68-point iBUG subset against AffectNet's human 68-point annotations.

    python bench/landmarks.py [--faces held-out|all] [--limit N] [--passes 1 2] [--no-report]

The mesh-to-iBUG map was fitted on AffectNet's faces (tools/derive_ibug68.py, the default recipe's
training folds), so by default only the fold it never saw is scored (``--faces held-out``: the
recipe's AffectNet validation fold); ``--faces all`` scores every image. Each image is searched by MTCNN as ``affectlab
analyze`` searches an image (with second looks); the face whose 5 landmarks lie nearest the
annotation's is taken, and the mesh is fitted from its box and eyes (affectlab.faces.mesh). The
error of each face is the mean point-to-point distance over the 68 points divided by the distance of
the annotated outer eye corners (points 36 and 45, the 300-W "inter-ocular" normalisation); reported
are its mean and median over all faces found, the share of faces with NME > 0.1, the mean error of
each part (jaw, brows, nose, eyes, mouth), and the mesh's milliseconds per face.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from affectlab.analyze.media import read_image  # noqa: E402
from affectlab.data.sampling import assign_folds  # noqa: E402
from affectlab.faces import MTCNN, landmarks68_to_5  # noqa: E402
from affectlab.faces.mesh import face_meshes  # noqa: E402
from affectlab.faces.mtcnn import SECOND_LOOKS  # noqa: E402
from common import ROOT, report, table  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
FACES = {"held-out": "the AffectNet fold the iBUG map was not fitted on",
         "all": "every AffectNet image, including the folds the iBUG map was fitted on"}
PARTS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
         "mouth": range(48, 68)}


def nme(pred: np.ndarray, truth: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean point error over the outer-eye-corner distance (300-W), and each point's normalised error."""
    iod = float(np.linalg.norm(truth[36] - truth[45]))
    per_point = np.linalg.norm(pred - truth, axis=1) / iod
    return float(per_point.mean()), per_point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", choices=("held-out", "all"), default="held-out")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--passes", type=int, nargs="+", default=[2])
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    folder = SHARED / "affectnet"
    labels = pd.read_csv(folder / "labels.csv")
    if args.faces == "held-out":  # the default recipe's {by: path, folds: 5, keep: [4]}
        labels = labels[assign_folds(labels["path"], 5) == 4]
    if args.limit:
        labels = labels.iloc[: args.limit]
    truth_all = labels[[f"lnd_{a}{i}" for i in range(68) for a in "xy"]].to_numpy(np.float64).reshape(-1, 68, 2)
    detector = MTCNN()
    found, seconds, rows = {p: [] for p in args.passes}, {p: 0.0 for p in args.passes}, 0
    per_point = {p: [] for p in args.passes}
    for start in range(0, len(labels), 16):
        paths = labels["path"].iloc[start:start + 16]
        images = [read_image(folder / p) for p in paths]
        for image, det, truth in zip(images, detector.detect_batch(images, SECOND_LOOKS),
                                     truth_all[start:start + 16]):
            rows += 1
            if len(det) == 0:
                continue
            five = landmarks68_to_5(truth)
            k = det.nearest(five)
            for p in args.passes:
                t0 = time.perf_counter()
                (mesh,) = face_meshes(image, [det.boxes[k]], [det.landmarks[k][:2]], passes=p)
                seconds[p] += time.perf_counter() - t0
                err, pts = nme(mesh.ibug68, truth)
                found[p].append(err)
                per_point[p].append(pts)
    out = []
    for p in args.passes:
        e, pts = np.asarray(found[p]), np.asarray(per_point[p])
        parts = ", ".join(f"{name} {pts[:, list(idx)].mean():.3f}" for name, idx in PARTS.items())
        out.append([p, f"{len(e)} of {rows}", f"{e.mean():.4f}", f"{np.median(e):.4f}", f"{(e > 0.1).mean():.1%}",
                    parts, f"{1000 * seconds[p] / max(len(e), 1):.1f}"])
    body = table(["mesh passes", "faces found", "NME mean", "NME median", "NME > 0.1", "mean error by part",
                  "mesh ms per face"], out)
    body += (f"\n\nFaces: {FACES[args.faces]}. "
             "NME: mean distance of the 68 iBUG points (`affectlab.faces.mesh.to_ibug68`) to "
             "AffectNet's human annotation, over the annotated outer-eye-corner distance; faces found by MTCNN "
             "as analyze finds them.")
    report("Landmarks: the mesh's 68 points against AffectNet's annotations", body, append=not args.no_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
