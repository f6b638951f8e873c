"""Trainer overhead and data-loader throughput (PyTorch), measured in one run.

Prints a table: samples/s of (a) a bare PyTorch loop over pre-built batches, (b) the islr Trainer
on the same model, data and batches (its epoch loop, LR schedule, callbacks, prefetch), (c) the
data loader alone (prepared -> augment -> featurize -> collate), with ratios. Run:

    .venv/bin/python benchmarks/train_throughput.py [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from islr.backends import get_backend
from islr.config import load_config
from islr.data.datamodule import build_datasets
from islr.data.dataset import BatchLoader
from islr.data.synthetic import generate
from islr.models.registry import create_model
from islr.training.trainer import Trainer


def bare_loop(cfg, batches, input_dim, classes, epochs):
    torch.manual_seed(0)
    model = create_model(cfg.model.name, "torch", input_dim, classes, cfg.model.params)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        for b in batches:
            x, m, y = torch.from_numpy(b["x"]), torch.from_numpy(b["mask"]), torch.from_numpy(b["y"])
            opt.zero_grad()
            loss = loss_fn(model(x, m), y)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - started)
    return samples_per_s(batches, times)


def samples_per_s(batches, epoch_times):
    """Median epoch rate, the first (warm-up) epoch left out."""
    steady = sorted(epoch_times[1:] or epoch_times)
    return sum(len(b["y"]) for b in batches) / steady[len(steady) // 2]


class FixedBatches:
    """The same pre-built batches every epoch (so both loops see identical work)."""

    def __init__(self, batches):
        self.batches = batches

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def trainer_loop(cfg, batches, valid, input_dim, classes, sign_map, epochs, run_dir):
    backend = get_backend("torch")
    backend.setup(cfg, input_dim, classes, len(batches))
    trainer = Trainer(cfg, backend, FixedBatches(batches), FixedBatches(valid), run_dir, sign_map)
    trainer.fit()
    return samples_per_s(batches, [r["epoch_time"] for r in trainer.history.rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="transformer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "data", signs=20, participants=6, per_sign=8, seed=0)
        cfg = load_config(None, [f"data.data_dir={tmp / 'data'}", f"data.cache_dir={tmp / 'cache'}", f"model.name={args.model}",
                                 "train.batch_size=64", "train.progress=false", "train.tensorboard=false",
                                 "train.early_stopping=false", f"train.epochs={args.epochs}",
                                 "augment.mirror=0.5", "augment.rotate=0.5", "augment.scale=0.5"])
        data = build_datasets(cfg, progress=False)
        loader = BatchLoader(data.train, 64, shuffle=True, seed=0)
        started = time.perf_counter()
        batches = list(loader)
        load_rate = sum(len(b["y"]) for b in batches) / (time.perf_counter() - started)
        full = [b for b in batches if len(b["y"]) == 64]
        valid = list(BatchLoader(data.valid, 64))
        classes = len(data.sign_map)
        # Interleaved, twice each: the machine is shared and noisy.
        bare, ours = [], []
        for i in range(2):
            bare.append(bare_loop(cfg, full, data.feature_dim, classes, args.epochs))
            ours.append(trainer_loop(cfg, full, valid, data.feature_dim, classes, data.sign_map, args.epochs, tmp / f"run{i}"))
        base, ours = sum(bare) / 2, sum(ours) / 2
    print(f"model {args.model}, batch 64, {len(full)} batches x {args.epochs} epochs, {args.threads} threads, {data.feature_dim} features\n")
    print("| loop | samples/s | vs bare loop |\n|---|---:|---:|")
    print(f"| bare PyTorch loop (mean of 2 interleaved runs) | {base:,.0f} | 1.00 |")
    print(f"| islr Trainer, torch backend (mean of 2) | {ours:,.0f} | {ours / base:.2f} (overhead {100 * (1 - ours / base):+.1f}%) |")
    print(f"| data loader alone (augment + featurize + collate) | {load_rate:,.0f} | {load_rate / base:.1f}x the model's rate |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
