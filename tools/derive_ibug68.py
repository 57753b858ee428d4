"""Fit the mesh-to-iBUG map (affectlab.faces.mesh.ibug_map) to AffectNet's 68 human landmarks.

    python tools/derive_ibug68.py [--recipe configs/default.yaml]
        # writes src/affectlab/assets/mediapipe/ibug68.npz

MediaPipe's mesh has no vertex exactly where iBUG/300-W annotators put their 68 points (its face
oval runs above iBUG's jaw line, its brows lie on the brow's upper edge): the named-part vertex map
scored NME 0.107 mean on AffectNet's held-out fold. Here each iBUG point becomes a fixed affine
combination (weights summing to 1, so it moves with the face under any similarity) of the K mesh
vertices nearest it, fitted by least squares in inter-ocular units, with a ridge pulling the weights
towards the single nearest vertex so that no weight grows large (the mesh's neighbouring vertices
are nearly collinear). Fitted only on the faces of the recipe's AffectNet *training* folds; the
recipe's validation fold is what bench/landmarks.py scores it on.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "affectlab" / "assets" / "mediapipe" / "ibug68.npz"
K, RIDGE = 16, 1e-3  # vertices per point; ridge weight per face (in inter-ocular units squared)


def fit_point(mesh: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The K vertices and affine weights that best give one landmark ``truth`` (N, 2) from ``mesh``
    (N, 468, 2), both already divided by each face's inter-ocular distance."""
    near = np.argsort(np.linalg.norm(mesh - truth[:, None], axis=2).mean(axis=0))[:K]
    a = mesh[:, near]
    ref = a[:, 0]  # weights w on the others, 1 - sum(w) on the nearest: affine by construction
    d = (a[:, 1:] - ref[:, None]).transpose(0, 2, 1).reshape(-1, K - 1)
    y = (truth - ref).reshape(-1)
    w = np.linalg.solve(d.T @ d + RIDGE * len(truth) * np.eye(K - 1), d.T @ y)
    return near, np.concatenate([[1.0 - w.sum()], w])


def main(argv: list[str] | None = None) -> int:
    from affectlab.analyze.media import read_image
    from affectlab.faces import MTCNN, landmarks68_to_5
    from affectlab.faces.mesh import face_meshes
    from affectlab.faces.mtcnn import SECOND_LOOKS
    from affectlab.train.config import load_recipe
    from affectlab.train.data import read_one
    from affectlab.train.trainer import recipe_schema

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "configs" / "default.yaml"))
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    rows = read_one(recipe.sources["affectnet"], recipe_schema(recipe), {}).samples
    truth = rows[[f"lnd_{a}{i}" for i in range(68) for a in "xy"]].to_numpy(np.float64).reshape(-1, 68, 2)
    detector = MTCNN()
    meshes, kept = [], []
    for i, path in enumerate(rows["path"]):
        image = read_image(path)
        found = detector.detect_batch([image], SECOND_LOOKS)[0]
        if not len(found):
            continue
        k = found.nearest(landmarks68_to_5(truth[i]))
        meshes.append(face_meshes(image, [found.boxes[k]], [found.landmarks[k][:2]])[0].points[:, :2])
        kept.append(i)
    truth = truth[kept]
    iod = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)[:, None, None]
    mesh, truth = np.stack(meshes) / iod, truth / iod
    vertices, weights = zip(*(fit_point(mesh, truth[:, j]) for j in range(68)))
    np.savez(OUT, vertices=np.stack(vertices).astype(np.int16), weights=np.stack(weights).astype(np.float64))
    print(f"fitted on {len(kept)} of {len(rows)} AffectNet training faces; largest |weight| "
          f"{np.abs(np.stack(weights)).max():.2f}; wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
