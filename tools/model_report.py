"""The bundled model's validation numbers, per source, as docs/model-card.md reports them.

    python tools/model_report.py configs/default.yaml --model runs/default/model.safetensors
        [--flip | --choose-flip [--write]] [--json FILE] [key=value ...]

Each of the recipe's validation sources is read and framed as the recipe says (overrides apply, e.g.
``validation.ferplus.framing=null`` for a model trained on zoomed-in crops) and scored with the
model's own checkpoint input. ``--flip`` adds horizontal-flip test-time averaging (the probabilities
of the face and its mirror image averaged). ``--choose-flip`` scores the model with and without it and,
with ``--write``, stores in the checkpoint whether analyze should average (``test_time_flip``): yes
where it raises the mean of the headline numbers (HEADLINE). Per source: FER+ 8-class accuracy and macro F1;
AffectNet 8-class macro F1, accuracy and CCC; CK+ mean F1 of the AUs and expression macro F1; SFEW
7-class accuracy (the argmax over its seven classes: it has no Other) and macro F1.
"""
from __future__ import annotations

import argparse

import numpy as np

from affectlab.jsonfile import write_json
from affectlab.labels import EXPR_NAMES, OTHER
from affectlab.metrics import accuracy, macro_f1
from affectlab.models import load_model
from affectlab.models.checkpoint import update_extra
from affectlab.models.meta import TEST_TIME_FLIP
from affectlab.train import data as tdata
from affectlab.train import load_recipe
from affectlab.train.evaluate import evaluate
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


def report(recipe_path: str, model_path: str, flip: bool, overrides: list[str]) -> dict:
    recipe = load_recipe(recipe_path, overrides)
    schema = recipe_schema(recipe)
    models = [load_model(model_path)] + ([flipped(model_path)] if flip else [])
    out = {}
    for name, source in recipe.validation.items():
        samples = tdata.read_one(source, schema, {}).samples
        ev = evaluate(models, samples, workers=2)
        s = ev.scores
        row = {"n": s["n"]}
        if "expr" in s:
            row.update(expr_accuracy=s["expr"]["accuracy"], expr_f1_macro=s["expr"]["f1_macro"])
            row["seven_class"] = seven_class(ev.predictions[ev.readable], samples[ev.readable])
        if "va" in s:
            row.update(ccc_valence=s["va"]["ccc_valence"], ccc_arousal=s["va"]["ccc_arousal"])
        if "au" in s:
            row.update(au_f1_mean=s["au"]["f1_mean"], au_f1=s["au"]["f1"])
        out[name] = row
    return out


#: The numbers the model card leads with, one per validation source and task (higher is better).
HEADLINE = (("ferplus", "expr_accuracy"), ("affectnet", "expr_f1_macro"), ("affectnet", "ccc_valence"),
            ("affectnet", "ccc_arousal"), ("ckplus", "au_f1_mean"), ("sfew", "expr_accuracy"))


def headline_gain(plain: dict, flipped: dict) -> float:
    """Mean change of the HEADLINE numbers (those both reports have) from ``plain`` to ``flipped``."""
    pairs = [(plain[s][k], flipped[s][k]) for s, k in HEADLINE if k in plain.get(s, {}) and k in flipped.get(s, {})]
    return float(np.mean([f - p for p, f in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--model", required=True)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--choose-flip", action="store_true")
    parser.add_argument("--write", action="store_true", help="with --choose-flip: store the choice in the checkpoint")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.choose_flip:
        results = {flip: report(args.recipe, args.model, flip, args.overrides) for flip in (False, True)}
        gain = headline_gain(results[False], results[True])
        for flip, result in results.items():
            print(f"-- {'with' if flip else 'without'} flip averaging")
            show(result)
        print(f"flip averaging changes the headline numbers by {gain:+.4f} on average: "
              f"{'use it' if gain > 0 else 'leave it off'}")
        if args.write:
            update_extra(load_model(args.model), args.model, **{TEST_TIME_FLIP: gain > 0})
            print(f"stored {TEST_TIME_FLIP}={gain > 0} in {args.model}")
        if args.json:
            write_json(args.json, {"without_flip": results[False], "with_flip": results[True], "gain": gain})
        return
    result = report(args.recipe, args.model, args.flip, args.overrides)
    show(result)
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
