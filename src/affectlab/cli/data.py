"""``affectlab data summary`` and ``affectlab models``: what a source holds, what the registry offers."""
from __future__ import annotations

import argparse

from affectlab.cli import options
from affectlab.jsonfile import write_json


def cmd_data_summary(args: argparse.Namespace) -> int:
    from affectlab.data import read_source, source_kind
    from affectlab.data.abaw import abaw_release
    from affectlab.data.summary import format_summary, summarize

    table = read_source(args.source, images=args.images, split=args.split, schema=args.aus)
    summary = summarize(table, args.aus)
    if source_kind(args.source) == "abaw":
        summary = {"release": abaw_release(args.source), **summary}
        print(f"release: {summary['release']}")
    print(format_summary(summary))
    if args.json:
        write_json(args.json, summary)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from affectlab.models.table import format_model_table, model_table, stored_table

    rows = stored_table(args.names or None) or model_table(args.names or None)
    print(format_model_table(rows))
    if args.json:
        write_json(args.json, [{k: r[k] for k in ("name", "params", "gflops", "input_size")} for r in rows])
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect datasets").add_subparsers(dest="data_command", required=True,
                                                                          metavar="ACTION")
    summary = data.add_parser("summary", help="images, videos and per-task label counts of a source",
                              description="Count images, videos and labels of any supported source: an ABAW "
                                          "annotation root, an ABAW MTL file, a CSV manifest or a shared set.")
    summary.add_argument("source", help="ABAW annotation root, MTL file, manifest CSV, or a dataset folder/labels.csv")
    options.add_source(summary)
    options.add_aus(summary)
    options.add_json(summary, "the summary")
    summary.set_defaults(func=cmd_data_summary)

    models = sub.add_parser("models", help="the registered models: parameters and GFLOPs at their papers' input size")
    models.add_argument("names", nargs="*", help="only these models (default: all)")
    models.add_argument("--json", metavar="FILE", help='also write [{"name", "params", "gflops", "input_size"}, ...]')
    models.set_defaults(func=cmd_models)
