"""Framework parity: every registered model trained with the same config on the same synthetic
data in PyTorch and in TensorFlow; prints accuracy on unseen signers and epoch time side by side.

    .venv/bin/python benchmarks/framework_parity.py [--epochs 12] [--models transformer,lstm]

Both frameworks get identical numpy batches (same split, shuffling and augmentation), the same
LR schedule and the same metrics code, so differences come from the frameworks' kernels,
initialisation and optimiser details only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from islr.config import load_config
from islr.data.datamodule import build_datasets
from islr.data.synthetic import generate
from islr.models.registry import list_models
from islr.training.pipeline import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument("--signs", type=int, default=10)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else list_models("torch")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "data", signs=args.signs, participants=8, per_sign=5, seed=1)
        for name in names:
            for framework in ("torch", "tensorflow"):
                cfg = load_config(None, [
                    f"data.data_dir={tmp / 'data'}", f"data.cache_dir={tmp / 'cache'}", "data.valid_size=0.25",
                    "data.test_size=0.25", f"model.name={name}", f"train.framework={framework}",
                    f"train.epochs={args.epochs}", "train.batch_size=32", "train.lr=1e-3", "train.progress=false",
                    "train.tensorboard=false", "train.early_stopping=false", "augment.mirror=0.3", "augment.rotate=0.3",
                ])
                datasets = build_datasets(cfg, progress=False)
                result = train(cfg, tmp / f"{name}-{framework}", datasets=datasets)
                times = [r["epoch_time"] for r in result.history[1:]] or [result.history[0]["epoch_time"]]
                rows.append({"model": name, "framework": framework, "params": result.num_parameters,
                             "val_accuracy": result.history[-1]["val_accuracy"],
                             "test_accuracy": result.test_metrics["accuracy"], "epoch_s": sum(times) / len(times)})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.signs} synthetic signs, 8 signers (train 4 / valid 2 / test 2, unseen), {args.epochs} epochs, batch 32\n")
    print("| model | params | torch test acc | TF test acc | torch epoch s | TF epoch s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        t, f = (next(r for r in rows if r["model"] == name and r["framework"] == fw) for fw in ("torch", "tensorflow"))
        print(f"| {name} | {t['params']:,} | {t['test_accuracy']:.3f} | {f['test_accuracy']:.3f} | {t['epoch_s']:.2f} | {f['epoch_s']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
