"""A contact sheet of what a recipe's model sees: 8 unaugmented training crops per source, beside
faces that MTCNN found and aligned in the sample videos, as analyze crops them.

    python tools/crop_sheet.py configs/default.yaml --out docs/figures/crops.png

The check of a recipe's framing (docs/model-card.md): every row should frame the face alike.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from affectlab.analyze.media import iter_frames
from affectlab.data.dataset import FaceDataset
from affectlab.faces.align import ARCFACE_112, align_face, scale_template
from affectlab.faces.mtcnn import MTCNN
from affectlab.models.meta import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from affectlab.train import data as tdata
from affectlab.train import load_recipe
from affectlab.train.trainer import recipe_schema

N = 8


def to_uint8(tensor) -> np.ndarray:
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    return np.clip((tensor.numpy().transpose(1, 2, 0) * std + mean) * 255, 0, 255).astype(np.uint8)


def video_faces(videos: list[Path], size: int) -> list[np.ndarray]:
    detector, template = MTCNN(), scale_template(ARCFACE_112, size)
    faces = []
    for video in videos:
        for i, frame in enumerate(iter_frames(video)):
            if i % 40:
                continue
            found = detector.detect(frame.image)
            faces += [align_face(frame.image, p, template, size) for p in found.landmarks]
            if len(faces) >= N * (videos.index(video) + 1):
                break
    return faces[:N]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--out", required=True)
    parser.add_argument("--videos", nargs="*", default=sorted(Path("examples/media").glob("*.mp4")))
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    schema, size = recipe_schema(recipe), recipe.data.input_size
    rows = []
    for name, source in recipe.sources.items():
        samples = tdata.read_one(source, schema, {}).samples.sample(N, random_state=1)
        ds = FaceDataset(samples.reset_index(drop=True), schema, InputSpec(size, recipe.data.margin))
        rows.append((name, [to_uint8(ds[i]["image"]) for i in range(N)]))
    rows.append(("video (MTCNN)", video_faces([Path(v) for v in args.videos], size)))
    label_w = 150
    sheet = np.full((len(rows) * size, label_w + N * size, 3), 255, np.uint8)
    for r, (name, faces) in enumerate(rows):
        cv2.putText(sheet, name, (5, r * size + size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        for c, face in enumerate(faces):
            sheet[r * size:(r + 1) * size, label_w + c * size:label_w + (c + 1) * size] = face
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
