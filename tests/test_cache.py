"""The preprocessing cache: equality with direct prepare, reuse, keys, resume, bad files, real files."""

from __future__ import annotations

import dataclasses
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

import islr.data.cache as cache_mod
from islr.config import PreprocessConfig
from islr.data.cache import build_cache, cache_key, open_store
from islr.data.kaggle import Sample, read_landmarks, read_train_csv
from islr.data.preprocess import featurize, prepare
from islr.data.synthetic import generate

CFG = PreprocessConfig(landmarks="kaggle118", length_mode="variable", max_len=64)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, signs=3, participants=3, per_sign=2, seed=5, min_frames=6, max_frames=20)
    return out


def with_bad_files(synth_dir: Path, tmp_path: Path) -> list[Sample]:
    samples = read_train_csv(synth_dir)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    return samples + [
        Sample(broken, 1, 11, samples[0].sign),
        Sample(tmp_path / "missing.parquet", 1, 12, samples[0].sign),
    ]


def test_store_matches_prepare_and_reports_bad_files(synth_dir, tmp_path):
    samples = with_bad_files(synth_dir, tmp_path)
    store = build_cache(samples, CFG, tmp_path / "cache", workers=1, progress=False)
    assert not store.hit and len(store) == len(samples) - 2
    reasons = dict(store.errors)
    assert set(reasons) == {str(tmp_path / "broken.parquet"), str(tmp_path / "missing.parquet")}
    assert "not found" in reasons[str(tmp_path / "missing.parquet")]
    for i, s in enumerate(samples[: len(store)]):
        assert store.paths[i] == str(s.path) and store.sequence_ids[i] == s.sequence_id
        assert store.signs[i] == s.sign and store.participant_ids[i] == s.participant_id
        np.testing.assert_array_equal(store[i], prepare(read_landmarks(s.path), CFG))
    assert isinstance(store.data, np.memmap) and store.data.dtype == np.float32
    assert store.path.parent == tmp_path / "cache" and not list(synth_dir.rglob("*.npy"))
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone[1], store[1])


def test_second_run_is_a_noop_and_keys_follow_inputs(synth_dir, tmp_path):
    samples = read_train_csv(synth_dir)[:6]
    first = build_cache(samples, CFG, tmp_path, workers=1, progress=False)
    stamp = os.stat(first.path / "data.npy").st_mtime_ns
    started = time.perf_counter()
    second = build_cache(samples, CFG, tmp_path, workers=1, progress=False)
    assert second.hit and second.path == first.path and time.perf_counter() - started < 1.0
    assert os.stat(second.path / "data.npy").st_mtime_ns == stamp
    # featurize-only settings share the store; prepare settings and file changes do not.
    assert cache_key(samples, dataclasses.replace(CFG, normalization="none", motion=True)) == first.key
    assert cache_key(samples, dataclasses.replace(CFG, max_gap=1)) != first.key
    assert cache_key(samples, dataclasses.replace(CFG, landmarks="hands")) != first.key
    assert cache_key(samples[:5], CFG) != first.key
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(Path(samples[0].path).read_bytes())
    moved = [dataclasses.replace(samples[0], path=copy)] + samples[1:]
    key = cache_key(moved, CFG)
    os.utime(copy, ns=(1, 1))
    assert cache_key(moved, CFG) != key


def test_interrupted_build_resumes(synth_dir, tmp_path, monkeypatch):
    samples = read_train_csv(synth_dir)
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    real = cache_mod._prepare_chunk
    calls: list[int] = []

    def dies_on_third(task):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(task[0])
        return real(task)

    monkeypatch.setattr(cache_mod, "_prepare_chunk", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_cache(samples, CFG, tmp_path, workers=1, progress=False)
    assert calls == [0, 1] and len(list(tmp_path.rglob("shards/*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(cache_mod, "_prepare_chunk", lambda task: (calls.append(task[0]), real(task))[1])
    store = build_cache(samples, CFG, tmp_path, workers=1, progress=False)
    assert calls == [2, 3, 4] and len(store) == len(samples) == 18  # 5 chunks of 4, only 3 redone
    for i in (0, 5, 17):
        np.testing.assert_array_equal(store[i], prepare(read_landmarks(samples[i].path), CFG))
    assert not (store.path / "shards").exists()


def test_a_broken_pool_falls_back_to_this_process(synth_dir, tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    samples = read_train_csv(synth_dir)
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 4)
    monkeypatch.setattr(cache_mod, "MIN_PARALLEL_FILES", 0)

    def breaks(tasks, workers, bar):
        cache_mod._prepare_chunk(tasks[0])  # one chunk got done before the pool died
        raise BrokenProcessPool("a worker died")

    monkeypatch.setattr(cache_mod, "_run_pool", breaks)
    store = build_cache(samples, CFG, tmp_path, workers=2, progress=False)
    assert len(store) == len(samples) and not store.errors


def test_concurrent_builders_share_one_store(synth_dir, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    samples = read_train_csv(synth_dir)
    with ThreadPoolExecutor(2) as pool:
        stores = list(pool.map(lambda _: build_cache(samples, CFG, tmp_path, workers=1, progress=False), range(2)))
    assert stores[0].path == stores[1].path and sorted(s.hit for s in stores) == [False, True]
    np.testing.assert_array_equal(np.asarray(stores[0].data), np.asarray(stores[1].data))


def test_export_npy_writes_unpadded_features(synth_dir, tmp_path):
    samples = read_train_csv(synth_dir)[:3]
    cfg = dataclasses.replace(CFG, motion=True)
    store = build_cache(samples, cfg, tmp_path / "c", workers=1, progress=False)
    assert store.export_npy(tmp_path / "npy", cfg) == 3
    for i, s in enumerate(samples):
        saved = np.load(tmp_path / "npy" / str(s.participant_id) / f"{s.sequence_id}.npy")
        np.testing.assert_array_equal(saved, featurize(store[i], cfg))
        assert saved.shape == (len(store[i]), 708)


def test_preprocess_command_reports_hit_and_miss(synth_dir, tmp_path, capsys):
    from islr.cli import main

    args = ["preprocess", str(synth_dir), "--cache-dir", str(tmp_path), "--no-progress", "--workers", "1",
            "--preprocess.landmarks", "hands"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sequences: 18" in out and "miss" in out and "skipped: 0" in out
    assert main(args) == 0
    assert "hit" in capsys.readouterr().out
    assert main(["preprocess", str(synth_dir), "--cache-dir", str(synth_dir / "c")]) == 2  # never inside raw data


@pytest.mark.real
def test_parallel_build_on_genuine_files(real_data_dir, tmp_path, monkeypatch):
    samples = read_train_csv(real_data_dir)[:30]
    monkeypatch.setattr(cache_mod, "CHUNK_SIZE", 8)  # 4 chunks, so the process pool really runs
    monkeypatch.setattr(cache_mod, "MIN_PARALLEL_FILES", 0)
    store = build_cache(samples, CFG, tmp_path, workers=2, progress=False)
    assert len(store) == 30 and not store.errors
    serial = build_cache(samples, CFG, tmp_path / "serial", workers=1, progress=False)
    np.testing.assert_array_equal(np.asarray(store.data), np.asarray(serial.data))
    for i in (0, 17, 29):
        np.testing.assert_array_equal(store[i], prepare(read_landmarks(samples[i].path), CFG))
    reopened = open_store(store.path)
    assert reopened.frames == store.frames and list(reopened.signs) == [s.sign for s in samples]
