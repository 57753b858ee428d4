"""Head pose and gaze (analyze --landmarks) checked by geometry on real faces: no ground truth needed.

    python bench/geometry.py [--limit N] [--no-report]

For each AffectNet image in ../shared/data/affectnet (the first N), the face is found by MTCNN as
``affectlab analyze`` finds it in an image (with second looks), meshed (affectlab.faces.mesh) and its
pose and gaze computed as the ``--landmarks`` columns are (affectlab.faces.geometry). Then:

- **roll**: the image turned in its plane by -30, -15, 15 and 30 degrees (cv2, about its centre)
  must change ``pose_Rz`` by minus that angle; reported is |change + angle|.
- **mirror**: the image mirrored left-right must flip the sign of yaw (``pose_Ry``) and of
  ``gaze_angle_x`` and keep pitch (``pose_Rx``) and ``gaze_angle_y``; reported are |a + a'| for the
  flipped angles and |a - a'| for the kept ones, beside the typical size |a| of each angle (an
  estimator that always said 0 would pass the mirror test; the size shows it does not).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from affectlab.analyze.media import read_image  # noqa: E402
from affectlab.faces.geometry import face_geometry  # noqa: E402
from affectlab.faces.mtcnn import MTCNN, SECOND_LOOKS  # noqa: E402
from common import ROOT, report, table  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TURNS = (-30, -15, 15, 30)
FLIPPED, KEPT = ("pose_Ry", "gaze_angle_x"), ("pose_Rx", "gaze_angle_y")


def geometry(detector: MTCNN, image: np.ndarray, near: np.ndarray | None = None) -> dict[str, float] | None:
    """The --landmarks columns of the face nearest ``near`` (an image point), else of MTCNN's best face."""
    found = detector.detect_batch([image], SECOND_LOOKS)[0]
    if not len(found):
        return None
    k = 0
    if near is not None:
        k = int(np.argmin(np.linalg.norm((found.boxes[:, :2] + found.boxes[:, 2:]) / 2 - near, axis=1)))
    (row,) = face_geometry(image, [found.boxes[k]], [found.landmarks[k][:2]])
    return row


def summary(values: list[float]) -> list[str]:
    v = np.degrees(np.asarray(values))
    return [str(len(v)), f"{np.median(v):.2f}", f"{v.mean():.2f}", f"{np.percentile(v, 90):.2f}", f"{v.max():.2f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    folder = SHARED / "affectnet"
    paths = pd.read_csv(folder / "labels.csv")["path"].iloc[: args.limit]
    detector = MTCNN()
    errors: dict[str, list[float]] = {"roll": [], **{c: [] for c in FLIPPED + KEPT}}
    size: dict[str, list[float]] = {c: [] for c in FLIPPED + KEPT}
    for path in paths:
        image = read_image(folder / path)
        h, w = image.shape[:2]
        base = geometry(detector, image)
        if base is None:
            continue
        for angle in TURNS:
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            turned = geometry(detector, cv2.warpAffine(image, m, (w, h)), near=np.array([w / 2, h / 2]))
            if turned is not None:
                errors["roll"].append(abs(turned["pose_Rz"] - base["pose_Rz"] + np.radians(angle)))
        mirrored = geometry(detector, np.ascontiguousarray(image[:, ::-1]))
        if mirrored is None:
            continue
        for c in FLIPPED + KEPT:
            if np.isfinite(base[c]) and np.isfinite(mirrored[c]):
                errors[c].append(abs(base[c] + mirrored[c]) if c in FLIPPED else abs(base[c] - mirrored[c]))
                size[c].append(abs(base[c]))
    rows = [["roll after an in-plane turn", "abs(change + turn)", *summary(errors["roll"]), ""]]
    for c in FLIPPED + KEPT:
        rule = f"abs({c} + mirrored)" if c in FLIPPED else f"abs({c} - mirrored)"
        rows.append([f"{c} under mirroring", rule, *summary(errors[c]), f"{np.degrees(np.median(size[c])):.2f}"])
    body = table(["check", "error", "n", "median deg", "mean deg", "p90 deg", "max deg", "median abs(angle) deg"],
                 rows)
    body += (f"\n\nThe first {len(paths)} AffectNet images; turns of {', '.join(map(str, TURNS))} degrees; "
             "faces found as analyze finds them, pose and gaze as `analyze --landmarks` computes them.")
    report("Head pose and gaze: geometric checks on AffectNet faces", body, append=not args.no_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
