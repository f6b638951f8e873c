"""Participant-grouped k-fold cross-validation: ``islr cv --config F.yaml --data-dir DIR --folds 5 [--seeds 4]``.

Trains every fold (and seed) under ``--out``, prints per-fold validation accuracy (plain and with
``--tta mirror``, the default), macro recall, with mean and spread, and writes ``cv_summary.json``
(with per-class recall) / ``cv_summary.md``. ``--eval-data-dir DIR`` also scores each fold's model
on every sequence of DIR (cross-domain); ``--data.fold_participants 1,2,3`` rotates only those
participants through the folds (everyone else always trains). ``--export DIR`` writes every fold
(x seed) model, copied at its last epoch, as one self-contained ensemble run directory. With ``--seeds N`` each fold also
gets an ensemble run averaging its seeds' logits (accepted by ``islr evaluate`` and ``islr predict``).
A killed CV resumes: finished runs are skipped, interrupted ones continue from their last checkpoint.
"""

from __future__ import annotations

import argparse

from islr.commands.train import configure as configure_train
from islr.commands.train import resolve_config


def configure(parser: argparse.ArgumentParser) -> None:
    configure_train(parser)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per fold, averaged as an ensemble")
    parser.add_argument("--only-fold", type=int, action="append", help="run just this fold (repeatable)")
    parser.add_argument("--out", help="output folder (default runs/cv-<model>-<framework>)")
    parser.add_argument("--tta", choices=("mirror", "none"), default="mirror",
                        help="also score each fold with mirror test-time augmentation (val_accuracy_tta); none skips it")
    parser.add_argument("--eval-data-dir", metavar="DIR",
                        help="also score each fold's model on every sequence of this dataset (Kaggle layout)")
    parser.add_argument("--export", metavar="DIR", dest="export_dir",
                        help="afterwards write every fold (x seed) model as one self-contained ensemble run directory")


def run(args: argparse.Namespace) -> int:
    from islr.evaluation.cv import cross_validate

    cfg = resolve_config(args)
    out = args.out or args.run_dir or f"runs/cv-{cfg.model.name}-{cfg.train.framework}"
    result = cross_validate(cfg, out, folds=args.folds, seeds=args.seeds, only_folds=args.only_fold,
                            tta=args.tta, eval_data_dir=args.eval_data_dir, export_dir=args.export_dir)
    print(result.markdown())
    s = result.summary
    line = f"{s['model']} ({s['framework']}) {s['folds']}-fold participant CV: val_accuracy {s['val_accuracy']['mean']:.4f} +- {s['val_accuracy']['std']:.4f}"
    for key, label in (("val_accuracy_tta", "with mirror TTA"), ("val_macro_recall", "macro recall"),
                       ("eval_accuracy", f"on {args.eval_data_dir}")):
        if key in s:
            line += f"; {label} {s[key]['mean']:.4f} +- {s[key]['std']:.4f}"
    if "ensemble_accuracy" in s:
        line += f"; {s['seeds']}-seed ensemble {s['ensemble_accuracy']['mean']:.4f} +- {s['ensemble_accuracy']['std']:.4f}"
    print(line)
    print(f"wrote {out}/cv_summary.md and cv_summary.json")
    if args.export_dir:
        print(f"wrote the {len(result.rows) * args.seeds}-model ensemble {s['export_dir']} "
              "(islr predict / live / evaluate / export accept it)")
    return 0
