"""Does the loader keep the device fed? Training throughput with and without the loader, one run.

For each config (today's default and the 1st-place recipe) and the chosen framework and device,
it measures in one process:

(a) the training step alone: ``backend.train_epoch`` over batches built beforehand (the device's
    ceiling; mixed precision as the config says, ``--mixed-precision`` turns it on for both);
(b) the loader alone: a :class:`~islr.data.loader.ParallelBatchLoader` with ``--workers N``
    (0: in the training process) building the same config's augmented batches;
(c) both: ``train_epoch`` fed by that loader, as ``islr train`` runs it.

"keeps up" is (c) >= 0.95 x (a). The training set is repeated until an epoch has ``--batches``
batches, so a small folder measures steady state; every rate is the median of ``--repeats``
passes after a warm-up pass. Run (a GPU machine: ``--device cuda``; both frameworks: twice):

    .venv/bin/python benchmarks/feed.py --data-dir /work/shared/data/asl-signs --framework torch \\
        --device auto --workers 2 [--batches 60] [--repeats 3] [--configs default kaggle-1st]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from islr.backends import get_backend
from islr.config import ExperimentConfig, find_config, load_config
from islr.data.datamodule import build_datasets
from islr.data.dataset import BatchLoader, LandmarkDataset
from islr.data.loader import make_loader


def rate(run: Callable[[], object], samples: int, repeats: int) -> float:
    """Median samples/s of ``run()`` over ``repeats`` timed calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return samples / statistics.median(times)


def repeated(train: LandmarkDataset, batch_size: int, batches: int) -> LandmarkDataset:
    """``train`` repeated until one epoch has at least ``batches`` full batches."""
    copies = max(1, -(-batches * batch_size // len(train)))
    return train.subset(np.tile(np.arange(len(train)), copies))


def limited(loader: Iterable, count: int, epoch: int) -> Iterator:
    """The first ``count`` batches of ``epoch``."""
    loader.set_epoch(epoch)
    for b, batch in enumerate(loader):
        if b >= count:
            return
        yield batch


def measure(cfg: ExperimentConfig, framework: str, workers: int, batches: int, repeats: int) -> dict[str, float]:
    datasets = build_datasets(cfg, progress=False)
    size = cfg.train.batch_size
    train = repeated(datasets.train, size, batches)
    plain = BatchLoader(train, size, shuffle=True, seed=cfg.train.seed, sampling=cfg.data.sampling, drop_last=True)
    fixed = [plain.batch(b) for b in range(batches)]
    backend = get_backend(framework)
    backend.setup(cfg, datasets.feature_dim, len(datasets.sign_map), batches)
    samples = batches * size
    epoch = iter(range(10**6))
    step = rate(lambda: backend.train_epoch(fixed, next(epoch)), samples, repeats)
    loader = make_loader(BatchLoader(train, size, shuffle=True, seed=cfg.train.seed, sampling=cfg.data.sampling,
                                     drop_last=True), workers)
    try:
        alone = rate(lambda: sum(1 for _ in limited(loader, batches, next(epoch))), samples, repeats)
        both = rate(lambda: backend.train_epoch(limited(loader, batches, next(epoch)), next(epoch)), samples, repeats)
    finally:
        getattr(loader, "close", lambda: None)()
    mixed = getattr(backend, "mixed", None) if framework == "tensorflow" else getattr(backend, "amp", None)
    return {"step": step, "loader": alone, "both": both, "mixed": bool(mixed),
            "device": getattr(backend, "device_info", "") or f"{framework}: devices {getattr(backend, 'devices', '?')}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cache-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--framework", default="torch", choices=("torch", "tensorflow"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["default", "kaggle-1st"])
    parser.add_argument("--mixed-precision", action="store_true", help="train.mixed_precision on for every config")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or str(Path(tmp) / "cache")
        for name in args.configs:
            overrides = [f"data.data_dir={args.data_dir}", f"data.cache_dir={cache}", f"train.device={args.device}",
                         f"train.framework={args.framework}", "train.progress=false", "train.tensorboard=false"]
            if args.mixed_precision:
                overrides.append("train.mixed_precision=true")
            cfg = load_config(None if name == "default" else find_config(name), overrides)
            rows.append((name, cfg, measure(cfg, args.framework, args.workers, args.batches, args.repeats)))
    print(f"{args.framework}, device {args.device}, {args.workers} loader workers, {args.batches} batches x "
          f"{args.repeats} passes, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(rows[0][2]["device"])
    print("| config | model | batch | mixed precision | step alone samples/s | loader alone | step fed by loader | keeps up |")
    print("|---|---|---:|---|---:|---:|---:|---|")
    for name, cfg, r in rows:
        keeps = "yes" if r["both"] >= 0.95 * r["step"] else f"no ({r['both'] / r['step']:.2f} of the step's rate)"
        print(f"| {name} | {cfg.model.name} | {cfg.train.batch_size} | {'on' if r['mixed'] else 'off'} | "
              f"{r['step']:,.0f} | {r['loader']:,.0f} | {r['both']:,.0f} | {keeps} |")


if __name__ == "__main__":
    main()
