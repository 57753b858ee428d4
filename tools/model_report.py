"""The bundled model's validation numbers, per source, as docs/model-card.md reports them.

    python tools/model_report.py configs/default.yaml --model runs/default/model.safetensors [--model ...]
        [--flip | --choose-flip [--write]] [--against CKPT [--resamples N]] [--json FILE] [key=value ...]

Each of the recipe's validation sources is read and framed as the recipe says (overrides apply, e.g.
``validation.ferplus.framing=null`` for a model trained on zoomed-in crops) and scored with the
model's own checkpoint input. ``--flip`` adds horizontal-flip test-time averaging (the probabilities
of the face and its mirror image averaged). ``--choose-flip`` scores the model with and without it and,
with ``--write``, stores in the checkpoint whether analyze should average (``test_time_flip``): yes
where it raises the mean of the headline numbers (HEADLINE). Per source: FER+ 8-class accuracy and macro F1;
AffectNet 8-class macro F1, accuracy and CCC; CK+ mean F1 of the AUs and expression macro F1; SFEW
7-class accuracy (the argmax over its seven classes: it has no Other) and macro F1. Several ``--model``s
are scored as an ensemble (probabilities averaged, teacher-student "Student Ensemble"). ``--against``
bootstraps each HEADLINE number's difference from another checkpoint (on the same faces, cropped
alike unless ``--against-override`` says otherwise), resampling whole subjects, films or images as
the split keeps them together: with 17 CK+ subjects, a difference of a few hundredths can be noise.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from affectlab.jsonfile import write_json
from affectlab.labels import EXPR_NAMES, OTHER
from affectlab.metrics import accuracy, macro_f1
from affectlab.models import load_model
from affectlab.models.checkpoint import update_extra
from affectlab.models.meta import TEST_TIME_FLIP
from affectlab.train import data as tdata
from affectlab.train import load_recipe
from affectlab.scoring import score_tables
from affectlab.inference.batch import Evaluation, evaluate
from affectlab.train.thresholds import fold_keys
from affectlab.train.trainer import recipe_schema


def flipped(path: str):
    """The model at ``path`` seeing every input mirrored left to right."""
    model = load_model(path)
    model.register_forward_pre_hook(lambda module, args: (args[0].flip(-1),))
    return model


def seven_class(predictions, labels) -> dict[str, float]:
    """Accuracy and macro F1 with the argmax over the seven basic classes (Other left out)."""
    pred = predictions[list(EXPR_NAMES[:OTHER])].to_numpy().argmax(1)
    truth = labels["expr"].to_numpy()
    keep = (truth >= 0) & (truth != OTHER)
    return {"accuracy": accuracy(truth[keep], pred[keep]), "f1_macro": macro_f1(truth[keep], pred[keep], OTHER)}


def validation(recipe_path: str, overrides: list[str]) -> dict[str, pd.DataFrame]:
    """The recipe's validation sources as sample tables, framed and subset as the recipe says."""
    recipe = load_recipe(recipe_path, overrides)
    schema = recipe_schema(recipe)
    return {name: tdata.read_one(source, schema, {}).samples for name, source in recipe.validation.items()}


def evaluations(sets: dict[str, pd.DataFrame], model_paths: list[str], flip: bool) -> dict[str, Evaluation]:
    models = [load_model(p) for p in model_paths] + ([flipped(p) for p in model_paths] if flip else [])
    return {name: evaluate(models, samples, workers=2) for name, samples in sets.items()}


def report(sets: dict[str, pd.DataFrame], evals: dict[str, Evaluation]) -> dict:
    out = {}
    for name, samples in sets.items():
        ev = evals[name]
        out[name] = {"n": ev.scores["n"], **row(ev.scores)}
        if "expr" in ev.scores:
            out[name]["seven_class"] = seven_class(ev.predictions[ev.readable], samples[ev.readable])
    return out


def row(s: dict) -> dict:
    """A source's reported numbers (HEADLINE's among them) from its scores."""
    out = {}
    if "expr" in s:
        out.update(expr_accuracy=s["expr"]["accuracy"], expr_f1_macro=s["expr"]["f1_macro"])
    if "va" in s:
        out.update(ccc_valence=s["va"]["ccc_valence"], ccc_arousal=s["va"]["ccc_arousal"])
    if "au" in s:
        out.update(au_f1_mean=s["au"]["f1_mean"], au_f1=s["au"]["f1"])
    return out


#: The numbers the model card leads with, one per validation source and task (higher is better).
HEADLINE = (("ferplus", "expr_accuracy"), ("affectnet", "expr_f1_macro"), ("affectnet", "ccc_valence"),
            ("affectnet", "ccc_arousal"), ("ckplus", "au_f1_mean"), ("sfew", "expr_accuracy"))


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


def headline_gain(plain: dict, flipped: dict) -> float:
    """Mean change of the HEADLINE numbers (those both reports have) from ``plain`` to ``flipped``."""
    pairs = [(plain[s][k], flipped[s][k]) for s, k in HEADLINE if k in plain.get(s, {}) and k in flipped.get(s, {})]
    return float(np.mean([f - p for p, f in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--model", required=True, action="append", help="repeat for an ensemble")
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--choose-flip", action="store_true")
    parser.add_argument("--write", action="store_true", help="with --choose-flip: store the choice in the checkpoint")
    parser.add_argument("--against", metavar="CKPT", help="bootstrap the headline differences from this model")
    parser.add_argument("--against-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for --against's crops only (e.g. validation.ckplus.framing=null)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.write and len(args.model) > 1:
        parser.error("--write stores a choice in one checkpoint; give one --model")
    sets = validation(args.recipe, args.overrides)
    if args.choose_flip:
        results = {flip: report(sets, evaluations(sets, args.model, flip)) for flip in (False, True)}
        gain = headline_gain(results[False], results[True])
        for flip, result in results.items():
            print(f"-- {'with' if flip else 'without'} flip averaging")
            show(result)
        print(f"flip averaging changes the headline numbers by {gain:+.4f} on average: "
              f"{'use it' if gain > 0 else 'leave it off'}")
        if args.write:
            update_extra(load_model(args.model[0]), args.model[0], **{TEST_TIME_FLIP: gain > 0})
            print(f"stored {TEST_TIME_FLIP}={gain > 0} in {args.model[0]}")
        if args.json:
            write_json(args.json, {"without_flip": results[False], "with_flip": results[True], "gain": gain})
        return
    ours = evaluations(sets, args.model, args.flip)
    result = report(sets, ours)
    show(result)
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


def show(result: dict) -> None:
    for name, row in result.items():
        parts = [f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)]
        if "seven_class" in row:
            parts.append(f"7-class accuracy {row['seven_class']['accuracy']:.3f}")
        print(f"{name:<10} " + "  ".join(parts))


if __name__ == "__main__":
    main()
