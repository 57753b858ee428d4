"""Where the face lies in a source's tight crops: the median MTCNN 5 points, as fractions of the image.

Tight crops (FER+, CK+, SFEW) carry no landmarks. Training aligns them by these typical points, as
inference aligns MTCNN's points, so their faces land on the template at the template's scale instead
of filling the crop (docs/model-card.md, "Crops that match inference"). Each image is upscaled to
at least 160 px and padded by half its side on every side (edge pixels repeated) so that the
detector sees the whole face with context; the most confident face's points are mapped back.

    python tools/measure_framing.py ../shared/data/ferplus --n 400
    python tools/measure_framing.py ../shared/data/lfw_expressions --split lfw

prints the points in the form a recipe's ``sources.<name>.framing`` takes.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from affectlab.data import read_source
from affectlab.data.transforms import decode_rgb
from affectlab.faces.mtcnn import MTCNN


def face_points(detector: MTCNN, image: np.ndarray) -> np.ndarray | None:
    """The most confident face's 5 points in fractions of ``image``'s width and height, or None."""
    h, w = image.shape[:2]
    up = max(1.0, 160 / min(h, w))
    big = cv2.resize(image, (round(w * up), round(h * up)), interpolation=cv2.INTER_CUBIC) if up > 1 else image
    pad_y, pad_x = big.shape[0] // 2, big.shape[1] // 2
    padded = cv2.copyMakeBorder(big, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REPLICATE)
    found = detector.detect(padded)
    if not len(found):
        return None
    points = found.landmarks[int(np.argmax(found.scores))] - (pad_x, pad_y)
    return points / (big.shape[1], big.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--n", type=int, default=400, help="images sampled (seed 0)")
    parser.add_argument("--split", help="one split of the source (e.g. lfw_expressions' lfw or film)")
    args = parser.parse_args()
    table = read_source(args.source, split=args.split).samples
    paths = table["path"].sample(min(args.n, len(table)), random_state=0).tolist()
    detector = MTCNN()
    points = [p for p in (face_points(detector, decode_rgb(path)) for path in paths) if p is not None]
    median = np.median(np.stack(points), axis=0)
    print(f"{len(points)} of {len(paths)} images had a face; median points (x, y as fractions of the image):")
    print("framing: [" + ", ".join(f"[{x:.3f}, {y:.3f}]" for x, y in median) + "]")
    spread = np.median(np.abs(np.stack(points) - median), axis=0).mean()
    print(f"median absolute deviation: {spread:.3f} of the image side")


if __name__ == "__main__":
    main()
