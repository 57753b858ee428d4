"""``affectlab score`` and ``affectlab evaluate``: ABAW metrics of a predictions file, or of a model run here."""
from __future__ import annotations

import argparse
from pathlib import Path

from affectlab.cli import options
from affectlab.errors import AffectlabError
from affectlab.jsonfile import write_json


def cmd_score(args: argparse.Namespace) -> int:
    from affectlab.metrics import format_scores
    from affectlab.scoring import match, read_predictions, score_tables

    predictions = read_predictions(args.predictions, args.aus, face_id=args.face_id)
    labels = options.labelled(args.labels, args.images, args.split, args.aus, check_images=False)  # pairs by path alone
    label_folder = Path(args.labels).resolve()
    matched = match(predictions, labels.samples, pred_root=Path(args.predictions).resolve().parent,
                    label_root=label_folder if label_folder.is_dir() else label_folder.parent,
                    pred_name=args.predictions, label_name=args.labels)
    if matched.unmatched_labels:
        options.warn(f"{matched.unmatched_labels} labelled images have no prediction in {args.predictions}; "
                     f"scoring the {len(matched.labels)} that do")
    scores = score_tables(matched.predictions, matched.labels, args.aus,
                          au_thresholds=options.thresholds(args.thresholds, args.aus))
    print(format_scores(scores))
    if args.json:
        write_json(args.json, scores)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from affectlab.inference.backends import checkpoint_path
    from affectlab.inference.batch import evaluate
    from affectlab.metrics import format_scores
    from affectlab.models import load_model, read_checkpoint_meta

    args.model = [checkpoint_path(m) for m in args.model]
    if args.faces == "detect" and len(args.model) > 1:
        raise AffectlabError("--faces detect scores one model (as analyze runs one); give one --model")
    schema = read_checkpoint_meta(args.model[0]).schema  # the labels are checked before the models load
    labels = options.labelled(args.data, args.images, args.split, schema)
    thresholds = options.thresholds(args.thresholds, schema)
    device = options.device(args.device)
    if args.faces == "detect":
        from affectlab.analyze.evaluate_faces import evaluate_detected

        result = evaluate_detected(args.model[0], labels.samples, au_thresholds=thresholds,
                                   batch_size=args.batch_size, device=device)
        faceless = int((~result.readable).sum()) - len(result.unreadable)
        if faceless:
            options.warn(f"no face found in {faceless} image(s); scored the {int(result.readable.sum())} with one")
    else:
        models = [load_model(path, schema=schema, device=device) for path in args.model]
        result = evaluate(models, labels.samples, method=args.ensemble, au_thresholds=thresholds,
                          batch_size=args.batch_size, workers=args.workers, device=device)
    if result.unreadable:
        options.warn(f"{len(result.unreadable)} unreadable image(s) left out, e.g. {result.unreadable[0]}")
    print(format_scores(result.scores))
    if args.json:
        write_json(args.json, result.scores)
    if args.predictions:
        result.predictions.to_csv(args.predictions, index=False)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser("score", help="ABAW metrics of a predictions file against labels",
                           description="Per-AU F1, per-class F1, macro F1, accuracy, CCC of valence and arousal, "
                                       "and the ABAW P scores, for PREDICTIONS (a CSV manifest or the images.csv "
                                       "of 'affectlab analyze') against LABELS (any source 'data summary' reads).")
    score.add_argument("predictions", help="CSV manifest of predictions (AU columns may be probabilities), "
                                           "or an 'affectlab analyze' images.csv as written")
    score.add_argument("labels", help="labelled source: manifest CSV, ABAW root or MTL file, a dataset folder")
    options.add_source(score)
    score.add_argument("--face-id", type=int, metavar="ID",
                       help="score this face of each image of an analyze table (default: the most confident)")
    options.add_thresholds(score)
    options.add_aus(score)
    options.add_json(score, "the scores")
    score.set_defaults(func=cmd_score)

    evaluate = sub.add_parser("evaluate", help="ABAW metrics of a trained model (or an ensemble) on labelled data",
                              description="Predict every image of DATA with the model(s) and print per-AU F1, "
                                          "per-class F1, macro F1, accuracy, CCC of valence and arousal and the "
                                          "ABAW P scores for the labels DATA has; the JSON is that of "
                                          "'affectlab score'.")
    evaluate.add_argument("--model", action="append", required=True, metavar="CKPT",
                          help="checkpoint (.safetensors), or 'default' for the bundled model; repeat for an ensemble")
    options.add_data(evaluate, "anything 'data summary' reads: manifest CSV, ABAW root or MTL file, a dataset folder")
    evaluate.add_argument("--faces", choices=("crops", "detect"), default="crops",
                          help="crops (default): each image is a face crop, aligned by its landmarks or framing, as "
                               "training reads it; detect: find and align the face in each whole image as analyze "
                               "does and score its most confident face (what analyze + score gives)")
    evaluate.add_argument("--ensemble", choices=("mean", "vote"), default="mean",
                          help="how several models combine (default mean)")
    options.add_thresholds(evaluate)
    options.add_json(evaluate, "the scores")
    evaluate.add_argument("--predictions", metavar="FILE", help="also write the predictions as a CSV manifest")
    options.add_loading(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)
