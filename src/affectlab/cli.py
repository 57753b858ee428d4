"""The ``affectlab`` command line. Each subcommand is a thin shell over a library function;
user mistakes (AffectlabError, unreadable files) end in one line on stderr and exit status 2 (1 where
other inputs of the same call were still done), checked before any model loads where they can be."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from affectlab import __version__
from affectlab.devices import DEFAULT_DEVICE
from affectlab.errors import AffectlabError, DataError
from affectlab.log import show_messages
from affectlab.jsonfile import write_json
from affectlab.labels import AU_SETS, LabelSchema, schema


DESCRIPTION = ("Facial action units, expressions and valence/arousal from faces: analyse images and videos, "
               "train the papers' models on partially labelled data, evaluate, score and compare them.")


#: bf16 against fp32, mean |difference| of the outputs on 300 AffectNet faces with the default model: 0.0052.
BF16_TOLERANCE = 0.006


def _schema_arg(value: str) -> LabelSchema:
    """``--aus abaw`` (or teacher-student, bp4d) or an explicit list ``AU1,AU2,AU12``."""
    try:
        return schema(value) if value in AU_SETS else schema(tuple(a for a in value.split(",") if a.strip()))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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


def cmd_score(args: argparse.Namespace) -> int:
    from affectlab.metrics import format_scores
    from affectlab.scoring import load_thresholds, match, read_predictions, score_tables

    predictions = read_predictions(args.predictions, args.aus, face_id=args.face_id)
    labels = _labelled(args.labels, args.images, args.split, args.aus, check_images=False)  # pairs by path alone
    label_folder = Path(args.labels).resolve()
    matched = match(predictions, labels.samples, pred_root=Path(args.predictions).resolve().parent,
                    label_root=label_folder if label_folder.is_dir() else label_folder.parent,
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
    from affectlab.models.table import format_model_table, model_table, stored_table

    rows = stored_table(args.names or None) or model_table(args.names or None)
    print(format_model_table(rows))
    if args.json:
        write_json(args.json, [{k: r[k] for k in ("name", "params", "gflops", "input_size")} for r in rows])
    return 0


DETECT_EVERY = 6  # affectlab.analyze.analyzer's default, here without importing it


def cmd_analyze(args: argparse.Namespace) -> int:
    from affectlab.analyze.run import prepare, run_analysis

    found = prepare(args.inputs, args.out)  # before the model loads: a wrong path or --out costs no wait
    if not found.files:
        for error in found.errors:
            _error(str(error))
        return 2
    smooth = _smoothing(args.smooth) if args.smooth else None
    analyzer = _analyzer(args, smooth)
    try:
        report = run_analysis(analyzer, args.inputs, args.out, skip_existing=args.skip_existing, plots=args.plots,
                              video_out=args.video_out, abaw=args.abaw, fmt=args.format,
                              progress=not args.quiet and sys.stderr.isatty())
    except KeyboardInterrupt:
        print(f"affectlab: note: rows analysed so far are kept in {args.out} (an unfinished video's in "
              "<stem>.csv.partial); run again with --skip-existing to finish", file=sys.stderr)
        raise
    for line in report.summaries:
        print(line)
    if report.skipped:
        n = len(report.skipped)
        print(f"skipped {n} input{'' if n == 1 else 's'} already analysed in {args.out} (--skip-existing)")
    n = len(report.written)
    print(f"wrote {n} file{'' if n == 1 else 's'} to {args.out}" if n else f"nothing new written to {args.out}")
    for line in report.warnings:
        print(f"affectlab: warning: {line}", file=sys.stderr)
    for line in report.failures:
        _error(line)
    return report.exit_status


def _analyzer(args: argparse.Namespace, smooth: dict[str, float] | str | None) -> Any:
    """The model and the face pipeline of ``analyze``; ``smooth="checkpoint"``: the μ the model stores."""
    from affectlab.analyze.analyzer import Analyzer
    from affectlab.inference.backends import open_backend

    device = _device(args.device)
    backend = open_backend(args.model, device, args.precision, features=bool(args.smooth))
    if smooth == "checkpoint":
        smooth = _checkpoint_smoothing(backend)
    return Analyzer(backend, device=device, faces=args.faces, stride=args.stride, detect_every=args.detect_every,
                    batch_size=args.batch_size, smooth=smooth, landmarks=args.landmarks, mesh=args.mesh,
                    flip=args.flip)


def _smoothing(spec: str) -> dict[str, float] | str:
    """``--smooth``: ``au=7,expr=9,va=9``, checked before the model loads; or "checkpoint" (read from it)."""
    from affectlab.inference.smoothing import parse_mu

    return spec if spec == "checkpoint" else parse_mu(spec)


def _checkpoint_smoothing(backend: Any) -> dict[str, float]:
    """The μ stored in the checkpoint (by smooth-search), else SMM's."""
    from affectlab.inference.smoothing import SMM_MU, checkpoint_mu

    stored = checkpoint_mu(backend.model) if backend.model is not None else {}
    if not stored:
        print(f"affectlab: note: the model stores no smoothing; using SMM's mu {SMM_MU}", file=sys.stderr)
    return stored or dict(SMM_MU)


def cmd_export(args: argparse.Namespace) -> int:
    from affectlab.analyze.export import export_onnx
    from affectlab.inference.backends import DEFAULT_MODEL

    out = export_onnx(DEFAULT_MODEL if args.model == "default" else args.model, args.out)
    print(f"wrote {out} (checked against PyTorch)")
    return 0


def _labelled(path: str, images: str | None, split: str | None, aus: LabelSchema, check_images: bool = True) -> Any:
    """A labelled source as a sample table; one without a usable row is one line saying why, not a failure
    deep inside evaluation. ``check_images=False``: rows are kept whether or not their image is on disk."""
    from affectlab.data import read_source

    table = read_source(path, images=images, split=split, schema=aus, check_images=check_images)
    if not len(table):
        why = ", ".join(f"{n} {reason}" for reason, n in table.skipped.items()) or "no rows"
        raise DataError(path, f"no labelled image to use ({why})")
    return table


def _labelled_data(paths: Sequence[str], images: str | None, split: str | None, aus: LabelSchema) -> Any:
    """The rows of one or more sources, stacked into one sample table (a DataFrame)."""
    from affectlab.data import concat_tables

    return concat_tables([_labelled(p, images, split, aus) for p in paths], aus).samples


def cmd_visualize(args: argparse.Namespace) -> int:
    from affectlab.analyze.run import output_folder
    from affectlab.interpret.visualize import visualize
    from affectlab.models import load_model, read_checkpoint_meta
    from affectlab.scoring import load_thresholds

    output_folder(args.out)  # the cheap checks first: the model and the data take a while
    schema = read_checkpoint_meta(args.model).schema
    samples = _labelled_data(args.data, args.images, args.split, schema)
    thresholds = load_thresholds(args.thresholds, schema) if args.thresholds else None
    device = _device(args.device)
    model = load_model(args.model, device=device)
    report = visualize(model, samples, args.out, per_class=args.per_class, max_rows=args.max_rows, seed=args.seed,
                       perplexity=args.perplexity, au_thresholds=thresholds, batch_size=args.batch_size,
                       device=device, progress=not args.quiet and sys.stderr.isatty())
    summary = report.summary
    if summary["unreadable"]:
        print(f"affectlab: warning: {summary['unreadable']} unreadable image(s) left out", file=sys.stderr)
    print(f"{summary['rows']} faces through {args.model}; spaces: "
          + ", ".join(f"{k} = {v}" for k, v in summary["spaces"].items() if v))
    if "va" in summary:
        print(f"angle between the valence and arousal arrows: {summary['va']['angle_deg']:.1f} degrees")
    for line in report.skipped:
        print(f"affectlab: note: not drawn: {line}", file=sys.stderr)
    n = len(report.written)
    print(f"wrote {n} file{'' if n == 1 else 's'} to {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from affectlab.interpret.compare import Run, comparison_json, format_comparison, is_training_run, run_names

    missing = [r for r in args.runs if not Path(r).exists()]
    if missing:
        raise DataError(missing[0], "no such file or folder")
    checkpoints = [r for r in args.runs if Path(r).suffix.lower() != ".json" and not is_training_run(r)]
    if checkpoints and not args.data:
        raise AffectlabError(f"{checkpoints[0]}: a checkpoint is evaluated on labelled data: give --data SOURCE")
    labelled = _Labelled(args)
    runs = [Run(name, _run_scores(path, labelled)) for name, path in zip(run_names(args.runs), args.runs)]
    print(format_comparison(runs))
    if args.json:
        write_json(args.json, comparison_json(runs))
    return 0


class _Labelled:
    """``compare --data``: the labelled table per label schema (read once) and how to evaluate on it."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.tables = args, {}

    def scores(self, checkpoints: Sequence[str | Path]) -> dict:
        from affectlab.interpret.compare import evaluate_checkpoint
        from affectlab.models import read_checkpoint_meta
        from affectlab.scoring import load_thresholds

        a = self.args
        schema = read_checkpoint_meta(checkpoints[0]).schema
        if schema not in self.tables:
            self.tables[schema] = _labelled(a.data, a.images, a.split, schema).samples
        thresholds = load_thresholds(a.thresholds, schema) if a.thresholds else None
        return evaluate_checkpoint(checkpoints, self.tables[schema], au_thresholds=thresholds,
                                   batch_size=a.batch_size, device=_device(a.device))


def _run_scores(path: str, labelled: _Labelled) -> dict:
    """One column of ``compare``: an evaluation JSON, a checkpoint on --data, or a training run (its final
    model on --data, else its validation scores)."""
    from affectlab.interpret.compare import final_checkpoints, final_scores, is_training_run, read_run, read_scores

    if is_training_run(path):
        results, folder = read_run(path)
        if labelled.args.data:
            return labelled.scores(final_checkpoints(results, folder))
        return final_scores(results, folder)
    if Path(path).suffix.lower() == ".json":
        return read_scores(path)
    return labelled.scores([path])


def _device(value: str) -> str:
    from affectlab.devices import resolve_device

    return resolve_device(value)


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from affectlab.train import load_recipe, train

    overrides = [*args.overrides, *([f"train.device={args.device}"] if args.device else []),
                 *([f"data_root={args.data_root}"] if args.data_root else [])]
    recipe = load_recipe(args.recipe, overrides)
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    results = train(recipe, out, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0
    for name, member in {**results["members"], **results["ensembles"]}.items():
        if not member.get("validation"):
            print(f"{name:<20} trained (no validation data)")
        for source, scores in member.get("validation", {}).items():
            p = "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if k.startswith("P_") and v is not None)
            print(f"{name:<20} {source:<16} {p or 'no scores'}")
    final = results.get("final")
    if final:
        print(f"final model: {' '.join(final)}")
        voting = recipe.ensembles.get(recipe.final) is not None and recipe.ensembles[recipe.final].method == "vote"
        models = " ".join(f"--model {m}" for m in final) + (" --ensemble vote" if voting else "")
        print(f"evaluate it: affectlab evaluate {models} --data LABELS")
    print(f"run directory: {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from affectlab.metrics import format_scores
    from affectlab.models import load_model, read_checkpoint_meta
    from affectlab.scoring import load_thresholds
    from affectlab.inference.batch import evaluate

    schema = read_checkpoint_meta(args.model[0]).schema  # the labels are checked before the models load
    labels = _labelled(args.data, args.images, args.split, schema)
    thresholds = load_thresholds(args.thresholds, schema) if args.thresholds else None
    device = _device(args.device)
    models = [load_model(path, schema=schema, device=device) for path in args.model]
    result = evaluate(models, labels.samples, method=args.ensemble, au_thresholds=thresholds,
                      batch_size=args.batch_size, workers=args.workers, device=device)
    if result.unreadable:
        print(f"affectlab: warning: {len(result.unreadable)} unreadable image(s) left out, e.g. "
              f"{result.unreadable[0]}", file=sys.stderr)
    print(format_scores(result.scores))
    if args.json:
        write_json(args.json, result.scores)
    if args.predictions:
        result.predictions.to_csv(args.predictions, index=False)
    return 0


def cmd_smooth_search(args: argparse.Namespace) -> int:
    from affectlab.models import load_model, read_checkpoint_meta
    from affectlab.train.smooth_search import format_search, search_mu, write_smoothing

    schema = read_checkpoint_meta(args.model).schema  # the labels are checked before the model loads
    table = _labelled(args.data, args.images, args.split, schema)
    if (table.samples["video"].astype(str) == "").all():
        raise DataError(args.data, "holds no video frames (its rows name no video); smooth-search needs videos, "
                                   "e.g. an ABAW root")
    device = _device(args.device)
    model = load_model(args.model, device=device)
    results = search_mu(model, table.samples, grid=args.mu, folds=args.folds, batch_size=args.batch_size,
                        workers=args.workers, device=device)
    print(format_search(results))
    chosen = {task: r.mu for task, r in results.items()}
    if args.write or args.output:
        target = args.output or args.model
        write_smoothing(model, target, chosen)
        print(f"smoothing {chosen} stored in {target}")
    if args.json:
        write_json(args.json, {task: {"mu": r.mu, "scores": {str(k): v for k, v in r.scores.items()}, "folds": r.folds}
                               for task, r in results.items()})
    return 0


def cmd_tune_thresholds(args: argparse.Namespace) -> int:
    from affectlab.data import read_source
    from affectlab.models import load_model
    from affectlab.train.thresholds import format_thresholds, search_thresholds, write_thresholds

    device = _device(args.device)
    model = load_model(args.model, device=device)
    if args.recipe:
        from affectlab.train import data as tdata
        from affectlab.train import load_recipe

        recipe = load_recipe(args.recipe)
        named = {**recipe.sources, **recipe.validation}
        if args.data not in named:
            raise AffectlabError(f"{args.recipe}: no source {args.data!r}; sources: {', '.join(named)}")
        samples = tdata.read_one(named[args.data], model.schema, {}).samples
    else:
        samples = read_source(args.data, images=args.images, split=args.split, schema=model.schema).samples
    try:
        result = search_thresholds(model, samples, folds=args.folds, batch_size=args.batch_size,
                                   workers=args.workers, device=device)
    except AffectlabError as e:
        raise DataError(args.data, str(e)) from None
    print(format_thresholds(result))
    tuned, untuned = float(result.f1_cross_validated.mean()), float(result.f1_default.mean())
    if (args.write or args.output) and args.if_better and tuned <= untuned:
        print(f"cross-validated, the tuned thresholds give mean F1 {tuned:.3f}, 0.5 gives {untuned:.3f}: "
              f"not stored (--if-better)")
    elif args.write or args.output:
        target = args.output or args.model
        write_thresholds(model, target, result)
        print(f"AU thresholds stored in {target}")
    if args.json:
        write_json(args.json, {"thresholds": result.as_dict(), "folds": result.folds,
                               "f1_at_0.5": dict(zip(result.au_names, result.f1_default.tolist())),
                               "f1_tuned_cross_validated": dict(zip(result.au_names, result.f1_cross_validated.tolist()))})
    return 0


def _mu_grid(value: str) -> list[float]:
    try:
        grid = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0,1,2, got {value!r}") from None
    if not grid or min(grid) < 0:
        raise argparse.ArgumentTypeError("mu values must be >= 0")
    return grid


def _add_training_commands(sub: argparse._SubParsersAction) -> None:
    """``train``, ``evaluate`` and ``smooth-search``."""
    source = dict(images=dict(help="cropped_aligned root for the ABAW layouts"),
                  split=dict(help="read one split only (ABAW: train or validation; FER+: train or valid)"))
    loading = dict(batch_size=dict(type=_whole(1), default=128, help="images per forward pass (default 128)"),
                   workers=dict(type=_whole(0), default=2, help="data loader processes (default 2)"),
                   device=dict(default=DEFAULT_DEVICE, help="cpu, cuda, cuda:1, ... (default: auto)"))

    train = sub.add_parser("train", help="train a recipe (configs/*.yaml) from partially labelled, multi-database data",
                           description="Run a YAML recipe's stages (teacher, students, folds, ...) into a run "
                                       "directory. Any recipe value can be changed with key=value, e.g. "
                                       "sources.au.path=/data/abaw stages.student.repeat=3 data.workers=8. "
                                       "Several GPUs: torchrun --nproc_per_node=N -m affectlab.cli train ...")
    train.add_argument("recipe", help="YAML recipe, e.g. configs/teacher-student.yaml")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides (values parsed as YAML)")
    train.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    train.add_argument("--device", help="cpu, cuda (default: the recipe's train.device, auto)")
    train.add_argument("--data-root", help="where the recipe's sources live (its data_root)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="ABAW metrics of a trained model (or an ensemble) on labelled data",
                              description="Predict every image of DATA with the model(s) and print per-AU F1, "
                                          "per-class F1, macro F1, accuracy, CCC of valence and arousal and the "
                                          "ABAW P scores for the labels DATA has; the JSON is that of "
                                          "'affectlab score'.")
    evaluate.add_argument("--model", action="append", required=True, metavar="CKPT",
                          help="checkpoint (.safetensors); repeat for an ensemble")
    evaluate.add_argument("--data", required=True, metavar="SOURCE",
                          help="anything 'data summary' reads: manifest CSV, ABAW root or MTL file, a dataset folder")
    evaluate.add_argument("--images", **source["images"])
    evaluate.add_argument("--split", **source["split"])
    evaluate.add_argument("--ensemble", choices=("mean", "vote"), default="mean",
                          help="how several models combine (default mean)")
    evaluate.add_argument("--thresholds", metavar="FILE", help='JSON per-AU thresholds {"AU1": 0.4, ...} (default 0.5)')
    evaluate.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    evaluate.add_argument("--predictions", metavar="FILE", help="also write the predictions as a CSV manifest")
    for name, kwargs in loading.items():
        evaluate.add_argument(f"--{name.replace('_', '-')}", **kwargs)
    evaluate.set_defaults(func=cmd_evaluate)

    smooth = sub.add_parser("smooth-search", help="choose the temporal smoothing (SMM eq. 9) of a model per task",
                            description="Grid search of mu (SMM eq. 9) per task with k-fold cross-validation over "
                                        "the videos of DATA (SMM §5.2); --write stores the chosen mu in the "
                                        "checkpoint for 'analyze --smooth'.")
    _checkpoint_and_data(smooth, source, loading, "labelled video frames (e.g. an ABAW root)")
    smooth.add_argument("--mu", type=_mu_grid, default=list(range(11)), metavar="LIST",
                        help="mu values to try (default 0,1,...,10)")
    smooth.add_argument("--folds", type=_whole(2), default=3, help="cross-validation folds over videos (default 3)")
    _stored_in_checkpoint(smooth, "the chosen mu", "the search results")
    smooth.set_defaults(func=cmd_smooth_search)

    tune = sub.add_parser("tune-thresholds", help="tune a model's per-AU decision thresholds on labelled data",
                          description="Per-AU thresholds maximising F1 on the AU labels of DATA, with the F1 "
                                      "they give cross-validated over subjects/films/videos; --write stores them in "
                                      "the checkpoint, where analyze's AUxx_c columns use them.")
    _checkpoint_and_data(tune, source, loading, "AU-labelled faces (any source), or with --recipe the name of "
                                                "one of its sources")
    tune.add_argument("--recipe", metavar="YAML", help="read --data as this recipe's validation (or training) "
                                                       "source of that name: its subset and framing")
    tune.add_argument("--folds", type=_whole(2), default=3,
                      help="cross-validation folds for the reported F1 (default 3)")
    _stored_in_checkpoint(tune, "the thresholds", "thresholds and F1")
    tune.add_argument("--if-better", action="store_true",
                      help="with --write/--output: store the thresholds only if, cross-validated, their mean F1 "
                           "beats 0.5's (with few subjects, tuning can fit noise)")
    tune.set_defaults(func=cmd_tune_thresholds)


def _checkpoint_and_data(parser: argparse.ArgumentParser, source: dict, loading: dict, data_help: str) -> None:
    """--model CKPT and --data SOURCE (with --images, --split) and the loading options of a model tool."""
    parser.add_argument("--model", required=True, metavar="CKPT", help="checkpoint (.safetensors)")
    parser.add_argument("--data", required=True, metavar="SOURCE", help=data_help)
    parser.add_argument("--images", **source["images"])
    parser.add_argument("--split", **source["split"])
    for name, kwargs in loading.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **kwargs)


def _stored_in_checkpoint(parser: argparse.ArgumentParser, what: str, report: str) -> None:
    """--write / --output CKPT / --json FILE of a tool that stores what it finds in the checkpoint."""
    parser.add_argument("--write", action="store_true", help=f"store {what} in the checkpoint itself")
    parser.add_argument("--output", metavar="CKPT", help=f"store the model with {what} here instead")
    parser.add_argument("--json", metavar="FILE", help=f"also write {report} as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="affectlab", description=DESCRIPTION)
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
                                       "and the ABAW P scores, for PREDICTIONS (a CSV manifest or the images.csv "
                                       "of 'affectlab analyze') against LABELS (any source 'data summary' reads).")
    score.add_argument("predictions", help="CSV manifest of predictions (AU columns may be probabilities), "
                                           "or an 'affectlab analyze' images.csv as written")
    score.add_argument("labels", help="labelled source: manifest CSV, ABAW root or MTL file, a dataset folder")
    score.add_argument("--images", help="cropped_aligned root for the ABAW layouts")
    score.add_argument("--split", help="read one split only (ABAW: train or validation; FER+: train or valid)")
    score.add_argument("--face-id", type=int, metavar="ID",
                       help="score this face of each image of an analyze table (default: the most confident)")
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
    analyze.add_argument("--device", default=DEFAULT_DEVICE, help="cpu, cuda, cuda:1, ... (default: auto)")
    analyze.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                         help="bf16: about 2x the model's speed on GPUs and on CPUs with AVX512-BF16/AMX; "
                              f"outputs within {BF16_TOLERANCE} of fp32 on average (default: fp32)")
    analyze.add_argument("--landmarks", action="store_true",
                         help="also each face's 68 landmarks (x_0..y_67, pixels), head pose (pose_T* mm, pose_R* rad) "
                              "and gaze (gaze_angle_x/y rad) from MediaPipe's mesh; about doubles the time per face")
    analyze.add_argument("--mesh", action="store_true",
                         help="--landmarks and each face's full 468-point mesh (mesh_x_*, mesh_y_* pixels, mesh_z_*)")
    analyze.add_argument("--faces", choices=["detect", "crops"], default="detect",
                         help="detect faces, or take each input as an aligned face crop (default: detect)")
    analyze.add_argument("--stride", type=_whole(1), default=1, help="analyse every n-th video frame (default: 1)")
    analyze.add_argument("--detect-every", type=_whole(1), default=DETECT_EVERY, metavar="K",
                         help="run the full face detector on every k-th analysed frame and refine each face from "
                              f"its last box in between; 1: the full detector on every frame (default: {DETECT_EVERY})")
    analyze.add_argument("--batch-size", type=_whole(1), default=32, help="faces per model call (default: 32)")
    analyze.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                         help="average each face's outputs with its mirror image's (twice the model's time); "
                              "default: as the checkpoint says (the bundled model's card says why)")
    analyze.add_argument("--smooth", nargs="?", const="checkpoint", metavar="au=MU,expr=MU,va=MU",
                         help="temporal smoothing of each face's features over a video (SMM eq. 9); mu per task, "
                              "default the checkpoint's (from smooth-search) or SMM's au=7,expr=9,va=9")
    analyze.add_argument("--plots", action="store_true", help="write PNG plots beside each table")
    analyze.add_argument("--video-out", action="store_true",
                         help="write each video, and a copy of each image, with boxes, expression and VA drawn")
    analyze.add_argument("--format", choices=["native", "openface", "feat"], default="native",
                         help="the tables' columns: affectlab's own, OpenFace 2.2 FeatureExtraction's, or py-feat's "
                              "Fex names (default: native)")
    analyze.add_argument("--abaw", action="store_true", help="also write ABAW submission files under OUT/abaw")
    analyze.add_argument("--skip-existing", action="store_true", help="skip videos and images already analysed in OUT")
    analyze.add_argument("--quiet", action="store_true", help="no progress bars")
    analyze.set_defaults(func=cmd_analyze)

    export = sub.add_parser("export", help="export a checkpoint for onnxruntime",
                            description="Export a checkpoint to ONNX with its metadata, checked to agree with PyTorch.")
    export.add_argument("model", help="checkpoint (.safetensors), or 'default' for the bundled model")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx for now")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.set_defaults(func=cmd_export)

    visualize = sub.add_parser("visualize", help="t-SNE figures of a model's sign-vehicle and message spaces",
                               description="Extract a model's feature spaces on labelled data and draw the SMM "
                                           "paper's Figures 5-6: one t-SNE panel per AU coloured by presence and "
                                           "titled with its F1; the message space by expression with covariance "
                                           "ellipses; by valence and by arousal with the arrows of steepest ascent "
                                           "and the angle between them. Also writes the 2-D points as CSV.")
    visualize.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    visualize.add_argument("--data", required=True, nargs="+", metavar="SOURCE",
                           help="labelled source(s): anything 'data summary' reads; several are stacked")
    visualize.add_argument("--out", required=True, help="output folder")
    visualize.add_argument("--images", help="cropped_aligned root for the ABAW layouts")
    visualize.add_argument("--split", help="read one split only (ABAW: train or validation; FER+: train or valid)")
    visualize.add_argument("--per-class", type=_whole(1), default=200, metavar="N",
                           help="points of each class per panel (AU absent/present, each expression; default: 200)")
    visualize.add_argument("--max-rows", type=_whole(1), default=4000, metavar="N",
                           help="faces drawn at random from the data to run through the model (default: 4000)")
    visualize.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: 30)")
    visualize.add_argument("--seed", type=int, default=0, help="seed of the sampling and of t-SNE (default: 0)")
    visualize.add_argument("--thresholds", metavar="FILE",
                           help='JSON per-AU thresholds {"AU1": 0.4, ...} for the F1 titles (default 0.5)')
    visualize.add_argument("--batch-size", type=_whole(1), default=64, help="faces per model call (default: 64)")
    visualize.add_argument("--device", default=DEFAULT_DEVICE, help="cpu, cuda, cuda:1, ... (default: auto)")
    visualize.add_argument("--quiet", action="store_true", help="no progress bars")
    visualize.set_defaults(func=cmd_visualize)

    compare = sub.add_parser("compare", help="evaluated runs side by side (per-AU F1, per-class F1, CCC, P scores)",
                             description="Print the scores of several runs side by side, like the SMM paper's "
                                         "Tables 1, 3 and 4. A RUN is the JSON of 'evaluate --json' or 'score "
                                         "--json', a checkpoint, evaluated here on --data, or a training run "
                                         "folder (or its results.json): its final model's validation scores, "
                                         "or that model evaluated on --data.")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="evaluation JSON, checkpoint (.safetensors), or training run folder / results.json")
    compare.add_argument("--data", metavar="SOURCE", help="labelled source to evaluate checkpoints on (as 'evaluate')")
    compare.add_argument("--images", help="cropped_aligned root for the ABAW layouts")
    compare.add_argument("--split", help="read one split only (ABAW: train or validation; FER+: train or valid)")
    compare.add_argument("--thresholds", metavar="FILE", help='JSON per-AU thresholds {"AU1": 0.4, ...} (default 0.5)')
    compare.add_argument("--batch-size", type=_whole(1), default=128, help="faces per model call (default: 128)")
    compare.add_argument("--device", default=DEFAULT_DEVICE, help="cpu, cuda, cuda:1, ... (default: auto)")
    compare.add_argument("--json", metavar="FILE",
                         help='also write {"runs": [...], "rows": [{"section", "metric", "values"}]}')
    compare.set_defaults(func=cmd_compare)
    _add_training_commands(sub)
    return parser


def _error(line: str) -> None:
    """The one line a user's mistake ends in."""
    print(f"affectlab: error: {line}", file=sys.stderr)


def _os_reason(error: OSError) -> str:
    """What the system said, and for a file in the way of a folder to create, what that means."""
    if isinstance(error, FileExistsError):
        return "a file is where a folder is needed"
    return error.strerror or str(error)


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum`` (``--stride``, ``--batch-size``, ...), refused
    before any work starts."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number
    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as a namespace. ``train``'s KEY=VALUE overrides may also follow its options
    (``train RECIPE --out DIR key=value``), where plain argparse leaves them over: they are taken in order."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.func is cmd_train and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    show_messages()
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except AffectlabError as e:
        _error(str(e))
    except OSError as e:
        _error(f"{e.filename or ''}: {_os_reason(e)}")
    except KeyboardInterrupt:
        print("affectlab: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
