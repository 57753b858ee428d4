"""The bundled model's validation numbers, per source, as docs/model-card.md reports them.

    python tools/model_report.py configs/default.yaml --model runs/default/model.safetensors [--model ...]
        [--flip] [--against CKPT [--resamples N] [--bundle-to PATH]] [--confusion] [--json FILE] [key=value ...]

The numbers are those of :mod:`affectlab.train.report` (which ``affectlab calibrate flip`` decides
on): each of the recipe's validation sources read and framed as the recipe says (overrides apply, e.g.
``validation.ferplus.framing=null`` for a model trained on zoomed-in crops), scored with the model's
own checkpoint input. ``--flip`` adds horizontal-flip test-time averaging. Several ``--model``s are
scored as an ensemble. ``--against`` bootstraps each HEADLINE number's difference from another
checkpoint (on the same faces, cropped alike unless ``--against-override`` says otherwise),
resampling whole subjects, films or images as the split keeps them together: with 17 CK+ subjects, a
difference of a few hundredths can be noise.

``--bundle-to PATH`` (with ``--against``; both models scored as bundled, each with its own
``test_time_flip``) copies the model to PATH only under the bundling rule (:func:`bundle_verdict`):
a higher mean of the HEADLINE numbers, and none worse beyond bootstrap noise; otherwise it says why
and leaves PATH alone. ``--confusion`` prints each expression source's confusion matrix (rows: true
class, columns: predicted) and per-class F1; the JSON holds them either way.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from affectlab.inference.batch import Evaluation
from affectlab.jsonfile import write_json
from affectlab.models import load_model
from affectlab.models.meta import TEST_TIME_FLIP
from affectlab.scoring import score_tables
from affectlab.train.report import HEADLINE, evaluations, format_report, report, row, validation
from affectlab.train.thresholds import fold_keys


def bootstrap_difference(samples: pd.DataFrame, ours: pd.DataFrame, theirs: pd.DataFrame, key: str,
                         schema, resamples: int, seed: int = 0) -> dict[str, float]:
    """HEADLINE ``key`` of ``ours`` minus ``theirs`` (prediction tables row-aligned with ``samples``):
    the difference, its 95 % bootstrap interval over whole groups, and the share of resamples ahead."""
    _, inverse = np.unique(fold_keys(samples).to_numpy(), return_inverse=True)
    rows_of = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    rng = np.random.default_rng(seed)

    def value(predictions: pd.DataFrame, rows: np.ndarray, truth: pd.DataFrame) -> float:
        return float(row(score_tables(predictions.iloc[rows].reset_index(drop=True), truth, schema))[key])

    def diff(rows: np.ndarray) -> float:
        truth = samples.iloc[rows].reset_index(drop=True)
        return value(ours, rows, truth) - value(theirs, rows, truth)

    draws = np.array([diff(np.concatenate([rows_of[g] for g in rng.integers(0, len(rows_of), len(rows_of))]))
                      for _ in range(resamples)])
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"difference": diff(np.arange(len(samples))), "low": float(low), "high": float(high),
            "ahead": float((draws > 0).mean()), "groups": len(rows_of)}


def against(sets: dict[str, pd.DataFrame], ours: dict[str, Evaluation], theirs: dict[str, Evaluation],
            schema, resamples: int) -> dict[str, dict[str, float]]:
    """:func:`bootstrap_difference` of every HEADLINE number, on the faces both models could read."""
    out = {}
    for name, key in HEADLINE:
        if name not in sets:
            continue
        keep = ours[name].readable & theirs[name].readable
        take = lambda table: table[keep].reset_index(drop=True)  # noqa: E731
        out[f"{name}/{key}"] = bootstrap_difference(take(sets[name]), take(ours[name].predictions),
                                                    take(theirs[name].predictions), key, schema, resamples)
    return out


def bundle_verdict(ours: dict, theirs: dict, differences: dict[str, dict[str, float]]) -> tuple[bool, str]:
    """The bundling rule: bundle ``ours`` (a report) in place of ``theirs`` only when the mean of the
    HEADLINE numbers is higher and no HEADLINE number is worse beyond bootstrap noise (its 95 %
    interval of ours minus theirs lies wholly below 0). Returns the decision and a one-line reason."""
    keys = [(s, k) for s, k in HEADLINE if k in ours.get(s, {}) and k in theirs.get(s, {})]
    if not keys:
        raise ValueError("the two reports share no headline number")
    mean_ours = float(np.mean([ours[s][k] for s, k in keys]))
    mean_theirs = float(np.mean([theirs[s][k] for s, k in keys]))
    worse = [f"{name} {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
             for name, d in differences.items() if d["high"] < 0]
    means = f"mean of {len(keys)} headline numbers {mean_ours:.4f} against {mean_theirs:.4f}"
    if mean_ours <= mean_theirs:
        return False, f"not bundled: {means}"
    if worse:
        return False, f"not bundled: {means}, but worse beyond bootstrap noise on " + "; ".join(worse)
    return True, f"bundled: {means}, and no headline number worse beyond bootstrap noise"


def as_bundled(path: str) -> bool:
    """Whether analyze averages the model at ``path`` with its mirror image (its ``test_time_flip``)."""
    return bool(load_model(path).checkpoint_meta.extra.get(TEST_TIME_FLIP, False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--model", required=True, action="append", help="repeat for an ensemble")
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--against", metavar="CKPT", help="bootstrap the headline differences from this model")
    parser.add_argument("--against-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for --against's crops only (e.g. validation.ckplus.framing=null)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--bundle-to", metavar="PATH", help="with --against: copy the model here if it passes "
                        "the bundling rule (both models scored as bundled, each with its own flip setting)")
    parser.add_argument("--confusion", action="store_true", help="print the expression confusion matrices")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.bundle_to and (not args.against or len(args.model) > 1 or args.flip):
        parser.error("--bundle-to needs --against and one --model (each is scored with its own flip setting)")
    sets = validation(args.recipe, args.overrides)
    ours = evaluations(sets, args.model, as_bundled(args.model[0]) if args.bundle_to else args.flip)
    result = report(sets, ours)
    print(format_report(result, args.confusion))
    if args.against:
        schema = load_model(args.model[0]).schema
        their_sets = validation(args.recipe, args.overrides + args.against_override) if args.against_override else sets
        theirs = evaluations(their_sets, [args.against], as_bundled(args.against) if args.bundle_to else False)
        result["against"] = {"model": args.against, **against(sets, ours, theirs, schema, args.resamples)}
        print(f"-- minus {args.against}: difference [95 % bootstrap interval] (share of {args.resamples} resamples ahead)")
        for name, d in result["against"].items():
            if name != "model":
                print(f"{name:<26} {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                      f"({d['ahead']:.0%}; {d['groups']} groups)")
    if args.bundle_to:
        differences = {k: v for k, v in result["against"].items() if k != "model"}
        bundle, reason = bundle_verdict(result, report(their_sets, theirs), differences)
        result["bundled"] = {"to": args.bundle_to, "bundled": bundle, "reason": reason}
        if bundle and Path(args.model[0]).resolve() != Path(args.bundle_to).resolve():
            shutil.copyfile(args.model[0], args.bundle_to)
        print(reason + (f" -> {args.bundle_to}" if bundle else f"; {args.bundle_to} kept"))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
