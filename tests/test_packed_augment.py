"""The packed (whole-batch) augmentation equals the per-sequence functions with the same draws.

:func:`islr.data.augment_reference.augment_per_sequence` is the loader's augmentation as it was
written per sequence (one call of ``time_resample``, ``mirror``, ``temporal_mask``,
``spatial_cutout`` per sample, the spatial maps composed per sample);
:meth:`Augmenter.apply_packed` must give the same values bit for bit, so the batches of every
run are what they were before the loader was vectorised.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from islr.config import AugmentConfig, PreprocessConfig, load_config
from islr.data.augment import (
    AUGMENTATIONS,
    Augmenter,
    pack,
    unpack,
)
from islr.data.augment_reference import augment_per_sequence
from islr.data.datamodule import build_datasets
from islr.data.preprocess import featurize, featurize_packed

RECIPE = Path(__file__).resolve().parents[1] / "src" / "islr" / "configs" / "experiments" / "kaggle-1st.yaml"


def assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)  # NaN where NaN, every other value equal


def awkward_batch(seed: int, points: int) -> list[np.ndarray]:
    """Lengths 0, 1, 2 and longer; whole missing frames, missing points, an all-NaN sequence."""
    rng = np.random.default_rng(seed)
    seqs = []
    for length in (0, 1, 2, 3, 5, 9, 17, 40, 1, 2, 64):
        s = rng.uniform(0.1, 0.9, (length, points, 2)).astype(np.float32)
        if length > 3:
            s[rng.random(length) < 0.3] = np.nan
            s[:, rng.random(points) < 0.4] = np.nan
        seqs.append(s)
    seqs.append(np.full((7, points, 2), np.nan, np.float32))
    return seqs


CONFIGS = {
    "recipe": AugmentConfig(),
    "all on": dataclasses.replace(AugmentConfig(), **{name: 1.0 for name in AUGMENTATIONS},
                                  frame_dropout_rate=0.3, temporal_mask_fraction=0.6, spatial_cutout_fraction=0.4),
    "seed set": AugmentConfig(frame_dropout=0.5, mirror=0.5, rotate=0.5, scale=0.5, shift=0.5, time_resample=0.0,
                              affine=0.0, temporal_mask=0.0, spatial_cutout=0.0),
    "time only": AugmentConfig(time_resample=1.0, time_resample_range=(0.3, 2.5), mirror=0.0, affine=0.0,
                               temporal_mask=0.0, spatial_cutout=0.0),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_packed_equals_per_sequence_on_awkward_batches(name: str) -> None:
    aug = Augmenter(CONFIGS[name], "kaggle118")
    for seed in range(12):
        seqs = awkward_batch(seed, len(aug.mirror_perm))
        frames_before = [s.copy() for s in seqs]
        want = augment_per_sequence(aug, seqs, np.random.default_rng(seed))
        assert_same(aug.apply_batch(seqs, np.random.default_rng(seed)), want)
        frames, lengths = pack(seqs)
        got = aug.apply_packed(frames, lengths, np.random.default_rng(seed))
        assert_same(unpack(*got), want)
        assert_same(seqs, frames_before)  # the inputs are never modified


def test_reference_can_fail() -> None:
    """Another generator gives other values: the comparisons above are not vacuous."""
    aug = Augmenter(CONFIGS["all on"], "kaggle118")
    seqs = awkward_batch(0, len(aug.mirror_perm))
    a = aug.apply_batch(seqs, np.random.default_rng(1))
    b = augment_per_sequence(aug, seqs, np.random.default_rng(2))
    assert any(x.shape != y.shape or not np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))


def test_resample_of_known_lengths() -> None:
    """Hand-checked: 4 frames at rate 1.5 -> 6 frames at t = 0, 0.6, 1.2, 1.8, 2.4, 3."""
    aug = Augmenter(CONFIGS["time only"], "hands")
    seq = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((1, 42, 2), np.float32)
    from islr.data.augment import _resample_packed

    frames, lengths = pack([seq, seq[:1], seq[:0]])
    out, new = _resample_packed(frames, lengths, np.array([True, True, True]), np.array([1.5, 3.0, 2.0]))
    assert new.tolist() == [6, 3, 0]
    np.testing.assert_allclose(out[:6, 0, 0], [0, 0.6, 1.2, 1.8, 2.4, 3.0], rtol=1e-6)
    np.testing.assert_array_equal(out[6:, 0, 0], [0, 0, 0])
    assert aug.probabilities["time_resample"] == 1.0


@pytest.mark.real
def test_packed_batches_equal_the_per_sequence_path_on_genuine_files(real_data_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(RECIPE, [f"data.data_dir={real_data_dir}", f"data.cache_dir={tmp_path}", "data.workers=1"])
    ds = build_datasets(cfg, progress=False).train
    aug = ds.augmenter
    for start in range(0, len(ds), 64):
        seqs = [ds.prepared(i) for i in range(start, min(start + 64, len(ds)))]
        want = augment_per_sequence(aug, seqs, np.random.default_rng(start))
        frames, lengths = aug.apply_packed(*pack(seqs), np.random.default_rng(start))
        assert_same(unpack(frames, lengths), want)
        feats = featurize_packed(frames, lengths, cfg.preprocess)
        assert_same(unpack(feats, lengths), [featurize(s, cfg.preprocess) for s in want])


def test_shard_of_a_packed_batch_is_that_part_of_the_whole() -> None:
    aug = Augmenter(CONFIGS["all on"], "kaggle118")
    seqs = awkward_batch(3, len(aug.mirror_perm))
    whole = aug.apply_batch(seqs, np.random.default_rng(9))
    part = aug.apply_batch([seqs[k] for k in (1, 4, 7)], np.random.default_rng(9), positions=[1, 4, 7],
                           total=len(seqs))
    assert_same(part, [whole[k] for k in (1, 4, 7)])
    with pytest.raises(ValueError, match="draws"):
        aug.apply_batch(seqs[:2], np.random.default_rng(9), positions=[1], total=len(seqs))


def test_three_coordinates_equal_the_per_sequence_path_and_spatial_maps_leave_z() -> None:
    pre = PreprocessConfig(landmarks="hands", coords=("x", "y", "z"), normalization="center_std", ref_landmark=468)
    rng = np.random.default_rng(0)
    seqs = [rng.uniform(0.2, 0.8, (n, 42, 3)).astype(np.float32) for n in (3, 8, 15, 1)]
    aug = Augmenter.for_preprocess(CONFIGS["all on"], pre)
    got = aug.apply_batch(seqs, np.random.default_rng(4))
    assert_same(got, augment_per_sequence(aug, seqs, np.random.default_rng(4)))
    hidden = np.isnan(np.concatenate(got))
    assert hidden.any() and (hidden.any(-1) == hidden.all(-1)).all()  # a point is cut out whole
    spatial_only = Augmenter.for_preprocess(dataclasses.replace(CONFIGS["all on"], frame_dropout=0.0, time_resample=0.0,
                                                                mirror=0.0, temporal_mask=0.0, spatial_cutout=0.0), pre)
    moved = spatial_only.apply_batch(seqs, np.random.default_rng(4))
    for before, after in zip(seqs, moved, strict=True):
        np.testing.assert_array_equal(after[..., 2], before[..., 2])
        assert not np.allclose(after[..., :2], before[..., :2])
