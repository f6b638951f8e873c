"""The cache build at size: a small build stays in one process, and the store is written in
chunks, so the build's memory does not grow with the data."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np

import islr.data.cache as cache_mod
from islr.config import PreprocessConfig
from islr.data.cache import build_cache, use_pool
from islr.data.kaggle import read_train_csv

CFG = PreprocessConfig()


def many(samples, n):
    """``n`` samples cycling over the given files (distinct sequence ids)."""
    return [dataclasses.replace(samples[i % len(samples)], sequence_id=10_000 + i) for i in range(n)]


def test_pool_only_pays_from_about_a_thousand_files():
    assert not use_pool(2, 17, 522)  # the 522 genuine files
    assert use_pool(2, 296, 9_473)  # a 10% replica of the competition data
    assert not use_pool(1, 296, 9_473) and not use_pool(2, 1, 5_000)


def test_a_522_file_build_with_two_workers_stays_in_this_process(synth_dir, tmp_path, monkeypatch):
    def no_pool(*args):
        raise AssertionError("a worker pool was started for 522 files")

    monkeypatch.setattr(cache_mod, "_run_pool", no_pool)
    files = read_train_csv(synth_dir)
    store = build_cache(many(files, 522), CFG, tmp_path, workers=2, progress=False)
    assert len(store) == 522 and not store.errors
    np.testing.assert_array_equal(store[len(files) + 3], store[3])  # the same file, prepared twice


def _peak_build_bytes(samples, cache_dir) -> tuple[int, int]:
    tracemalloc.start()
    try:
        store = build_cache(samples, CFG, cache_dir, workers=1, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, store.data.nbytes


def test_build_memory_does_not_grow_with_the_data(synth_dir, tmp_path):
    samples = read_train_csv(synth_dir)
    small_peak, small_bytes = _peak_build_bytes(many(samples, 64), tmp_path / "small")
    large_peak, large_bytes = _peak_build_bytes(many(samples, 640), tmp_path / "large")
    grown = large_bytes - small_bytes
    assert grown > 8 * small_bytes  # ten times the data ...
    # ... but the build's peak grows by a small part of it (the index rows, not the frames):
    # a build holding every prepared sequence at once would add all of ``grown``.
    assert large_peak - small_peak < 0.25 * grown, (small_peak, large_peak, grown)
