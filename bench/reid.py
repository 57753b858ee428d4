"""Face re-identification: how well dlib's descriptor (affectlab.faces.descriptor) tells people apart
in affectlab's own alignment, how the re-identifying tracker keeps ids on composed videos, and what it costs.

    python bench/reid.py [--people 600] [--pairs 200000] [--lfw-couples 20] [--only lfw degrade videos cost]

1. LFW verification on lfw_expressions' LFW faces (default data location): every person with two or
   more photos (up to 4 each), faces found by MTCNN (the one nearest the image centre), framed as dlib
   frames them from its 5 points (DLIB_150). Same person in different photos against different
   people: the ROC (true match rate at fixed false match rates, AUC, equal error rate) and the true and
   false match rates at thresholds around dlib's 0.6.
2. The describability rule on the same pairs: faces shrunk (eye distance in pixels) or blurred
   (Gaussian sigma in pixels of the 128 px photo); the share the rule keeps, and the match rates of
   the pairs whose faces both pass, and of all pairs had every face been described.
3. Ids on videos composed from the sample media and LFW/AffectNet faces (leave and return with empty
   frames, a cut, two people crossing, a mirrored return): per person, whether one face_id kept them
   (ids kept) and whether one face_id held two people (wrongly merged); with re-identification off too.
4. Cost on the sample videos: the whole analysis (decode to rows, one process) with and without
   re-identification, and the descriptor's own seconds as a share of the whole.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the composed clips of the tests
from affectlab.analyze.media import read_image  # noqa: E402
from affectlab.faces import MTCNN  # noqa: E402
from affectlab.faces.descriptor import SAME_PERSON, FaceDescriptor, chips, describable  # noqa: E402
from common import MEDIA, ROOT, report, table  # noqa: E402
from reid_clips import SCENES, face_photo, ids_by_person, image_person, track, video_person  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
LFW = SHARED / "lfw_expressions"


def central_face(detector: MTCNN, image: np.ndarray) -> np.ndarray | None:
    """The 5 points of the detected face nearest the image centre, or None."""
    found = detector.detect(image)
    if not len(found):
        return None
    centre = np.array(image.shape[1::-1]) / 2
    return found.landmarks[int(np.argmin(np.linalg.norm(found.landmarks[:, 2] - centre, axis=1)))]


def lfw_people(people: int, per_person: int = 4) -> pd.DataFrame:
    """Up to ``per_person`` photos of each of the first ``people`` LFW persons with two or more."""
    labels = pd.read_csv(LFW / "labels.csv")
    labels = labels[(labels["kind"] == "lfw") & labels["person"].notna()]
    counts = labels["person"].value_counts()
    chosen = sorted(counts[counts >= 2].index)[:people]
    return labels[labels["person"].isin(chosen)].groupby("person").head(per_person).reset_index(drop=True)


def degrade(image: np.ndarray, shrink: float = 1.0, sigma: float = 0.0) -> np.ndarray:
    if sigma:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    if shrink != 1.0:
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    return image


def pairs(person: np.ndarray, n_other: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All same-person index pairs, and ``n_other`` random different-person pairs."""
    i, j = np.triu_indices(len(person), 1)
    same = person[i] == person[j]
    other = np.flatnonzero(~same)
    pick = rng.choice(other, size=min(n_other, len(other)), replace=False)
    return np.stack([i[same], j[same]], 1), np.stack([i[pick], j[pick]], 1)


def rates(d_same: np.ndarray, d_other: np.ndarray, threshold: float) -> tuple[float, float]:
    """(true match rate, false match rate) at ``threshold``."""
    return float((d_same < threshold).mean()), float((d_other < threshold).mean())


def roc(d_same: np.ndarray, d_other: np.ndarray) -> dict[str, float]:
    thresholds = np.quantile(d_other, [1e-4, 1e-3, 1e-2, 1e-1])
    grid = np.linspace(0, 2, 2001)
    tmr = np.array([(d_same < t).mean() for t in grid])
    fmr = np.array([(d_other < t).mean() for t in grid])
    eer_at = int(np.argmin(np.abs((1 - tmr) - fmr)))
    auc = float(np.trapezoid(tmr, fmr))
    return {**{f"TMR at FMR {f:g}": float((d_same < t).mean()) for f, t in zip([1e-4, 1e-3, 1e-2, 1e-1], thresholds)},
            "AUC": auc, "EER": float(fmr[eer_at]), "EER threshold": float(grid[eer_at])}


def lfw_section(args: argparse.Namespace) -> tuple[str, dict]:
    detector, describe, rng = MTCNN(), FaceDescriptor(), np.random.default_rng(0)
    photos = lfw_people(args.people)
    images = [read_image(LFW / p) for p in photos["path"]]
    start = time.perf_counter()
    points = [central_face(detector, im) for im in images]
    found = np.array([p is not None for p in points])
    keep = np.flatnonzero(found)
    person = photos["person"].to_numpy()[keep]
    face_chips = np.stack([chips(images[k], points[k][None])[0] for k in keep])
    descriptors = np.concatenate([describe(face_chips[i:i + 32]) for i in range(0, len(face_chips), 32)])
    seconds = time.perf_counter() - start
    same, other = pairs(person, args.pairs, rng)
    dist = lambda d, p: np.linalg.norm(d[p[:, 0]] - d[p[:, 1]], axis=1)  # noqa: E731
    d_same, d_other = dist(descriptors, same), dist(descriptors, other)
    curve = roc(d_same, d_other)
    lines = [f"{len(photos):,} photos of {photos['person'].nunique():,} people, a face found in {found.sum():,} "
             f"({found.mean():.1%}); {len(same):,} same-person pairs, {len(other):,} random different-person pairs. "
             f"Detection and descriptors: {seconds:.0f} s.", "",
             table(["threshold", "true match rate", "false match rate", "balanced accuracy"],
                   [[t, *(f"{r:.4f}" for r in rates(d_same, d_other, t)),
                     f"{(rates(d_same, d_other, t)[0] + 1 - rates(d_same, d_other, t)[1]) / 2:.4f}"]
                    for t in (0.5, 0.55, 0.6, 0.65)]), "",
             "ROC: " + ", ".join(f"{k} {v:.4f}" for k, v in curve.items()) + "; distance medians: same "
             f"{np.median(d_same):.3f}, different {np.median(d_other):.3f}."]
    state = {"images": images, "points": points, "keep": keep, "person": person, "same": same, "other": other}
    return "\n".join(lines), state


def degraded_rates(state: dict, describe: FaceDescriptor, detector: MTCNN, shrink: float, sigma: float) -> list:
    """Faces of every kept photo degraded and found again: share describable, rates of the describable
    pairs, and of all pairs as if every face had been described."""
    ds, ok = [], []
    for k in state["keep"]:
        image = degrade(state["images"][k], shrink, sigma)
        five = central_face(detector, image)
        if five is None:  # not found again: counts as not describable
            ds.append(np.full(128, np.nan, np.float32))
            ok.append(False)
            continue
        chip = chips(image, five[None])
        ds.append(describe(chip)[0])
        ok.append(bool(describable(five[None], chip)[0]))
    d, ok = np.stack(ds), np.array(ok)
    out = []
    for name, pair in (("same", state["same"]), ("other", state["other"])):
        dist = np.linalg.norm(d[pair[:, 0]] - d[pair[:, 1]], axis=1)
        both = ok[pair[:, 0]] & ok[pair[:, 1]]
        seen = ~np.isnan(dist)
        out.append(((dist[both] < SAME_PERSON).mean() if both.any() else float("nan"),
                    (dist[seen] < SAME_PERSON).mean()))
    return [float(ok.mean()), out[0][0], out[1][0], out[0][1], out[1][1]]


def degrade_section(state: dict) -> str:
    detector, describe = MTCNN(min_face_size=12), FaceDescriptor()
    sub = dict(state)
    rows = []
    for shrink, sigma in ((1.0, 0.0), (0.6, 0.0), (0.4, 0.0), (0.33, 0.0), (0.25, 0.0), (1.0, 1.5), (1.0, 2.5),
                          (1.0, 3.5)):
        share, tmr_ok, fmr_ok, tmr_all, fmr_all = degraded_rates(sub, describe, detector, shrink, sigma)
        rows.append([f"x{shrink:g}", f"{sigma:g}", f"{share:.1%}", f"{tmr_ok:.3f}", f"{fmr_ok:.4f}",
                     f"{tmr_all:.3f}", f"{fmr_all:.4f}"])
    return table(["shrink", "blur sigma", "describable", "TMR (both describable)", "FMR (both describable)",
                  "TMR (all described)", "FMR (all described)"], rows)


def clip_ids(detector: MTCNN, describe: FaceDescriptor, frames: list, reid: bool) -> dict[str, set[int]]:
    return ids_by_person(track(detector, describe, frames, reid), frames)


def video_section(pairs_of_lfw: int) -> str:
    """Ids kept and wrongly merged on the composed clips: the sample media's people and LFW pairs."""
    detector, describe, rng = MTCNN(), FaceDescriptor(), np.random.default_rng(1)
    media = {"A": video_person(detector, "single_face.mp4", [0, 60]),
             "B": video_person(detector, "WolfgangLanger_Pexels.mp4", [0, 300]),
             "C": image_person(detector, MEDIA / "multi_face.jpg", 1)}
    couples = [(media["A"], media["B"]), (media["A"], media["C"]), (media["B"], media["C"])]
    labels = pd.read_csv(LFW / "labels.csv")
    labels = labels[(labels["kind"] == "lfw") & labels["person"].notna()]
    counts = labels["person"].value_counts()
    photos: dict[str, list[np.ndarray]] = {}
    for name in rng.permutation(sorted(counts[counts >= 2].index)):
        try:
            photos[name] = [face_photo(detector, read_image(LFW / p))
                            for p in labels.loc[labels["person"] == name, "path"].head(2)]
        except ValueError:  # no face found in one of the photos
            continue
        if len(photos) == 2 * pairs_of_lfw:
            break
    names = list(photos)
    couples += [(photos[a], photos[b]) for a, b in zip(names[::2], names[1::2])]
    rows = []
    for scene, make in SCENES.items():
        for reid in (True, False):
            kept = merged = people = 0
            for a, b in couples:
                ids = clip_ids(detector, describe, make(a, b), reid)
                people += len(ids)
                kept += sum(len(v) == 1 for v in ids.values())
                merged += len(set.intersection(*ids.values())) if len(ids) == 2 else 0
            rows.append([scene, "on" if reid else "off", f"{kept} of {people}", merged])
    return (f"{len(couples)} couples (A, B): 3 from the sample media, {len(couples) - 3} of LFW people with two "
            "different photos each (the returning person shows the other photo); 288x128 frames, detection on every "
            "frame. Ids kept: people who had one face_id throughout; wrongly merged: face_ids held by both people.\n\n"
            + table(["scene", "re-identification", "ids kept", "wrongly merged"], rows))


def cost_section(repeats: int) -> str:
    """Whole-process seconds of `affectlab analyze VIDEO` with and without re-identification (alternating
    runs, the median), and the re-identification stage's share of one in-process analysis."""
    import subprocess
    import tempfile

    from affectlab.analyze.analyzer import Analyzer

    import resource

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    rows = []
    for video in sorted(MEDIA.glob("*.mp4")):
        seconds: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(repeats):
            for mode, extra in (("on", []), ("off", ["--no-reid"])):
                with tempfile.TemporaryDirectory() as out:
                    start = cpu_seconds()
                    subprocess.run([sys.executable, "-m", "affectlab.cli", "analyze", str(video), "--out", out,
                                    "--quiet", *extra], check=True, capture_output=True)
                    seconds[mode].append(cpu_seconds() - start)
        analyzer = Analyzer()
        start = time.perf_counter()
        table_ = analyzer.analyze(video)
        whole = time.perf_counter() - start
        on, off = np.median(seconds["on"]), np.median(seconds["off"])
        rows.append([video.name, int(table_["frame"].max()), int(table_["face_id"].max()) + 1, f"{on:.2f}",
                     f"{off:.2f}", f"{(on - off) / off:+.1%}", f"{analyzer.timings['reid'] / whole:.1%}"])
    describe = FaceDescriptor()
    faces = np.random.default_rng(0).integers(0, 256, size=(8, 150, 150, 3), dtype=np.uint8)
    start = time.perf_counter()
    describe(faces[:1])  # loads the session
    load = time.perf_counter() - start
    start = time.perf_counter()
    for face in faces:
        describe(face[None])
    one = (time.perf_counter() - start) / len(faces)
    return (f"The descriptor loads in {load:.2f} s (onnxruntime session; once per process, when a first comparison needs it: a video of "
            f"one person never loads it) and "
            f"takes {one * 1e3:.1f} ms a face. Whole process: the CPU seconds (user + system, steadier than wall time on a "
            f"shared machine) of `affectlab analyze VIDEO --quiet` from start to exit, with (default) and without "
            f"(`--no-reid`) re-identification, median of {repeats} alternating runs; the stage's share: its own wall "
            "seconds (loading the descriptor, chips, sharpness, descriptors, matching) over one in-process "
            "`Analyzer.analyze` of the video.\n\n"
            + table(["video", "frames", "face_ids", "with reid CPU s", "without CPU s", "difference", "reid share"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=600, help="LFW people with two or more photos")
    parser.add_argument("--degrade-people", type=int, default=200, help="of those, for the describability table")
    parser.add_argument("--pairs", type=int, default=200_000, help="different-person pairs")
    parser.add_argument("--lfw-couples", type=int, default=20, help="LFW couples of the composed videos")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each cost measurement")
    parser.add_argument("--no-report", action="store_true", help="print only; do not append to BENCHMARKS.md")
    parser.add_argument("--only", nargs="+", choices=("lfw", "degrade", "videos", "cost"),
                        default=("lfw", "degrade", "videos", "cost"), help="run only these parts (degrade needs lfw)")
    args = parser.parse_args()
    sections = []
    if "lfw" in args.only:
        body, state = lfw_section(args)
        print(body, flush=True)
        sections.append(("LFW verification in affectlab's alignment", body))
        chosen = np.isin(state["person"], sorted(set(state["person"]))[:args.degrade_people])
        same, other = pairs(state["person"][chosen], args.pairs, np.random.default_rng(0))
        subset = dict(state, keep=state["keep"][chosen], same=same, other=other)
    parts = {"degrade": ("Faces too small or blurred for a descriptor", lambda: degrade_section(subset)),
             "videos": ("Ids on composed videos", lambda: video_section(args.lfw_couples)),
             "cost": ("Cost on the sample videos", lambda: cost_section(args.repeats))}
    for name, (title, make) in parts.items():
        if name in args.only:
            sections.append((title, make()))
            print(sections[-1][1], flush=True)  # each as it is done: the whole run takes a while
    report("Face re-identification (cpu)", "\n\n".join(f"**{title}.** {text}" for title, text in sections),
           append=not args.no_report)


if __name__ == "__main__":
    main()
