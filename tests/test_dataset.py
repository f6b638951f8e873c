"""LandmarkDataset, BatchLoader and build_datasets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from islr.config import AugmentConfig, ExperimentConfig, PreprocessConfig
from islr.data.augment import Augmenter
from islr.data.datamodule import build_datasets
from islr.data.dataset import BatchLoader, LandmarkDataset
from islr.data.preprocess import featurize
from islr.data.synthetic import generate
from islr.errors import ConfigError

VAR = PreprocessConfig(landmarks="hands", normalization="none", length_mode="variable", max_len=50)


def toy(n: int = 10, cfg: PreprocessConfig = VAR, augmenter: Augmenter | None = None) -> LandmarkDataset:
    rng = np.random.default_rng(0)
    seqs = [rng.uniform(0.2, 0.8, (3 + i, 42, 2)).astype(np.float32) for i in range(n)]
    return LandmarkDataset(seqs, np.arange(n) % 3, cfg, participants=np.arange(n) % 4, sequence_ids=np.arange(n) + 100,
                           sign_names=["a", "b", "c"], augmenter=augmenter)


def test_items_subset_and_repr():
    ds = toy()
    x, y = ds[4]
    assert x.shape == (7, 84) and x.dtype == np.float32 and y == 1
    np.testing.assert_array_equal(x, featurize(ds.prepared(4), VAR))
    sub = ds.subset([1, 4, 9])
    assert len(sub) == 3 and list(sub.labels) == [1, 1, 0] and list(sub.sequence_ids) == [101, 104, 109]
    assert list(sub.participants) == [1, 0, 1] and list(sub.lengths()) == [4, 7, 12]
    np.testing.assert_array_equal(sub[1][0], x)
    text = repr(sub)
    assert "samples=3" in text and "participants=2" in text and "signs=2" in text
    with pytest.raises(IndexError):
        sub[3]


def test_variable_batches_are_padded_and_masked():
    loader = BatchLoader(toy(), batch_size=4)
    assert len(loader) == 3 and len(BatchLoader(toy(), 4, drop_last=True)) == 2
    batches = list(loader)
    first = batches[0]
    assert first["x"].shape == (4, 6, 84) and first["x"].dtype == np.float32
    assert first["mask"].dtype == bool and first["y"].dtype == np.int64
    np.testing.assert_array_equal(first["mask"].sum(1), [3, 4, 5, 6])
    assert (first["x"][0, 3:] == 0).all() and list(first["y"]) == [0, 1, 2, 0]
    assert batches[-1]["x"].shape == (2, 12, 84)


def test_fixed_batches_have_fixed_length():
    cfg = dataclasses.replace(VAR, length_mode="fixed", fixed_len=8)
    batch = next(iter(BatchLoader(toy(cfg=cfg), batch_size=5)))
    assert batch["x"].shape == (5, 8, 84) and batch["mask"].all()


def test_batches_reproduce_from_seed_epoch_and_index():
    aug_cfg = dataclasses.replace(AugmentConfig(), rotate=0.5, time_resample=0.5, mirror=0.5, temporal_mask=0.5)
    ds = toy(12, augmenter=Augmenter(aug_cfg, "hands"))
    a = BatchLoader(ds, 4, shuffle=True, seed=3)
    b = BatchLoader(ds, 4, shuffle=True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    run_a, run_b = list(a), list(b)
    for x, y in zip(run_a, run_b, strict=True):
        for k in ("x", "mask", "y"):
            np.testing.assert_array_equal(x[k], y[k])
    np.testing.assert_array_equal(a.batch(1)["x"], run_a[1]["x"])  # a resumed run can start mid-epoch
    b.set_epoch(3)
    assert not np.array_equal(np.concatenate([r["y"] for r in run_a]), np.concatenate([r["y"] for r in b]))
    plain = list(BatchLoader(ds.subset(range(12), augmenter=None), 4, shuffle=True, seed=3))
    assert any(p["x"].shape != r["x"].shape or not np.array_equal(p["x"], r["x"]) for p, r in zip(plain, run_a, strict=True))


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, signs=4, participants=5, per_sign=2, seed=1, min_frames=6, max_frames=16)
    return out


def experiment(synth_dir: Path, cache: Path, **data) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.data = dataclasses.replace(cfg.data, data_dir=str(synth_dir), cache_dir=str(cache), workers=1, **data)
    cfg.preprocess = PreprocessConfig(landmarks="kaggle118", motion=True, length_mode="variable")
    cfg.augment = dataclasses.replace(AugmentConfig(), mirror=0.2)
    return cfg


def test_build_datasets_participant_split(synth_dir, tmp_path):
    ds = build_datasets(experiment(synth_dir, tmp_path, valid_size=0.2, test_size=0.2), progress=False)
    assert ds.feature_dim == 708 and len(ds.sign_map) == 4 and ds.sign_names[0] == "sign000"
    assert "signer-independent" in ds.split and not ds.errors and ds.store is not None
    parts = [set(d.participants) for d in (ds.train, ds.valid, ds.test)]
    assert all(parts) and not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 40
    assert ds.train.augmenter is not None and ds.valid.augmenter is None and ds.test.augmenter is None
    batch = next(iter(BatchLoader(ds.valid, 8)))
    assert batch["x"].shape[2] == 708 and set(batch["y"]) <= {0, 1, 2, 3}


def test_build_datasets_other_splits_and_exclusions(synth_dir, tmp_path):
    rnd = build_datasets(experiment(synth_dir, tmp_path, split="random_stratified"), progress=False)
    assert "signer-dependent" in rnd.split and set(rnd.train.participants) & set(rnd.valid.participants)
    folds = [build_datasets(experiment(synth_dir, tmp_path, folds=2, fold=f, test_size=0.2), progress=False)
             for f in (0, 1)]
    assert set(folds[0].test.participants) == set(folds[1].test.participants)
    assert set(folds[0].valid.participants) == set(folds[1].train.participants)
    import pandas as pd

    listed = pd.read_csv(synth_dir / "train.csv")["sequence_id"].iloc[:3]
    excl = tmp_path / "exclusions.csv"
    pd.DataFrame({"sequence_id": listed, "reason": "test"}).to_csv(excl, index=False)
    ds = build_datasets(experiment(synth_dir, tmp_path, exclusions=str(excl)), progress=False)
    kept = np.concatenate([d.sequence_ids for d in (ds.train, ds.valid, ds.test)])
    assert ds.excluded == 3 and len(kept) == 37 and not set(listed) & set(kept)
    with pytest.raises(ConfigError):
        build_datasets(experiment(synth_dir, tmp_path, folds=2, fold=5), progress=False)
