"""The bundled model's validation numbers, per source, as docs/model-card.md reports them.

    python tools/model_report.py configs/default.yaml --model runs/default/model.safetensors [--model ...]
        [--flip] [--against CKPT [--resamples N]] [--json FILE] [key=value ...]

The numbers are those of :mod:`affectlab.train.report` (which ``affectlab calibrate flip`` decides
on): each of the recipe's validation sources read and framed as the recipe says (overrides apply, e.g.
``validation.ferplus.framing=null`` for a model trained on zoomed-in crops), scored with the model's
own checkpoint input. ``--flip`` adds horizontal-flip test-time averaging. Several ``--model``s are
scored as an ensemble. ``--against`` bootstraps each HEADLINE number's difference from another
checkpoint (on the same faces, cropped alike unless ``--against-override`` says otherwise),
resampling whole subjects, films or images as the split keeps them together: with 17 CK+ subjects, a
difference of a few hundredths can be noise.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from affectlab.inference.batch import Evaluation
from affectlab.jsonfile import write_json
from affectlab.models import load_model
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
    parser.add_argument("--json")
    args = parser.parse_args()
    sets = validation(args.recipe, args.overrides)
    ours = evaluations(sets, args.model, args.flip)
    result = report(sets, ours)
    print(format_report(result))
    if args.against:
        schema = load_model(args.model[0]).schema
        their_sets = validation(args.recipe, args.overrides + args.against_override) if args.against_override else sets
        theirs = evaluations(their_sets, [args.against], False)
        result["against"] = {"model": args.against, **against(sets, ours, theirs, schema, args.resamples)}
        print(f"-- minus {args.against}: difference [95 % bootstrap interval] (share of {args.resamples} resamples ahead)")
        for name, d in result["against"].items():
            if name != "model":
                print(f"{name:<26} {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                      f"({d['ahead']:.0%}; {d['groups']} groups)")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
