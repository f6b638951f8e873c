"""Build (or reuse) the preprocessed cache: ``islr preprocess DATA_DIR [--config F.yaml]``.

Reads ``DATA_DIR/train.csv`` and prepares every file in parallel into a store under
``--cache-dir`` (default ``data.cache_dir``), keyed by the preprocessing settings and the input
files: an unchanged second run only opens it, an interrupted run resumes. The store holds every
row of train.csv, so ``islr train`` opens this same store whatever ``data.exclusions`` or
``data.signs`` leave out (the counts printed here leave out the excluded rows). Unreadable files are skipped and listed; train.csv rows with a
non-integer id or a path that escapes DATA_DIR are refused (named by line) and never opened;
inf/-inf coordinates are treated as missing and counted. ``--export-npy DIR`` also
writes each sequence's features as ``DIR/<participant>/<sequence>.npy``. Dotted overrides such
as ``--preprocess.landmarks kaggle118`` are accepted.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DATA_DIR", help="dataset in Kaggle layout")
    parser.add_argument("--config", help="experiment YAML (file or shipped name) whose preprocess/data sections apply")
    parser.add_argument("--cache-dir", help="where stores are kept (default: data.cache_dir)")
    parser.add_argument("--workers", type=int, help="processes (default: data.workers; 0 = all cores)")
    parser.add_argument("--export-npy", metavar="DIR", help="also write per-sequence feature .npy files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(_accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from islr.commands.train import overrides_from_extra
    from islr.config import load_config
    from islr.data.cache import build_cache
    from islr.data.datamodule import apply_exclusions
    from islr.data.kaggle import read_train_table
    from islr.data.preprocess import feature_dim
    from islr.errors import ConfigError

    cfg = load_config(args.config, overrides_from_extra(getattr(args, "overrides", [])))
    data_dir = Path(args.data_dir)
    cache_dir = Path(args.cache_dir or cfg.data.cache_dir)
    if cache_dir.resolve() == data_dir.resolve() or data_dir.resolve() in cache_dir.resolve().parents:
        raise ConfigError(f"--cache-dir {cache_dir} is inside the raw data folder; choose a folder outside it")
    workers = cfg.data.workers if args.workers is None else args.workers
    table = read_train_table(data_dir)
    samples = table.samples
    excluded = 0
    if cfg.data.exclusions:
        samples, excluded = apply_exclusions(samples, cfg.data.exclusions)
    # The store holds every row of train.csv (the one training opens, whatever it excludes);
    # the exclusions only pick the rows reported and exported here.
    whole = build_cache(table.samples, cfg.preprocess, cache_dir, workers=workers, progress=not args.no_progress)
    store = whole.restrict(samples) if excluded else whole
    p = cfg.preprocess
    print(f"sequences: {len(store)} ({store.frames} frames) from {len(samples)} listed"
          + (f", {excluded} excluded" if excluded else ""))
    print(f"settings: landmarks={p.landmarks} coords={','.join(p.coords)} length_mode={p.length_mode} "
          f"features={feature_dim(p)}")
    print(f"store: {store.path} ({'hit: reused' if store.hit else f'miss: built in {store.build_seconds:.1f} s'})")
    if table.rejected:
        print(f"refused train.csv rows: {len(table.rejected)} (never opened)")
        for row in table.rejected[:5]:
            print(f"  {row.describe()}")
    print(f"non-finite values treated as missing: {store.nonfinite_values} in {store.nonfinite_files} files")
    print(f"skipped: {len(store.errors)}")
    for reason, count in Counter(r for _, r in store.errors).most_common(10):
        print(f"  {count} x {reason}")
    for path, reason in store.errors[:5]:
        print(f"  e.g. {path}: {reason}")
    if args.export_npy:
        n = store.export_npy(args.export_npy, p)
        print(f"exported: {n} feature files to {args.export_npy}")
    return 0
