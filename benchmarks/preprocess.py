"""Per-file preprocessing time on the genuine Kaggle files, against a floor and the seed's way.

    python benchmarks/preprocess.py [--data-dir DIR] [--limit N] [--workers N]

Rows (milliseconds per file, best of ``--repeat`` passes over the same files):
  (a) floor: bare pyarrow read of x, y, z into a numpy array, nothing else;
  (b) baseline: a seed-style pandas pipeline written from the seed's description
      (pd.read_parquet, keep the useful landmarks, pivot per file, interpolate up to 3 frames,
      fillna(0), resize to 32 frames);
  (c) islr: read_landmarks (layout checked) + preprocess, one process; (c') the same without
      the layout check;
  (d) islr's parallel cache build (all cores), total time / files, cold.
Ratios (b)/(c) and (c)/(a) follow.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "asl-signs"


def floor_read(path: Path) -> np.ndarray:
    """(a) Only read x, y, z and reshape: what any pipeline must pay."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["x", "y", "z"])
    data = np.stack([table.column(c).to_numpy() for c in ("x", "y", "z")], axis=-1)
    return data.reshape(-1, 543, 3).astype(np.float32)


def seed_style(path: Path) -> np.ndarray:
    """(b) The seed's per-file pandas steps, as its documentation describes them."""
    import pandas as pd

    from islr.data.landmarks import LIPS, SEED_POSE

    df = pd.read_parquet(path, columns=["frame", "type", "landmark_index", "x", "y"])
    face = (df["type"] == "face") & df["landmark_index"].isin(LIPS)
    hands = df["type"].isin(["left_hand", "right_hand"])
    pose = (df["type"] == "pose") & df["landmark_index"].isin(SEED_POSE - 489)
    df = df[face | hands | pose]
    wide = df.pivot(index="frame", columns=["type", "landmark_index"], values=["x", "y"])
    wide = wide.interpolate(method="linear", limit=3, limit_area="inside").fillna(0)
    order = [("face", i) for i in LIPS] + [("left_hand", i) for i in range(21)]
    order += [("right_hand", i) for i in range(21)] + [("pose", i) for i in SEED_POSE - 489]
    xy = np.stack([wide["x"][order].to_numpy(), wide["y"][order].to_numpy()], axis=-1)
    # keep frames with a hand, then pad by repeating / pool by averaging to 32 frames
    hand_cols = slice(40, 82)
    nonempty = (xy[:, hand_cols] != 0).any(axis=(1, 2))
    if nonempty.any():
        xy = xy[nonempty]
    n = len(xy)
    index = (np.arange(32) * n) // 32
    if n <= 32:
        return xy[index].astype(np.float32)
    return np.stack([xy[a:b].mean(0) for a, b in zip(index, list(index[1:]) + [n], strict=True)]).astype(np.float32)


def islr_pipeline(path: Path, cfg, check: bool = True) -> np.ndarray:
    """(c) islr's reader and preprocessing, exactly as training and the camera use them."""
    from islr.data.kaggle import read_landmarks
    from islr.data.preprocess import preprocess

    return preprocess(read_landmarks(path, check=check), cfg)


def per_file_ms(fn, paths: list[Path], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for p in paths:
            fn(p)
        best = min(best, time.perf_counter() - started)
    return best / len(paths) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files (0 = all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="cache build processes (0 = all cores)")
    args = parser.parse_args(argv)

    from islr.config import PreprocessConfig
    from islr.data.cache import build_cache, default_workers
    from islr.data.kaggle import read_train_csv

    samples = read_train_csv(args.data_dir)
    if args.limit:
        samples = samples[: args.limit]
    paths = [s.path for s in samples]
    cfg = PreprocessConfig()  # seed96, x/y, interpolate 3, drop hand-less frames, 32 frames
    for p in paths[:3]:  # warm imports and the page cache for every contender alike
        floor_read(p), seed_style(p), islr_pipeline(p, cfg)

    a = per_file_ms(floor_read, paths, args.repeat)
    b = per_file_ms(seed_style, paths, args.repeat)
    c = per_file_ms(lambda p: islr_pipeline(p, cfg), paths, args.repeat)
    c2 = per_file_ms(lambda p: islr_pipeline(p, cfg, check=False), paths, args.repeat)
    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = build_cache(samples, cfg, tmp, workers=workers, progress=False)
        d = (time.perf_counter() - started) / len(samples) * 1e3
        assert len(store) == len(samples), store.errors

    print(f"{len(paths)} files from {args.data_dir}, best of {args.repeat}; {workers} worker(s) for (d)")
    print(f"{'pipeline':58s} {'ms/file':>8s}")
    rows = [
        ("(a) floor: pyarrow read x,y,z -> numpy", a),
        ("(b) baseline: seed-style pandas pivot/interpolate/resize", b),
        ("(c) islr: read_landmarks(check) + preprocess", c),
        ("(c') islr: read_landmarks(no check) + preprocess", c2),
        (f"(d) islr: parallel cache build, {workers} workers, per file", d),
    ]
    for name, ms in rows:
        print(f"{name:58s} {ms:8.3f}")
    print(f"(b)/(c) = {b / c:.1f}x faster than the baseline (target >= 10x)")
    print(f"(c)/(a) = {c / a:.2f}x the floor (target <= 2x); (c')/(a) = {c2 / a:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
