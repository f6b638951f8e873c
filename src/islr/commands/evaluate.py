"""Evaluate a trained run: ``islr evaluate RUN_DIR [--data-dir DIR] [--split test|valid|all]``.

Writes ``metrics.json`` (accuracy, top5, macro_f1, n), ``per_sign_accuracy.csv`` and
``confusion_matrix.png`` into the run directory (or ``--out``). With ``--data-dir DIR --split all``
a run is scored on every sequence of another Kaggle-layout dataset (e.g. unseen signers) with
its own preprocessing and sign map; sequences of signs the run does not know are skipped and counted.

RUN_DIR may also be an ``.onnx`` / ``.tflite`` file, scored on all of ``--data-dir``: an islr
export, or a community Kaggle model (raw landmarks in) with ``--sign-map
sign_to_prediction_index_map.json``. Its outputs go to ``--out`` (default ``MODEL.eval/``), a
folder ``islr compare`` puts beside trained runs.
"""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN_DIR, --data-dir, --split and --checkpoint: shared by the verbs that score a run."""
    parser.add_argument("run_dir", help="a run directory written by `islr train`")
    parser.add_argument("--data-dir", help="evaluate on this Kaggle-layout dataset instead of the run's")
    parser.add_argument("--split", default="test", choices=("test", "valid", "train", "all"))
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--out", help="folder for the outputs (default: the run directory, or MODEL.eval/)")
    parser.add_argument("--sign-map", help="sign -> index JSON naming a model file's classes (Kaggle models)")
    parser.add_argument("--tta", choices=("none", "mirror"), default="none",
                        help="mirror: score the mean logits of each sequence and its mirror (run directories)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from islr.evaluation.evaluate import evaluate_run
    from islr.inference.exported import EXPORTED_SUFFIXES

    if Path(args.run_dir).suffix.lower() in EXPORTED_SUFFIXES:
        from islr.errors import ConfigError
        from islr.evaluation.evaluate_file import evaluate_model_file

        if not args.data_dir:
            raise ConfigError(f"{args.run_dir}: a model file is scored on --data-dir DIR (all of it)")
        if args.tta != "none":
            raise ConfigError(f"{args.run_dir}: --tta applies to run directories; export with --tta mirror "
                              "to put it in the file")
        result = evaluate_model_file(args.run_dir, args.data_dir, args.sign_map, args.out)
    else:
        result = evaluate_run(args.run_dir, args.data_dir, args.split, args.checkpoint, args.out, tta=args.tta)
    m = result.metrics
    print(f"{m['model']} ({m['framework']}) on {m['split']}: accuracy {m['accuracy']:.4f}  top5 {m['top5']:.4f}  "
          f"macro_f1 {m['macro_f1']:.4f}  n {m['n']}" + (f"  skipped {m['skipped']}" if m["skipped"] else ""))
    for path, reason in result.skipped[:10]:
        print(f"  skipped {path}: {reason}")
    print(f"wrote {', '.join(str(p) for p in result.outputs.values())}")
    return 0
