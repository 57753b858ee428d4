"""``affectlab visualize`` and ``affectlab compare``: a model's feature spaces, and runs side by side."""
from __future__ import annotations

import argparse
import sys

from affectlab.cli import options
from affectlab.jsonfile import write_json


def cmd_visualize(args: argparse.Namespace) -> int:
    from affectlab.analyze.run import output_folder
    from affectlab.interpret.visualize import visualize
    from affectlab.models import load_model, read_checkpoint_meta

    output_folder(args.out)  # the cheap checks first: the model and the data take a while
    schema = read_checkpoint_meta(args.model).schema
    samples = options.labelled_data(args.data, args.images, args.split, schema)
    thresholds = options.thresholds(args.thresholds, schema)
    device = options.device(args.device)
    model = load_model(args.model, device=device)
    report = visualize(model, samples, args.out, per_class=args.per_class, max_rows=args.max_rows, seed=args.seed,
                       perplexity=args.perplexity, au_thresholds=thresholds, batch_size=args.batch_size,
                       device=device, progress=not args.quiet and sys.stderr.isatty())
    summary = report.summary
    if summary["unreadable"]:
        options.warn(f"{summary['unreadable']} unreadable image(s) left out")
    print(f"{summary['rows']} faces through {args.model}; spaces: "
          + ", ".join(f"{k} = {v}" for k, v in summary["spaces"].items() if v))
    if "va" in summary:
        print(f"angle between the valence and arousal arrows: {summary['va']['angle_deg']:.1f} degrees")
    for line in report.skipped:
        options.note(f"not drawn: {line}")
    print(f"wrote {options.plural(len(report.written), 'file')} to {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from affectlab.interpret.compare import LabelledData, compare_runs, comparison_json, format_comparison

    data = None if not args.data else LabelledData(args.data, args.images, args.split, args.thresholds,
                                                   args.batch_size, options.device(args.device))
    runs = compare_runs(args.runs, data)
    print(format_comparison(runs))
    if args.json:
        write_json(args.json, comparison_json(runs))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    visualize = sub.add_parser("visualize", help="t-SNE figures of a model's sign-vehicle and message spaces",
                               description="Extract a model's feature spaces on labelled data and draw the SMM "
                                           "paper's Figures 5-6: one t-SNE panel per AU coloured by presence and "
                                           "titled with its F1; the message space by expression with covariance "
                                           "ellipses; by valence and by arousal with the arrows of steepest ascent "
                                           "and the angle between them. Also writes the 2-D points as CSV.")
    options.add_checkpoint(visualize)
    options.add_data(visualize, "labelled source(s): anything 'data summary' reads; several are stacked", nargs="+")
    visualize.add_argument("--out", required=True, help="output folder")
    visualize.add_argument("--per-class", type=options.whole(1), default=200, metavar="N",
                           help="points of each class per panel (AU absent/present, each expression; default: 200)")
    visualize.add_argument("--max-rows", type=options.whole(1), default=4000, metavar="N",
                           help="faces drawn at random from the data to run through the model (default: 4000)")
    visualize.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: 30)")
    visualize.add_argument("--seed", type=int, default=0, help="seed of the sampling and of t-SNE (default: 0)")
    options.add_thresholds(visualize, " for the F1 titles")
    options.add_batch_size(visualize, 64)
    options.add_device(visualize)
    options.add_quiet(visualize)
    visualize.set_defaults(func=cmd_visualize)

    compare = sub.add_parser("compare", help="evaluated runs side by side (per-AU F1, per-class F1, CCC, P scores)",
                             description="Print the scores of several runs side by side, like the SMM paper's "
                                         "Tables 1, 3 and 4. A RUN is the JSON of 'evaluate --json' or 'score "
                                         "--json', a checkpoint, evaluated here on --data, or a training run "
                                         "folder (or its results.json): its final model's validation scores, "
                                         "or that model evaluated on --data.")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="evaluation JSON, checkpoint (.safetensors), or training run folder / results.json")
    options.add_data(compare, "labelled source to evaluate checkpoints on (as 'evaluate')", required=False)
    options.add_thresholds(compare)
    options.add_batch_size(compare, 128)
    options.add_device(compare)
    compare.add_argument("--json", metavar="FILE",
                         help='also write {"runs": [...], "rows": [{"section", "metric", "values"}]}')
    compare.set_defaults(func=cmd_compare)
