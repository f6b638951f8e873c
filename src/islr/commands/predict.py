"""Predict the signs of Kaggle parquet files: ``islr predict MODEL FILE_OR_DIR... [--top-k 5] [--format json|csv]``.

MODEL is a run directory, an ``.onnx`` or a ``.tflite`` file (exported with its preprocessing and
sign names, or any model with the Kaggle signature plus ``--sign-map``). A folder input means every ``*.parquet`` under it. Each file is listed with its top-k
signs and probabilities; unreadable files are reported on stderr and skipped (exit code 1 then,
after the good files are written).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="run directory, .onnx or .tflite file")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="parquet files or folders of them")
    parser.add_argument("--top-k", type=int, default=5, help="signs listed per file (default 5)")
    parser.add_argument("--format", choices=("json", "csv"), default="json",
                        help="json: a list of {file, top: [{sign, probability}]}; csv: file,rank,sign,probability")
    parser.add_argument("--out", help="write here instead of stdout")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="for a run directory")
    parser.add_argument("--tta", choices=("none", "mirror"),
                        help="mirror: average the logits of each sequence and its mirror (default: the model's own)")
    parser.add_argument("--sign-map", help="sign -> index JSON naming a model file's classes (Kaggle models "
                                           "without islr metadata: sign_to_prediction_index_map.json)")


def format_predictions(predictions: list, fmt: str) -> str:
    """The predictions as JSON (a list of objects) or long CSV (one row per file and rank)."""
    if fmt == "json":
        return json.dumps([p.as_dict() for p in predictions], indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "rank", "sign", "probability"])
    for p in predictions:
        for rank, (sign, prob) in enumerate(zip(p.signs, p.probabilities, strict=True), start=1):
            writer.writerow([p.source, rank, sign, f"{prob:.6f}"])
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from islr.errors import ConfigError
    from islr.inference.exported import load_predictor
    from islr.inference.predictor import parquet_inputs, predict_files

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    predictor = load_predictor(args.model, args.checkpoint, sign_map=args.sign_map)
    if args.tta:
        predictor.set_tta(args.tta)
    predictions, skipped = predict_files(predictor, parquet_inputs(args.inputs), min(args.top_k, predictor.num_classes))
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    text = format_predictions(predictions, args.format)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if skipped:
        print(f"{len(skipped)} of {len(skipped) + len(predictions)} inputs skipped", file=sys.stderr)
    return 1 if skipped else 0
