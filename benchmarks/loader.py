"""Training-batch throughput of the data loader, with its baseline measured in the same run.

Rows: (a) baseline: the loader as it was before the batch was vectorised and ``num_workers``
was read (one thread; augment one sequence at a time with
:func:`islr.data.augment_reference.augment_per_sequence`, ``featurize`` per sequence, pad: the
same values); (b) ``BatchLoader`` in the process (packed augmentation and features); (c)
``ParallelBatchLoader`` with 1 worker and with ``--workers N`` (padded batches handed over in
shared memory). Every row
builds the same batches of the config's training split (recipe augmentations on); a row's rate is
the median of ``--repeats`` timed passes over ``--batches`` batches, each after one warm-up batch
(the worker pool is started before timing). The consumer only receives the batches. CPU ms/batch
adds the CPU time of this process and of the workers (Linux ``/proc``): the work a batch costs,
which, unlike samples/s, does not depend on what else the machine runs. Run:

    .venv/bin/python benchmarks/loader.py --config kaggle-1st \\
        --data-dir /work/shared/data/asl-signs --workers 2 [--batches 100] [--repeats 3] [--epoch-batches 200]

The last line is ``samples/s: <rate of --workers N>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from islr.config import find_config, load_config
from islr.data.augment_reference import augment_per_sequence
from islr.data.datamodule import build_datasets
from islr.data.dataset import BatchLoader
from islr.data.loader import ParallelBatchLoader
from islr.data.preprocess import featurize


def baseline_batch(loader: BatchLoader, b: int, order: np.ndarray) -> dict[str, np.ndarray]:
    """Batch ``b`` the way the loader built it before: featurize one sequence at a time."""
    ds = loader.dataset
    idx = order[b * loader.batch_size : (b + 1) * loader.batch_size]
    rng = np.random.default_rng([loader.seed, loader.epoch, b, 0xA5])
    seqs = augment_per_sequence(ds.augmenter, [ds.prepared(i) for i in idx], rng)
    feats = [featurize(s, ds.cfg) for s in seqs]
    width = max(len(f) for f in feats)
    x = np.zeros((len(feats), width, ds.feature_dim), np.float32)
    mask = np.zeros((len(feats), width), bool)
    for i, f in enumerate(feats):
        x[i, : len(f)] = f
        mask[i, : len(f)] = True
    return {"x": x, "mask": mask, "y": ds.labels[idx]}


def endless(loader, build: Callable | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Batches epoch after epoch (``build(loader, b, order)`` instead of iterating, if given)."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        if build is None:
            yield from loader
        else:
            order = loader.order()
            for b in range(len(loader)):
                yield build(loader, b, order)
        epoch += 1


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by this process and the processes ``pids``."""
    own = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return own


def rate(batches: Iterator[dict[str, np.ndarray]], count: int, repeats: int,
         pids: Callable[[], list[int]] = list) -> tuple[float, float]:
    """Median samples/s over ``repeats`` passes, and CPU milliseconds a batch (all processes)."""
    next(batches)  # warm-up: caches, a started pool
    rates, cpu = [], []
    for _ in range(repeats):
        samples, started, cpu0 = 0, time.perf_counter(), cpu_seconds(pids())
        for _ in range(count):
            samples += len(next(batches)["y"])
        rates.append(samples / (time.perf_counter() - started))
        cpu.append((cpu_seconds(pids()) - cpu0) / count * 1e3)
    return statistics.median(rates), statistics.median(cpu)


def worker_pids(loader: ParallelBatchLoader) -> Callable[[], list[int]]:
    return lambda: loader.worker_pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a config file, or a shipped config by name (kaggle-1st)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epoch-batches", type=int, default=200,
                        help="repeat the training set until an epoch has at least this many batches")
    args = parser.parse_args()
    cfg = load_config(find_config(args.config), [f"data.data_dir={args.data_dir}", f"data.cache_dir={args.cache_dir}"])
    train = build_datasets(cfg, progress=False).train
    # An epoch of the full data is ~1,400 batches; a small folder's epoch of a few batches would
    # mostly measure the pipeline filling and emptying at each epoch's start and end.
    copies = max(1, -(-args.epoch_batches * cfg.train.batch_size // len(train)))
    train = train.subset(np.tile(np.arange(len(train)), copies))

    def plain() -> BatchLoader:
        return BatchLoader(train, cfg.train.batch_size, shuffle=True, seed=cfg.train.seed)

    lengths = train.lengths()
    print(f"config {args.config}: {len(train) // copies} training sequences x {copies} per epoch, "
          f"{train.feature_dim} features, "
          f"frames median {np.median(lengths):.0f} max {lengths.max()}, batch {cfg.train.batch_size}, "
          f"{args.batches} batches x {args.repeats} passes")
    rows = [("baseline: per-sequence featurize, 1 thread", *rate(endless(plain(), baseline_batch), args.batches,
                                                                   args.repeats))]
    rows.append(("BatchLoader, in process", *rate(endless(plain()), args.batches, args.repeats)))
    for workers in dict.fromkeys((1, args.workers)):
        with ParallelBatchLoader(plain(), workers) as loader:
            rows.append((f"ParallelBatchLoader, {workers} worker{'s' * (workers > 1)}",
                         *rate(endless(loader), args.batches, args.repeats, worker_pids(loader))))
    base, one = rows[0][1], rows[2][1]
    print(f"{'loader':<44} {'samples/s':>9} {'x baseline':>10} {'x 1 worker':>10} {'CPU ms/batch':>12}")
    for name, value, cpu in rows:
        print(f"{name:<44} {value:>9.0f} {value / base:>10.2f} {value / one:>10.2f} {cpu:>12.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"samples/s: {rows[-1][1]:.0f}")


if __name__ == "__main__":
    main()
