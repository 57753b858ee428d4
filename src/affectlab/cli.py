"""The ``affectlab`` command line. Each subcommand is a thin shell over a library function;
user mistakes (AffectlabError, unreadable files) end in one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from affectlab import __version__
from affectlab.errors import AffectlabError
from affectlab.labels import AU_SETS, LabelSchema, schema


def _schema_arg(value: str) -> LabelSchema:
    """``--aus abaw`` (or teacher-student, bp4d) or an explicit list ``AU1,AU2,AU12``."""
    try:
        return schema(value) if value in AU_SETS else schema(tuple(a for a in value.split(",") if a.strip()))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _json_ready(obj: Any) -> Any:
    """NaN (an undefined metric) becomes null so the JSON is valid for any reader."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(_json_ready(obj), indent=2, allow_nan=False) + "\n")


def cmd_data_summary(args: argparse.Namespace) -> int:
    from affectlab.data import read_source
    from affectlab.data.summary import format_summary, summarize

    table = read_source(args.source, images=args.images, split=args.split, schema=args.aus)
    summary = summarize(table, args.aus)
    print(format_summary(summary))
    if args.json:
        write_json(args.json, summary)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from affectlab.data import read_manifest
    from affectlab.metrics import format_scores
    from affectlab.scoring import load_thresholds, match, score_tables

    predictions = read_manifest(args.predictions, schema=args.aus, predictions=True)
    labels = read_manifest(args.labels, schema=args.aus)
    matched = match(predictions.samples, labels.samples,
                    pred_root=Path(args.predictions).resolve().parent, label_root=Path(args.labels).resolve().parent,
                    pred_name=args.predictions, label_name=args.labels)
    if matched.unmatched_labels:
        print(f"affectlab: warning: {matched.unmatched_labels} labelled images have no prediction in "
              f"{args.predictions}; scoring the {len(matched.labels)} that do", file=sys.stderr)
    thresholds = load_thresholds(args.thresholds, args.aus) if args.thresholds else None
    scores = score_tables(matched.predictions, matched.labels, args.aus, au_thresholds=thresholds)
    print(format_scores(scores))
    if args.json:
        write_json(args.json, scores)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from affectlab.models import format_model_table, model_table

    rows = model_table(args.names or None)
    print(format_model_table(rows))
    if args.json:
        write_json(args.json, [{k: r[k] for k in ("name", "params", "gflops", "input_size")} for r in rows])
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import warnings

    from affectlab.analyze.analyzer import Analyzer
    from affectlab.analyze.run import run_analysis

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyzer = Analyzer(args.model, device=args.device, faces=args.faces, stride=args.stride,
                            detect_every=args.detect_every, batch_size=args.batch_size)
    for w in caught:
        print(f"affectlab: WARNING: {w.message}", file=sys.stderr)
    report = run_analysis(analyzer, args.inputs, args.out, skip_existing=args.skip_existing, plots=args.plots,
                          video_out=args.video_out, abaw=args.abaw, progress=not args.quiet and sys.stderr.isatty())
    for line in report.summaries:
        print(line)
    print(f"wrote {len(report.written)} files to {args.out}")
    for line in report.failures:
        print(f"affectlab: error: {line}", file=sys.stderr)
    return 1 if report.failures else 0


def cmd_export(args: argparse.Namespace) -> int:
    from affectlab.analyze.predict import export_onnx

    out = export_onnx(args.model, args.out)
    print(f"wrote {out} (checked against PyTorch)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affectlab", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"affectlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    aus = dict(type=_schema_arg, default=schema("abaw"), metavar="SET",
               help=f"AU set: {', '.join(AU_SETS)} or a list like AU1,AU2,AU12 (default: abaw)")

    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True, metavar="ACTION")
    summary = data.add_parser("summary", help="images, videos and per-task label counts of a source",
                              description="Count images, videos and labels of any supported source: an ABAW "
                                          "annotation root, an ABAW MTL file, a CSV manifest or a shared set.")
    summary.add_argument("source", help="ABAW annotation root, MTL file, manifest CSV, or a dataset folder/labels.csv")
    summary.add_argument("--images", help="cropped_aligned root for the ABAW layouts (frames without an image are skipped)")
    summary.add_argument("--split", help="read one split only (ABAW: train or validation; FER+: train or valid)")
    summary.add_argument("--aus", **aus)
    summary.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    summary.set_defaults(func=cmd_data_summary)

    score = sub.add_parser("score", help="ABAW metrics of a predictions file against labels",
                           description="Per-AU F1, per-class F1, macro F1, accuracy, CCC of valence and arousal, "
                                       "and the ABAW P scores, for PREDICTIONS against LABELS (both CSV manifests).")
    score.add_argument("predictions", help="CSV manifest of predictions (AU columns may be probabilities)")
    score.add_argument("labels", help="CSV manifest of ground-truth labels")
    score.add_argument("--thresholds", metavar="FILE", help='JSON per-AU thresholds {"AU1": 0.4, ...} (default 0.5)')
    score.add_argument("--aus", **aus)
    score.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    score.set_defaults(func=cmd_score)

    models = sub.add_parser("models", help="the registered models: parameters and GFLOPs at their papers' input size")
    models.add_argument("names", nargs="*", help="only these models (default: all)")
    models.add_argument("--json", metavar="FILE", help='also write [{"name", "params", "gflops", "input_size"}, ...]')
    models.set_defaults(func=cmd_models)

    analyze = sub.add_parser("analyze", help="AUs, expression and valence/arousal of every face in images and videos",
                             description="Detect, align and analyse every face in images, folders, globs and videos. "
                                         "Each video goes to OUT/<stem>.csv, all images to OUT/images.csv.")
    analyze.add_argument("inputs", nargs="+", metavar="INPUT", help="image, video, folder or glob")
    analyze.add_argument("--out", default="affectlab_out", help="output folder (default: affectlab_out)")
    analyze.add_argument("--model", help="checkpoint (.safetensors) or exported .onnx (default: the bundled model)")
    analyze.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    analyze.add_argument("--faces", choices=["detect", "crops"], default="detect",
                         help="detect faces, or take each input as an aligned face crop (default: detect)")
    analyze.add_argument("--stride", type=int, default=1, help="analyse every n-th video frame (default: 1)")
    analyze.add_argument("--detect-every", type=int, default=1, metavar="K",
                         help="run the face detector on every k-th analysed frame and track in between (default: 1)")
    analyze.add_argument("--batch-size", type=int, default=32, help="faces per model call (default: 32)")
    analyze.add_argument("--plots", action="store_true", help="write PNG plots beside each table")
    analyze.add_argument("--video-out", action="store_true", help="write each video with boxes, expression and VA drawn")
    analyze.add_argument("--abaw", action="store_true", help="also write ABAW submission files under OUT/abaw")
    analyze.add_argument("--skip-existing", action="store_true", help="skip videos and images already analysed in OUT")
    analyze.add_argument("--quiet", action="store_true", help="no progress bars")
    analyze.set_defaults(func=cmd_analyze)

    export = sub.add_parser("export", help="export a checkpoint for onnxruntime",
                            description="Export a checkpoint to ONNX with its metadata, checked to agree with PyTorch.")
    export.add_argument("model", help="checkpoint (.safetensors)")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx for now")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except AffectlabError as e:
        print(f"affectlab: error: {e}", file=sys.stderr)
    except OSError as e:
        print(f"affectlab: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("affectlab: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
