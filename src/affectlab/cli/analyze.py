"""``affectlab analyze``, ``affectlab report`` and ``affectlab export``: faces in images and videos, the result
pages of an output folder, and the model for onnxruntime.

The parser must not import the analysis stack (torch, the detector): a mistake in the arguments ends
at once, checked before the model loads."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from affectlab.cli import options

#: affectlab.analyze.analyzer's default, here without importing it.
DETECT_EVERY = 6
#: affectlab.faces.descriptor's SAME_PERSON (dlib's distance threshold), here without importing it.
REID_THRESHOLD = 0.6
#: bf16 against fp32, mean |difference| of the outputs on 300 AffectNet faces with the default model: 0.0052.
BF16_TOLERANCE = 0.006


def cmd_analyze(args: argparse.Namespace) -> int:
    from affectlab.analyze.run import prepare, run_analysis

    if args.engine != "ray" and (args.address or args.workers):
        options.error("--address and --workers go with --engine ray")
        return 2
    found = prepare(args.inputs, args.out)  # before the model loads: a wrong path or --out costs no wait
    if not found.files:
        for error in found.errors:
            options.error(str(error))
        return 2
    smooth = _smoothing(args.smooth) if args.smooth else None
    progress = not args.quiet and sys.stderr.isatty()
    if args.landmarks is None:  # OpenFace's files always hold landmarks and pose
        args.landmarks = args.format == "openface"
    kept = dict(skip_existing=args.skip_existing, plots=args.plots, video_out=args.video_out, abaw=args.abaw,
                fmt=args.format, progress=progress, pages=args.report,
                parquet=args.engine == "ray" if args.parquet is None else args.parquet)
    try:
        if args.engine == "ray":
            from functools import partial

            from affectlab.analyze.corpus import RayEngine

            with RayEngine(partial(_analyzer, args, smooth), address=args.address, workers=args.workers,
                           device=args.device, progress=progress) as engine:
                report = run_analysis(engine, args.inputs, args.out, **kept)
        else:
            report = run_analysis(_analyzer(args, smooth), args.inputs, args.out, **kept)
    except KeyboardInterrupt:
        options.note(f"rows analysed so far are kept in {args.out} (an unfinished video's in <stem>.csv.partial); "
                     "run again with --skip-existing to finish")
        raise
    for line in report.summaries:
        print(line)
    if report.skipped:
        print(f"skipped {options.plural(len(report.skipped), 'input')} already analysed in {args.out} (--skip-existing)")
    n = len(report.written)
    print(f"wrote {options.plural(n, 'file')} to {args.out}" if n else f"nothing new written to {args.out}")
    for line in report.warnings:
        options.warn(line)
    for line in report.failures:
        options.error(line)
    return report.exit_status


def cmd_report(args: argparse.Namespace) -> int:
    from affectlab.analyze.pages import write_pages

    pages = write_pages(args.out)
    print(f"wrote {options.plural(len(pages.written), 'file')} to {args.out}; open {Path(args.out) / 'index.html'}")
    for line in pages.problems:
        options.error(line)
    return 0 if not pages.problems else 1 if pages.shown else 2


def _analyzer(args: argparse.Namespace, smooth: dict[str, float] | str | None) -> Any:
    """The model and the face pipeline of ``analyze``; ``smooth="checkpoint"``: the μ the model stores."""
    from affectlab.analyze.analyzer import Analyzer
    from affectlab.inference.backends import open_backend

    device = options.device(args.device)
    backend = open_backend(args.model, device, args.precision, features=bool(args.smooth))
    if smooth == "checkpoint":
        smooth = _checkpoint_smoothing(backend)
    return Analyzer(backend, device=device, faces=args.faces, stride=args.stride, detect_every=args.detect_every,
                    batch_size=args.batch_size, smooth=smooth, landmarks=args.landmarks, mesh=args.mesh,
                    flip=args.flip, reid=args.reid, reid_threshold=args.reid_threshold)


def _reid_threshold(value: str) -> float:
    """An argparse type: ``--reid-threshold``, a descriptor distance in (0, 2) as affectlab.faces.reid
    checks it, refused before any work starts."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < number < 2:
        raise argparse.ArgumentTypeError(f"must lie in (0, 2) (dlib's is {REID_THRESHOLD}), got {number}")
    return number


def _smoothing(spec: str) -> dict[str, float] | str:
    """``--smooth``: ``au=7,expr=9,va=9``, checked before the model loads; or "checkpoint" (read from it)."""
    from affectlab.inference.smoothing import parse_mu

    return spec if spec == "checkpoint" else parse_mu(spec)


def _checkpoint_smoothing(backend: Any) -> dict[str, float]:
    """The μ stored in the checkpoint (by ``calibrate smoothing``), else SMM's."""
    from affectlab.inference.smoothing import SMM_MU, checkpoint_mu

    stored = checkpoint_mu(backend.model) if backend.model is not None else {}
    if not stored:
        options.note(f"the model stores no smoothing; using SMM's mu {SMM_MU}")
    return stored or dict(SMM_MU)


def cmd_export(args: argparse.Namespace) -> int:
    from affectlab.analyze.export import export_onnx
    from affectlab.inference.backends import checkpoint_path

    out = export_onnx(checkpoint_path(args.model), args.out)
    print(f"wrote {out} (checked against PyTorch)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    analyze = sub.add_parser("analyze", help="AUs, expression and valence/arousal of every face in images and videos",
                             description="Detect, align and analyse every face in images, folders, globs and videos. "
                                         "Each video goes to OUT/<stem>.csv, all images to OUT/images.csv.")
    analyze.add_argument("inputs", nargs="+", metavar="INPUT", help="image, video, folder or glob")
    analyze.add_argument("--out", default="affectlab_out", help="output folder (default: affectlab_out)")
    analyze.add_argument("--model", help="checkpoint (.safetensors) or exported .onnx (default: the bundled model)")
    options.add_device(analyze)
    analyze.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                         help="bf16: about 2x the model's speed on GPUs and on CPUs with AVX512-BF16/AMX; "
                              f"outputs within {BF16_TOLERANCE} of fp32 on average (default: fp32)")
    analyze.add_argument("--landmarks", action=argparse.BooleanOptionalAction, default=None,
                         help="also each face's 68 landmarks (x_0..y_67, pixels), head pose (pose_T* mm, pose_R* rad) "
                              "and gaze (gaze_angle_x/y rad) from MediaPipe's mesh; on by default with --format "
                              "openface (--no-landmarks leaves them out)")
    analyze.add_argument("--mesh", action="store_true",
                         help="--landmarks and each face's full 468-point mesh (mesh_x_*, mesh_y_* pixels, mesh_z_*)")
    analyze.add_argument("--faces", choices=["detect", "crops"], default="detect",
                         help="detect faces, or take each input as an aligned face crop (default: detect)")
    analyze.add_argument("--stride", type=options.whole(1), default=1, help="analyse every n-th video frame (default: 1)")
    analyze.add_argument("--detect-every", type=options.whole(1), default=DETECT_EVERY, metavar="K",
                         help="run the full face detector on every k-th analysed frame and refine each face from "
                              f"its last box in between; 1: the full detector on every frame (default: {DETECT_EVERY})")
    options.add_batch_size(analyze, 32)
    analyze.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                         help="average each face's outputs with its mirror image's (twice the model's time); "
                              "default: as the checkpoint says (the bundled model's card says why)")
    analyze.add_argument("--smooth", nargs="?", const="checkpoint", metavar="au=MU,expr=MU,va=MU",
                         help="temporal smoothing of each face's features over a video (SMM eq. 9); mu per task, "
                              "default the checkpoint's (from 'calibrate smoothing') or SMM's au=7,expr=9,va=9")
    reid = analyze.add_mutually_exclusive_group()
    reid.add_argument("--reid", choices=["video", "across"], default="video",
                      help="re-identify faces: a face that leaves a video and returns keeps its face_id (video); "
                           "across: also a person_id column, one per person across all inputs (default: video)")
    reid.add_argument("--no-reid", dest="reid", action="store_const", const="off",
                      help="face_ids by box tracking alone: a face that returns gets a new one")
    analyze.add_argument("--reid-threshold", type=_reid_threshold, default=REID_THRESHOLD, metavar="D",
                         help=f"largest face-descriptor distance of one person, in (0, 2) (default: dlib's {REID_THRESHOLD})")
    analyze.add_argument("--plots", action="store_true", help="write PNG plots beside each table")
    analyze.add_argument("--video-out", action="store_true",
                         help="write each video, and a copy of each image, with boxes, expression and VA drawn")
    analyze.add_argument("--format", choices=["native", "openface", "feat"], default="native",
                         help="the tables' columns: affectlab's own, OpenFace 2.2 FeatureExtraction's, or py-feat's "
                              "Fex names (default: native)")
    analyze.add_argument("--abaw", action="store_true", help="also write ABAW submission files under OUT/abaw")
    analyze.add_argument("--report", action="store_true",
                         help="also write HTML pages of everything in OUT (OUT/index.html, a page per video)")
    analyze.add_argument("--skip-existing", action="store_true", help="skip videos and images already analysed in OUT")
    options.add_quiet(analyze)
    analyze.add_argument("--engine", choices=["local", "ray"], default="local",
                         help="local: this process; ray: many videos at once on a Ray cluster (needs affectlab[ray]; "
                              "default: local)")
    analyze.add_argument("--address", metavar="ADDR",
                         help="--engine ray: join the cluster at auto, HOST:PORT or ray://HOST:PORT (default: a "
                              "local cluster on this machine's cores)")
    analyze.add_argument("--workers", type=options.whole(1), metavar="N",
                         help="--engine ray: analyse N inputs at once, one model each (default: the cluster's CPUs)")
    analyze.add_argument("--parquet", action=argparse.BooleanOptionalAction, default=None,
                         help="also every table as OUT/parquet/<name>.parquet, one dataset (default: on with "
                              "--engine ray)")
    analyze.set_defaults(func=cmd_analyze)

    report = sub.add_parser("report", help="HTML pages of the results tables in an analyze output folder",
                            description="A page per video, one for the images and OUT/index.html, from the "
                                        "tables affectlab analyze wrote in OUT (as analyze --report writes them).")
    report.add_argument("out", metavar="OUT", help="the --out folder of affectlab analyze")
    report.set_defaults(func=cmd_report)

    export = sub.add_parser("export", help="export a checkpoint for onnxruntime",
                            description="Export a checkpoint to ONNX with its metadata, checked to agree with PyTorch.")
    export.add_argument("model", help="checkpoint (.safetensors), or 'default' for the bundled model")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx for now")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.set_defaults(func=cmd_export)
