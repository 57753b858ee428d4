"""Finding faces on video: the full MTCNN cascade on every frame against a schedule of full detections
with O-Net refinement in between (affectlab.faces.follow), and second looks at tight crops.

    python bench/detection.py [--detect-every 1 3 6 12] [--frames 240]

Per video and schedule: detector milliseconds per frame, faces found (summed over frames) against
detecting every frame, and the landmark error of the faces both found (mean distance of the 5 points,
in % of the inter-ocular distance, against detecting every frame). On AffectNet's annotated faces:
each face's box shifted and scaled as by a fast head movement (8 % of its size, 5 % scale), refined
by O-Net alone, against the full cascade, both scored against the annotated 5 points. On SFEW's
tight crops: faces found at first sight and with second looks; on the no-face media at crop sizes:
faces (wrongly) found.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from affectlab.analyze.media import iter_video, read_image  # noqa: E402
from affectlab.faces import MTCNN, FaceTracker, box_iou, follow, landmarks68_to_5  # noqa: E402
from affectlab.faces.mtcnn import SECOND_LOOKS  # noqa: E402
from common import MEDIA, ROOT, report, table  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def four_faces(frame: np.ndarray) -> np.ndarray:
    return np.tile(frame, (2, 2, 1))


def run_video(detector: MTCNN, frames: list[np.ndarray], k: int) -> tuple[list, float]:
    """Tracked faces per frame and detector seconds per frame, with full detection every k-th frame."""
    tracker, seconds, out = FaceTracker(), 0.0, []
    for i, image in enumerate(frames):
        start = time.perf_counter()
        out.append(follow(detector, tracker, image, detect=i % k == 0))
        seconds += time.perf_counter() - start
    return out, seconds / len(frames)


def landmark_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean 5-point distance in % of the inter-ocular distance of ``b``."""
    return float(100 * np.linalg.norm(a - b, axis=1).mean() / max(np.linalg.norm(b[1] - b[0]), 1.0))


def compare(reference: list, tracked: list) -> tuple[int, list[float]]:
    """Faces found, and landmark errors of faces matched (IoU >= 0.5) to the every-frame detections."""
    found, errors = 0, []
    for ref, got in zip(reference, tracked):
        found += len(got)
        if ref and got:
            iou = box_iou(np.array([f.box for f in ref]), np.array([f.box for f in got]))
            for r, g in zip(*np.nonzero(iou >= 0.5)):
                errors.append(landmark_error(got[g].landmarks, ref[r].landmarks))
    return found, errors


def videos(limit: int) -> list[tuple[str, list[np.ndarray]]]:
    sources = [("WolfgangLanger_Pexels.mp4", MEDIA / "WolfgangLanger_Pexels.mp4", None),
               ("single_face.mp4", MEDIA / "single_face.mp4", None),
               ("noface_face.mov", SHARED / "media" / "noface_face.mov", None),
               ("face_noface.mov", SHARED / "media" / "face_noface.mov", None),
               ("4 faces 1280x720", MEDIA / "WolfgangLanger_Pexels.mp4", four_faces)]
    out = []
    for name, path, transform in sources:
        if path.is_file():
            frames = [f.image for f in iter_video(path)][:limit]
            out.append((name, [transform(f) for f in frames] if transform else frames))
    return out


def video_rows(detector: MTCNN, schedules: list[int], limit: int) -> list[list[object]]:
    rows = []
    for name, frames in videos(limit):
        reference, full_ms = run_video(detector, frames, 1)
        ref_found = sum(len(f) for f in reference)
        for k in schedules:
            tracked, ms = (reference, full_ms) if k == 1 else run_video(detector, frames, k)
            found, errors = compare(reference, tracked)
            rows.append([name, len(frames), k, 1000 * ms, f"{full_ms / ms:.2f}x", f"{found} / {ref_found}",
                         f"{np.mean(errors):.2f}" if errors else "-", f"{np.percentile(errors, 95):.2f}" if errors else "-"])
            print(rows[-1], flush=True)
    return rows


def backend_rows(frames: list[np.ndarray], rounds: int = 3) -> list[list[object]]:
    """The full cascade on every frame with its nets on onnxruntime and on PyTorch (the detector before
    it moved to onnxruntime), interleaved; the fastest round of each."""
    from affectlab.faces.mtcnn_torch import NET_NAMES, TorchNet

    on_torch = MTCNN(min_face_size=40)
    on_torch.pnet, on_torch.rnet, on_torch.onet = (TorchNet(name, "cpu") for name in NET_NAMES)
    detectors = {"onnxruntime": MTCNN(min_face_size=40), "PyTorch": on_torch}
    best = {name: float("inf") for name in detectors}
    for _ in range(rounds):
        for name, detector in detectors.items():
            best[name] = min(best[name], run_video(detector, frames, 1)[1])
    return [[name, 1000 * seconds] for name, seconds in best.items()]


def affectnet_rows(detector: MTCNN, n: int) -> list[list[object]]:
    """Refinement from a moved box against the full cascade, both against the annotated 5 points."""
    root = SHARED / "affectnet"
    table_ = pd.read_csv(root / "labels.csv").sample(n, random_state=0)
    rng = np.random.default_rng(0)
    full_err, refined_err, found_full, found_refined = [], [], 0, 0
    for _, row in table_.iterrows():
        image = read_image(root / row["path"])
        truth = landmarks68_to_5(np.stack([row[[f"lnd_x{i}" for i in range(68)]].to_numpy(float),
                                           row[[f"lnd_y{i}" for i in range(68)]].to_numpy(float)], axis=1))
        faces = detector.detect(image)
        if not len(faces):
            continue
        found_full += 1
        full_err.append(landmark_error(faces.landmarks[0], truth))
        box = faces.boxes[0].astype(float)
        size = box[2:] - box[:2]
        centre = (box[:2] + box[2:]) / 2 + rng.choice([-1, 1], 2) * 0.08 * size
        half = size * (1 + rng.choice([-1, 1]) * 0.05) / 2
        refined = detector.refine(image, np.concatenate([centre - half, centre + half])[None])
        if len(refined):
            found_refined += 1
            refined_err.append(landmark_error(refined.landmarks[0], truth))
    return [["full cascade", f"{found_full} / {n}", f"{np.median(full_err):.1f}", f"{np.percentile(full_err, 90):.1f}"],
            ["O-Net refinement from the moved box", f"{found_refined} / {found_full}",
             f"{np.median(refined_err):.1f}", f"{np.percentile(refined_err, 90):.1f}"]]


def tight_crop_rows(detector: MTCNN) -> list[list[object]]:
    paths = sorted((SHARED / "sfew" / "images").glob("*/*/*.png"))
    images = [read_image(p) for p in paths]
    first = detector.detect_batch(images)
    second = detector.detect_batch(images, SECOND_LOOKS)
    frames = [read_image(SHARED / "media" / "free-mountain-vector-01.jpg")]
    frames += [f.image for f in iter_video(SHARED / "media" / "no_face.mp4")][::10]
    import cv2

    small = [cv2.resize(f, (512, round(512 * f.shape[0] / f.shape[1])), interpolation=cv2.INTER_AREA) for f in frames]
    tiles = [f[y:y + 181, x:x + 143] for f in small for y in (0, 100) for x in range(0, 369, 123)]
    false = detector.detect_batch(small + tiles, SECOND_LOOKS)
    return [["SFEW crops (143x181) with a face", f"{np.mean([len(d) > 0 for d in first]):.1%}",
             f"{np.mean([len(d) > 0 for d in second]):.1%}", len(images)],
            ["no-face media at 512 px and 143x181 tiles: faces found", sum(len(d) for d in detector.detect_batch(small + tiles)),
             sum(len(d) for d in false), len(small + tiles)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detect-every", type=int, nargs="+", default=[1, 3, 6, 12])
    parser.add_argument("--frames", type=int, default=240, help="frames per video (from the start)")
    parser.add_argument("--affectnet", type=int, default=300, help="AffectNet faces")
    args = parser.parse_args()
    detector = MTCNN(min_face_size=40)  # as analyze runs it
    video = video_rows(detector, args.detect_every, args.frames)
    nets = backend_rows([f.image for f in iter_video(MEDIA / "WolfgangLanger_Pexels.mp4")][:40])
    still = affectnet_rows(detector, args.affectnet)
    crops = tight_crop_rows(detector)
    body = ("Detector time per frame (MTCNN on onnxruntime, min face 40 px as in analyze), faces found summed over "
            "frames and landmark error against detecting every frame (% of the inter-ocular distance, faces "
            "matched at IoU >= 0.5). Detect every k: the full cascade on every k-th frame, O-Net alone on a "
            "window around each face's last box in between, and the full cascade at once when a face is lost.\n\n"
            + table(["video", "frames", "detect every", "ms/frame", "speed-up", "faces found", "landmark error %",
                     "95th pct %"], video)
            + "\n\nThe full cascade on every frame, its nets on onnxruntime or on PyTorch (the same numpy around "
            "them), 40 frames of WolfgangLanger_Pexels.mp4, fastest of 3 interleaved rounds:\n\n"
            + table(["nets on", "ms/frame"], nets)
            + "\n\nAffectNet faces (224x224), landmark error against the annotation (% inter-ocular). The refined row "
            "starts each face from its detected box moved by 8 % of its size and scaled by 5 %:\n\n"
            + table(["", "faces found", "median %", "90th pct %"], still)
            + "\n\nSecond looks (tight crops; `analyze` uses them for images):\n\n"
            + table(["", "first sight", "with second looks", "images"], crops))
    report("Face detection and tracking (cpu)", body)


if __name__ == "__main__":
    main()
