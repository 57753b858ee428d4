"""``affectlab train``: a recipe's stages into a run directory."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def cmd_train(args: argparse.Namespace) -> int:
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


#: ``affectlab train --help``'s description.
DESCRIPTION = ("Run a YAML recipe's stages (teacher, students, folds, ...) into a run directory. Any recipe value can "
               "be changed with key=value, e.g. sources.au.path=/data/abaw stages.student.repeat=3 data.workers=8. "
               "Several GPUs: torchrun --nproc_per_node=N -m affectlab.cli train ...")


def add_commands(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a recipe (configs/*.yaml) from partially labelled, multi-database data",
                           description=DESCRIPTION)
    train.add_argument("recipe", help="YAML recipe, e.g. configs/teacher-student.yaml")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides (values parsed as YAML)")
    train.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    train.add_argument("--device", help="cpu, cuda (default: the recipe's train.device, auto)")
    train.add_argument("--data-root", help="where the recipe's sources live (its data_root)")
    train.set_defaults(func=cmd_train)
