"""ParallelBatchLoader: the batch stream of worker processes equals the in-process one; the
batched featurize equals the per-sequence one."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from islr.config import AugmentConfig, PreprocessConfig, load_config
from islr.data.augment import Augmenter, pack, unpack
from islr.data.datamodule import build_datasets
from islr.data.dataset import BatchLoader, LandmarkDataset
from islr.data.loader import ParallelBatchLoader, make_loader
from islr.data.preprocess import featurize, featurize_packed
from islr.errors import ConfigError
from islr.training.pipeline import make_loaders

RECIPE = Path(__file__).resolve().parents[1] / "src" / "islr" / "configs" / "experiments" / "kaggle-1st.yaml"


def recipe_datasets(data_dir: Path, cache_dir: Path):
    cfg = load_config(RECIPE, [f"data.data_dir={data_dir}", f"data.cache_dir={cache_dir}", "data.workers=1"])
    return cfg, build_datasets(cfg, progress=False)


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype
            np.testing.assert_array_equal(x[key], y[key])


def test_featurize_packed_equals_featurize_per_sequence(synth_dir: Path, tmp_path: Path) -> None:
    cfg, datasets = recipe_datasets(synth_dir, tmp_path)
    ds = datasets.train
    rng = np.random.default_rng(0)
    seqs = ds.augmenter.apply_batch([ds.prepared(i) for i in range(40)], rng)
    missing = seqs[3].copy()
    missing[:, :5] = np.nan  # points never seen, the reference point among them at times
    no_reference = seqs[4].copy()
    no_reference[:, -1] = np.nan
    seqs += [seqs[0][:1], seqs[1][:2], missing, no_reference, np.full_like(seqs[2], np.nan)]
    frames, lengths = pack(seqs)
    for pre in (cfg.preprocess, dataclasses.replace(cfg.preprocess, normalization="none", motion=False),
                dataclasses.replace(cfg.preprocess, normalization="seed_standardize")):
        batched = unpack(featurize_packed(frames, lengths, pre), lengths)
        assert len(batched) == len(seqs)
        for seq, got in zip(seqs, batched, strict=True):
            want = featurize(seq, pre)
            assert got.dtype == np.float32 and got.shape == want.shape
            np.testing.assert_array_equal(got, want)


@pytest.mark.real
def test_featurize_packed_equals_featurize_on_genuine_files(real_data_dir: Path, tmp_path: Path) -> None:
    cfg, datasets = recipe_datasets(real_data_dir, tmp_path)
    ds = datasets.train
    rng = np.random.default_rng(1)
    for start in range(0, len(ds), 64):
        seqs = ds.augmenter.apply_batch([ds.prepared(i) for i in range(start, min(start + 64, len(ds)))], rng)
        frames, lengths = pack(seqs)
        for seq, got in zip(seqs, unpack(featurize_packed(frames, lengths, cfg.preprocess), lengths), strict=True):
            np.testing.assert_array_equal(got, featurize(seq, cfg.preprocess))


def toy_loader(seed: int = 3) -> BatchLoader:
    pre = PreprocessConfig(landmarks="hands", normalization="center_std", ref_landmark=468, motion=True,
                           length_mode="variable", max_len=40)
    aug = Augmenter.for_preprocess(AugmentConfig(time_resample=0.8, mirror=0.5, affine=0.75, temporal_mask=0.5,
                                                 spatial_cutout=0.5), pre)
    rng = np.random.default_rng(0)
    seqs = [rng.uniform(0.2, 0.8, (3 + (7 * i) % 19, 42, 2)).astype(np.float32) for i in range(45)]
    ds = LandmarkDataset(seqs, np.arange(45) % 5, pre, augmenter=aug)
    return BatchLoader(ds, batch_size=8, shuffle=True, seed=seed)


def stream(loader, epochs: tuple[int, ...]) -> list[dict]:
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        out += list(loader)
    return out


def test_batch_stream_is_the_same_for_0_1_and_2_workers() -> None:
    want = stream(toy_loader(), (0, 1, 2))
    assert_same_batches(stream(ParallelBatchLoader(toy_loader(), 0), (0, 1, 2)), want)
    for workers in (1, 2):
        with ParallelBatchLoader(toy_loader(), workers, in_flight=3) as loader:
            assert len(loader) == 6 and loader.batch_size == 8
            assert_same_batches(stream(loader, (0, 1, 2)), want)
            fresh = toy_loader()
            fresh.set_epoch(2)  # the epoch the stream above ended on
            assert_same_batches([loader.batch(2)], [fresh.batch(2)])
    # Another seed gives another stream (the comparison above can fail).
    assert not np.array_equal(stream(toy_loader(seed=4), (0,))[0]["y"], want[0]["y"])


def test_resume_reproduces_an_uninterrupted_run_and_early_stop_is_clean() -> None:
    uninterrupted = stream(toy_loader(), (0, 1, 2))
    with ParallelBatchLoader(toy_loader(), 2) as first:
        first.set_epoch(0)
        part = list(itertools.islice(first, 3))  # stopped mid-epoch (a batch limit, a crash)
    with ParallelBatchLoader(toy_loader(), 2) as resumed:  # a new process resumes at epoch 1
        rest = stream(resumed, (1, 2))
        resumed.set_epoch(0)
        again = list(resumed)
    assert_same_batches(part, uninterrupted[:3])
    assert_same_batches(rest, uninterrupted[6:])
    assert_same_batches(again, uninterrupted[:6])


def test_workers_see_probability_changes_made_between_epochs() -> None:
    plain, parallel = toy_loader(), ParallelBatchLoader(toy_loader(), 2)
    try:
        for loader in (plain, parallel):
            loader.set_epoch(0)
            list(loader)  # the pool starts with the old probabilities
            loader.dataset.augmenter.set_probability("mirror", 0.0)
            loader.dataset.augmenter.set_probability("affine", 1.0)
        assert_same_batches(stream(parallel, (1,)), stream(plain, (1,)))
    finally:
        parallel.close()


def test_make_loaders_uses_train_num_workers(synth_dir: Path, tmp_path: Path) -> None:
    cfg, datasets = recipe_datasets(synth_dir, tmp_path)
    train, valid, _ = make_loaders(cfg, datasets)
    assert isinstance(train, BatchLoader) and isinstance(valid, BatchLoader)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_workers=2, batch_size=16))
    train, valid, _ = make_loaders(cfg, datasets)
    assert isinstance(train, ParallelBatchLoader) and train.workers == 2
    with train:
        train.set_epoch(1)
        got = list(itertools.islice(train, 2))
    plain = BatchLoader(datasets.train, 16, shuffle=True, seed=cfg.train.seed, sampling=cfg.data.sampling)
    plain.set_epoch(1)
    assert_same_batches(got, [plain.batch(0), plain.batch(1)])
    assert make_loader(plain, 0) is plain
    with pytest.raises(ConfigError, match="workers must be >= 0"):
        ParallelBatchLoader(plain, -1)


class FailingSequences(list):
    """Prepared sequences where reading one of them fails (a damaged cache, say)."""

    def __init__(self, seqs: list[np.ndarray], bad: int):
        super().__init__(seqs)
        self.bad = bad

    def __getitem__(self, i):
        if i == self.bad:
            raise OSError(f"sequence {i}: read failed")
        return super().__getitem__(i)


def test_a_failing_batch_raises_its_error_and_the_loader_recovers() -> None:
    good = toy_loader()
    ds = good.dataset
    broken = LandmarkDataset(FailingSequences(list(ds.sequences), bad=int(good.order()[20])), ds.labels, ds.cfg,
                             augmenter=ds.augmenter)
    loader = ParallelBatchLoader(BatchLoader(broken, batch_size=8, shuffle=True, seed=3), 2)
    try:
        loader.set_epoch(0)
        seen = []
        with pytest.raises(OSError, match="read failed"):
            for batch in loader:
                seen.append(batch)
        assert len(seen) == 2  # sample 20 is in batch 2: the two before it arrived
        assert_same_batches(seen, stream(toy_loader(), (0,))[:2])
        broken.sequences.bad = -1  # repaired: the next iteration starts new workers
        assert_same_batches(stream(loader, (0,)), stream(toy_loader(), (0,)))
    finally:
        loader.close()


def test_a_worker_killed_mid_epoch_is_an_error_not_a_hang() -> None:
    import os
    import signal

    loader = ParallelBatchLoader(toy_loader(), 2)
    try:
        loader.set_epoch(0)
        batches = iter(loader)
        next(batches)
        os.kill(loader.worker_pids[1], signal.SIGKILL)
        with pytest.raises(RuntimeError, match=r"loader worker \d+ died \(exit code -9\)"):
            list(batches)
        assert_same_batches(stream(loader, (1,)), stream(toy_loader(), (1,)))  # a fresh pool
    finally:
        loader.close()


def test_stopping_early_then_iterating_again_gives_the_right_batches() -> None:
    want = stream(toy_loader(), (0, 1))
    with ParallelBatchLoader(toy_loader(), 2, in_flight=5) as loader:
        loader.set_epoch(0)
        assert_same_batches(list(itertools.islice(loader, 1)), want[:1])  # 4 more were being built
        assert_same_batches(stream(loader, (1,)), want[6:])
        assert_same_batches(stream(loader, (0,)), want[:6])


def test_reused_shared_memory_never_changes_a_batch_still_held() -> None:
    """Batches consumed one at a time reuse a few slots (padding of a shorter batch re-zeroed);
    a batch that is kept is never overwritten, the pool grows instead."""
    reference = toy_loader()
    with ParallelBatchLoader(toy_loader(), 2) as loader:
        kept = None
        for epoch in range(4):
            loader.set_epoch(epoch)
            reference.set_epoch(epoch)
            for b, batch in enumerate(loader):
                assert_same_batches([batch], [reference.batch(b)])
                if kept is None:
                    kept, kept_copy = batch["x"], batch["x"].copy()
        np.testing.assert_array_equal(kept, kept_copy)
        slots = len(loader._pool.slots)  # noqa: SLF001
        assert slots <= loader.in_flight + 3  # 24 batches went through a handful of slots
        held = stream(loader, (0, 1))  # keeping every batch: more slots, same values
        assert len(loader._pool.slots) >= len(held)  # noqa: SLF001
        assert_same_batches(held, stream(toy_loader(), (0, 1)))


def test_pipes_only_give_the_same_batches() -> None:
    with ParallelBatchLoader(toy_loader(), 2, shared_memory=False) as loader:
        assert_same_batches(stream(loader, (0, 1)), stream(toy_loader(), (0, 1)))


def test_closing_frees_every_shared_memory_segment() -> None:
    shm = Path("/dev/shm")
    loader = ParallelBatchLoader(toy_loader(), 2)
    loader.set_epoch(0)
    list(loader)
    pids = loader.worker_pids
    ours = [p for p in shm.glob("islr_*") if int(p.name.split("_")[1]) in pids]
    assert ours  # the slots live there while the loader is open
    loader.close()
    assert not [p for p in shm.glob("islr_*") if int(p.name.split("_")[1]) in pids]


def test_a_new_iteration_while_an_old_one_is_suspended_gets_its_own_batches() -> None:
    want = stream(toy_loader(), (0, 1))
    with ParallelBatchLoader(toy_loader(), 2) as loader:
        loader.set_epoch(0)
        old = iter(loader)
        assert_same_batches([next(old)], want[:1])  # suspended with 5 batches in flight
        loader.set_epoch(1)
        assert_same_batches(list(loader), want[6:])  # not the old epoch's answers
        with pytest.raises(RuntimeError, match="superseded"):
            next(old)
        assert_same_batches(stream(loader, (0,)), want[:6])  # the workers were not closed
