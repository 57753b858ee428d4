"""``affectlab calibrate thresholds|smoothing|flip|va``: the decisions a checkpoint stores for analyze.

Each runs the model on labelled data, prints what it found and, with ``--write`` (or ``--output``),
stores its choice in the checkpoint: per-AU thresholds (``AUxx_c``), the μ of SMM eq. 9 per task
(``analyze --smooth``), whether to average each face with its mirror image (``analyze --flip``), and
an affine map of valence and arousal (applied wherever the model runs)."""
from __future__ import annotations

import argparse

from affectlab.cli import options
from affectlab.errors import AffectlabError, DataError
from affectlab.jsonfile import write_json


def _recipe_source(recipe_path: str, name: str, schema) -> object:
    """The sample table of a recipe's validation (or training) source ``name``: its subset and framing."""
    from affectlab.train import data as tdata
    from affectlab.train import load_recipe

    recipe = load_recipe(recipe_path)
    named = {**recipe.sources, **recipe.validation}
    if name not in named:
        raise AffectlabError(f"{recipe_path}: no source {name!r}; sources: {', '.join(named)}")
    return tdata.read_one(named[name], schema, {}).samples


def _search_labelled(args: argparse.Namespace, search) -> tuple[object, object]:
    """The model and what ``search(model, rows, ...)`` finds on the rows --data names (a source read as any
    other, or with --recipe that recipe's source of that name); a search that cannot run names --data."""
    from affectlab.data import read_source
    from affectlab.models import load_model

    device = options.device(args.device)
    model = load_model(args.model, device=device)
    if args.recipe:
        samples = _recipe_source(args.recipe, args.data, model.schema)
    else:
        samples = read_source(args.data, images=args.images, split=args.split, schema=model.schema).samples
    try:
        return model, search(model, samples, folds=args.folds, batch_size=args.batch_size, workers=args.workers,
                             device=device)
    except AffectlabError as e:
        raise DataError(args.data, str(e)) from None


def cmd_thresholds(args: argparse.Namespace) -> int:
    from affectlab.train.thresholds import format_thresholds, search_thresholds, write_thresholds

    model, result = _search_labelled(args, search_thresholds)
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


def cmd_smoothing(args: argparse.Namespace) -> int:
    from affectlab.models import load_model, read_checkpoint_meta
    from affectlab.train.smooth_search import format_search, search_mu, write_smoothing

    schema = read_checkpoint_meta(args.model).schema  # the labels are checked before the model loads
    table = options.labelled(args.data, args.images, args.split, schema)
    if (table.samples["video"].astype(str) == "").all():
        raise DataError(args.data, "holds no video frames (its rows name no video); calibrate smoothing needs "
                                   "videos, e.g. an ABAW root")
    device = options.device(args.device)
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


def cmd_flip(args: argparse.Namespace) -> int:
    from affectlab.models.meta import TEST_TIME_FLIP
    from affectlab.train.report import choose_flip, format_report, validation, write_flip

    sets = validation(args.recipe, args.overrides)
    choice = choose_flip(sets, [args.model], workers=args.workers, batch_size=args.batch_size,
                         device=options.device(args.device))
    for flip, result in ((False, choice.without_flip), (True, choice.with_flip)):
        print(f"-- {'with' if flip else 'without'} flip averaging")
        print(format_report(result))
    print(f"flip averaging changes the headline numbers by {choice.gain:+.4f} on average: "
          f"{'use it' if choice.use else 'leave it off'}")
    if args.write or args.output:
        target = args.output or args.model
        write_flip(args.model, target, choice.use)
        print(f"stored {TEST_TIME_FLIP}={choice.use} in {target}")
    if args.json:
        write_json(args.json, choice.as_dict())
    return 0


def cmd_va(args: argparse.Namespace) -> int:
    from affectlab.train.va_calibration import format_calibration, search_va_calibration, write_va_calibration

    model, result = _search_labelled(args, search_va_calibration)
    print(format_calibration(result))
    paying = result.paying()
    print(f"calibration pays cross-validated for: {', '.join(paying) or 'neither dimension'}")
    if args.write or args.output:
        target = args.output or args.model
        write_va_calibration(model, target, result)
        print(f"VA calibration {paying or 'none'} stored in {target}")
    if args.json:
        write_json(args.json, {"maps": {k: list(v) for k, v in result.maps.items()}, "folds": result.folds,
                               "ccc": result.ccc_plain, "ccc_calibrated_cross_validated": result.ccc_cross_validated,
                               "stored": paying})
    return 0


def _mu_grid(value: str) -> list[float]:
    try:
        grid = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0,1,2, got {value!r}") from None
    if not grid or min(grid) < 0:
        raise argparse.ArgumentTypeError("mu values must be >= 0")
    return grid



def _model_on_data(family: argparse._SubParsersAction, name: str, summary: str, description: str,
                   data: str) -> argparse.ArgumentParser:
    """A decision made by running --model CKPT on --data SOURCE."""
    parser = family.add_parser(name, help=summary, description=description)
    options.add_checkpoint(parser)
    options.add_data(parser, data)
    return parser


def _add_recipe_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", metavar="YAML", help="read --data as this recipe's validation (or training) "
                                                         "source of that name: its subset and framing")

def add_commands(sub: argparse._SubParsersAction) -> None:
    calibrate = sub.add_parser("calibrate", help="choose what a checkpoint stores for analyze: AU thresholds, "
                                                 "temporal smoothing, flip averaging, VA calibration",
                               description="Run a model on labelled data, choose one of the decisions analyze "
                                           "reads from the checkpoint, and with --write store it there.")
    family = calibrate.add_subparsers(dest="calibrate_command", required=True, metavar="DECISION")

    thresholds = _model_on_data(
        family, "thresholds", "per-AU decision thresholds (analyze's AUxx_c columns)",
        "Per-AU thresholds maximising F1 on the AU labels of DATA, with the F1 they give cross-validated over "
        "subjects/films/videos; --write stores them in the checkpoint, where analyze's AUxx_c columns use them.",
        "AU-labelled faces (any source), or with --recipe the name of one of its sources")
    _add_recipe_source(thresholds)
    options.add_folds(thresholds, "for the reported F1")
    options.add_stored(thresholds, "the thresholds", "thresholds and F1")
    thresholds.add_argument("--if-better", action="store_true",
                            help="with --write/--output: store the thresholds only if, cross-validated, their mean "
                                 "F1 beats 0.5's (with few subjects, tuning can fit noise)")
    options.add_loading(thresholds)
    thresholds.set_defaults(func=cmd_thresholds)

    smoothing = _model_on_data(
        family, "smoothing", "the temporal smoothing (SMM eq. 9) of a model per task",
        "Grid search of mu (SMM eq. 9) per task with k-fold cross-validation over the videos of DATA (SMM §5.2); "
        "--write stores the chosen mu in the checkpoint for 'analyze --smooth'.",
        "labelled video frames (e.g. an ABAW root)")
    smoothing.add_argument("--mu", type=_mu_grid, default=list(range(11)), metavar="LIST",
                           help="mu values to try (default 0,1,...,10)")
    options.add_folds(smoothing, "over videos")
    options.add_stored(smoothing, "the chosen mu", "the search results")
    options.add_loading(smoothing)
    smoothing.set_defaults(func=cmd_smoothing)

    flip = family.add_parser("flip", help="horizontal-flip test-time averaging (analyze --flip), on a recipe's "
                                          "validation sources",
                             description="Score the model on each validation source of RECIPE (read and framed as "
                                         "the recipe says) with and without averaging each face with its mirror "
                                         "image; averaging is chosen where it raises the mean of the headline "
                                         "numbers (FER+ accuracy, AffectNet macro F1 and CCCs, CK+ AU F1, SFEW "
                                         "accuracy: the sources the recipe has); --write stores the choice "
                                         "(test_time_flip) for analyze.")
    options.add_checkpoint(flip)
    flip.add_argument("--recipe", required=True, metavar="YAML", help="the recipe whose validation sources to score on")
    flip.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                      help="recipe overrides, e.g. data_root=/data validation.sfew=null")
    options.add_stored(flip, "the choice", "both reports and the gain")
    options.add_loading(flip)
    flip.set_defaults(func=cmd_flip)

    va = _model_on_data(
        family, "va", "an affine map of valence and arousal per dimension (matching the labels' mean and spread)",
        "Fit per dimension the affine map of the model's valence and arousal that maximises CCC on the VA labels of "
        "DATA (the labels' mean and spread), and score it cross-validated over subjects/films/images beside the plain "
        "CCC; --write stores the maps of the dimensions where it pays, which every backend then applies.",
        "VA-labelled faces (any source), or with --recipe the name of one of its sources")
    _add_recipe_source(va)
    options.add_folds(va, "for the reported CCC", default=5)
    options.add_stored(va, "the maps that pay", "maps and CCCs")
    options.add_loading(va)
    va.set_defaults(func=cmd_va)
