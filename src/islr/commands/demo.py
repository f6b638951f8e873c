"""Run the whole job end to end on generated data: synth -> validate -> clean -> preprocess ->
plots -> train -> evaluate on unseen signers -> predict one file (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="folder for everything the demo writes")
    parser.add_argument("--framework", default="torch", help="torch or tensorflow")
    parser.add_argument("--model", default="transformer", help="registered model to train")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--signs", type=int, default=12)
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--per-sign", type=int, default=5)


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    from islr.cli import main as islr

    out = Path(args.out)
    data, cache, run_dir = out / "data", out / "cache", out / "run"
    started = time.perf_counter()

    _step(f"synth: {args.signs} signs x {args.participants} signers x {args.per_sign} takes -> {data}")
    if not (data / "train.csv").exists():
        islr(["synth", str(data), "--signs", str(args.signs), "--participants", str(args.participants),
              "--per-sign", str(args.per_sign), "--seed", "0"])
    else:
        print(f"(reusing {data})")
    _step("validate")
    if islr(["validate", str(data), "--report", str(out / "validation.csv")]) != 0:
        print("some files are invalid (see the report); they are skipped below")
    _step("clean (writes an exclusion list; raw files are never touched)")
    islr(["clean", str(data), "--out", str(out / "exclusions.csv")])
    _step("preprocess into the cache")
    islr(["preprocess", str(data), "--cache-dir", str(cache)])
    _step("plots")
    islr(["plot", "distribution", str(data), "--out", str(out / "distribution.png")])
    first_sign = (data / "train.csv").read_text().splitlines()[1].split(",")[-1]
    islr(["plot", "sign", str(data), "--sign", first_sign, "--out", str(out / f"sign_{first_sign}.gif"), "--n", "4"])
    _step(f"train {args.model} ({args.framework}), participant split: valid and test signers are unseen")
    code = islr(["train", "--data-dir", str(data), "--framework", args.framework, "--model", args.model,
                 "--epochs", str(args.epochs), "--run-dir", str(run_dir), "--cache-dir", str(cache),
                 "--no-progress", "--data.exclusions", str(out / "exclusions.csv"), "--train.patience", "100"])
    if code:
        return code
    _step("evaluate on the held-out signers")
    islr(["evaluate", str(run_dir), "--split", "test"])
    _step("predict one file")
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.inference.predictor import RunPredictor

    sample = read_train_csv(data)[-1]
    prediction = RunPredictor(run_dir).top_k(read_landmarks(sample.path), k=3, source=str(sample.path))
    shown = ", ".join(f"{s} {p:.2f}" for s, p in zip(prediction.signs, prediction.probabilities, strict=True))
    print(f"{sample.path.name} (true: {sample.sign}) -> {shown}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f}s; outputs under {out}/ "
          f"(run: {run_dir}, plots: {out}/*.png|gif, TensorBoard: tensorboard --logdir {run_dir}/tensorboard)")
    return 0
