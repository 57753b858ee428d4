"""A model's validation numbers per source, as the model card reports them, and the flip decision.

Each of a recipe's validation sources is read and framed as the recipe says and scored with the
model's own checkpoint input (an ensemble: probabilities averaged, teacher-student "Student
Ensemble"). Per source: FER+ 8-class accuracy and macro F1; AffectNet 8-class macro F1, accuracy and
CCC; CK+ mean F1 of the AUs and expression macro F1; SFEW 7-class accuracy (the argmax over its seven
classes: it has no Other) and macro F1. Horizontal-flip test-time averaging (the probabilities of
the face and its mirror image averaged) is chosen where it raises the mean of the HEADLINE numbers
(:func:`choose_flip`, ``affectlab calibrate flip``), and stored in the checkpoint as ``test_time_flip``.
"""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
import pandas as pd

from affectlab.inference.batch import Evaluation, evaluate
from affectlab.labels import EXPR_NAMES, OTHER
from affectlab.metrics import accuracy, expr_f1, macro_f1
from affectlab.models import load_model
from affectlab.models.checkpoint import update_extra
from affectlab.models.meta import TEST_TIME_FLIP
from affectlab.train import data as tdata
from affectlab.train.config import load_recipe
from affectlab.train.trainer import recipe_schema


#: The numbers the model card leads with, one per validation source and task (higher is better).
HEADLINE = (("ferplus", "expr_accuracy"), ("affectnet", "expr_f1_macro"), ("affectnet", "ccc_valence"),
            ("affectnet", "ccc_arousal"), ("ckplus", "au_f1_mean"), ("sfew", "expr_accuracy"))


def flipped(path: str, device: str = "cpu"):
    """The model at ``path`` seeing every input mirrored left to right."""
    model = load_model(path, device=device)
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


def evaluations(sets: dict[str, pd.DataFrame], model_paths: list[str], flip: bool, *, workers: int = 2,
                batch_size: int = 128, device: str = "cpu") -> dict[str, Evaluation]:
    """Each set evaluated by the model(s) (an ensemble), and with ``flip`` by their mirrored selves too."""
    models = [load_model(p, device=device) for p in model_paths]
    if flip:
        models += [flipped(p, device) for p in model_paths]
    return {name: evaluate(models, samples, workers=workers, batch_size=batch_size, device=device)
            for name, samples in sets.items()}


def report(sets: dict[str, pd.DataFrame], evals: dict[str, Evaluation]) -> dict:
    """Per source: its labelled counts and reported numbers (and 7-class numbers where it has expressions)."""
    out = {}
    for name, samples in sets.items():
        ev = evals[name]
        out[name] = {"n": ev.scores["n"], **row(ev.scores)}
        if "expr" in ev.scores:
            out[name]["seven_class"] = seven_class(ev.predictions[ev.readable], samples[ev.readable])
            out[name]["confusion"] = confusion(ev.predictions[ev.readable], samples[ev.readable])
    return out


def confusion(predictions: pd.DataFrame, labels: pd.DataFrame) -> dict:
    """The expression confusion matrix over labelled rows (rows: true class, columns: the argmax over
    all 8 classes, in EXPR_NAMES order) and each class's one-vs-rest F1 (None where undefined)."""
    truth = labels["expr"].to_numpy()
    pred = predictions[list(EXPR_NAMES)].to_numpy().argmax(1)
    keep = truth >= 0
    n = len(EXPR_NAMES)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (truth[keep], pred[keep]), 1)
    f1 = [None if np.isnan(v) else float(v) for v in expr_f1(truth, pred, n)]
    return {"classes": list(EXPR_NAMES), "matrix": matrix.tolist(), "f1": dict(zip(EXPR_NAMES, f1))}


def format_confusion(confusion: dict) -> str:
    """A confusion matrix as text: a row per true class, a column per predicted class, then its F1."""
    lines = ["  true\\pred " + " ".join(f"{n[:4]:>5}" for n in confusion["classes"]) + "     F1"]
    for name, counts in zip(confusion["classes"], confusion["matrix"]):
        f1 = confusion["f1"][name]
        lines.append(f"  {name[:9]:<9} " + " ".join(f"{v:>5}" for v in counts) + ("      -" if f1 is None else f" {f1:6.3f}"))
    return "\n".join(lines)


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


def headline_gain(plain: dict, flipped: dict) -> float:
    """Mean change of the HEADLINE numbers (those both reports have) from ``plain`` to ``flipped``."""
    pairs = [(plain[s][k], flipped[s][k]) for s, k in HEADLINE if k in plain.get(s, {}) and k in flipped.get(s, {})]
    return float(np.mean([f - p for p, f in pairs]))



def format_report(result: dict, confusions: bool = False) -> str:
    """One line per source: its reported numbers (3 decimals) and, where it has them, 7-class accuracy;
    with ``confusions``, each expression source's confusion matrix below its line."""
    lines = []
    for name, numbers in result.items():
        parts = [f"{k} {v:.3f}" for k, v in numbers.items() if isinstance(v, float)]
        if "seven_class" in numbers:
            parts.append(f"7-class accuracy {numbers['seven_class']['accuracy']:.3f}")
        lines.append(f"{name:<10} " + "  ".join(parts))
        if confusions and "confusion" in numbers:
            lines.append(format_confusion(numbers["confusion"]))
    return "\n".join(lines)

@dataclass
class FlipChoice:
    """The reports without and with flip averaging, the mean change of the HEADLINE numbers, the choice."""

    without_flip: dict
    with_flip: dict
    gain: float

    @property
    def use(self) -> bool:
        return self.gain > 0

    def as_dict(self) -> dict:
        return {"without_flip": self.without_flip, "with_flip": self.with_flip, "gain": self.gain}


def choose_flip(sets: dict[str, pd.DataFrame], model_paths: list[str], **loading) -> FlipChoice:
    """Score the model(s) on ``sets`` with and without flip averaging; use it where the HEADLINE mean rises."""
    results = {flip: report(sets, evaluations(sets, model_paths, flip, **loading)) for flip in (False, True)}
    return FlipChoice(results[False], results[True], headline_gain(results[False], results[True]))


def write_flip(model_path: str | PathLike[str], target: str | PathLike[str], use: bool) -> None:
    """Save the checkpoint at ``model_path`` to ``target`` with ``test_time_flip`` (analyze averages each
    face with its mirror image where it is true)."""
    update_extra(load_model(model_path), target, **{TEST_TIME_FLIP: use})
