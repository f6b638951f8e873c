"""Export a trained run: ``islr export RUN_DIR --format onnx|tflite|kaggle --out FILE``.

``onnx`` takes PyTorch runs (inputs ``x`` (B, T, F) and ``mask`` (B, T), output ``logits``);
``tflite`` writes the same contract for LiteRT; ``kaggle`` writes the competition's TFLite
contract (``inputs`` [n_frames, 543, 3] raw landmarks -> ``outputs`` [classes] logits,
preprocessing in the graph). Keras runs convert directly; PyTorch runs go to TFLite through the
model's Keras twin (weights copied, logits checked equal). A ``<FILE>.islr.json`` sidecar with
the preprocessing and sign names is written next to the file. Afterwards the file is compared
with the eager model on a few sequences (``--check-dir``, else the run's dataset, else synthetic
ones): the logits must agree within ``--atol`` with the same top-1 (exit code 1 otherwise).
``--tta mirror`` exports mirror test-time augmentation inside the graph (both passes, logits averaged).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `islr train`")
    parser.add_argument("--format", required=True, choices=("onnx", "tflite", "kaggle"), dest="fmt",
                        help="onnx (PyTorch runs), tflite (LiteRT) or kaggle (TFLite in the competition's contract)")
    parser.add_argument("--out", required=True, help="the file to write (.onnx or .tflite)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    parser.add_argument("--check-dir", help="parquet files (a folder, searched recursively) for the parity check")
    parser.add_argument("--check-count", type=int, default=8, help="sequences used for the parity check (default 8; 0 skips it)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest accepted logit difference (default 1e-4)")
    parser.add_argument("--tta", choices=("none", "mirror"), default="none",
                        help="mirror: the file averages the logits of each sequence and its mirror (in the graph)")


def _check_sequences(args: argparse.Namespace):  # noqa: ANN202 - (raws, sources, where)
    from pathlib import Path

    from islr.errors import DataError
    from islr.export.parity import dataset_raws, load_raws, synthetic_raws
    from islr.run_dir import RunDir

    if args.check_dir:
        raws, sources = load_raws([args.check_dir], args.check_count)
        return raws, sources, args.check_dir
    data_dir = RunDir(args.run_dir).load_config().data.data_dir
    if data_dir and (Path(data_dir) / "train.csv").exists():
        try:
            raws, sources = dataset_raws(data_dir, args.check_count)
            return raws, sources, data_dir
        except DataError:
            pass  # the run's data moved or is unreadable: fall back to synthetic sequences
    raws, sources = synthetic_raws(args.check_count)
    return raws, sources, "synthetic sequences"


def run(args: argparse.Namespace) -> int:
    from islr.errors import ConfigError
    from islr.export.run import export_run

    if args.check_count < 0:
        raise ConfigError(f"--check-count must be >= 0, got {args.check_count}")
    raws, sources, where = ([], [], "") if args.check_count == 0 else _check_sequences(args)
    result = export_run(args.run_dir, args.fmt, args.out, args.checkpoint, raws, sources, args.atol, tta=args.tta)
    print(result.summary())
    if result.parity is not None:
        print(f"(parity sequences from {where})")
        if not result.parity.passed:
            print(f"parity check FAILED (worst: {result.parity.worst}); the file was written but does not "
                  "reproduce the eager model")
            return 1
    return 0
