"""Augmentations: hand-checked geometry, probabilities, reproducibility."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from islr.config import AugmentConfig, PreprocessConfig
from islr.data.augment import (
    AUGMENTATIONS,
    Augmenter,
    frame_dropout,
    normalize,
    rotate,
    spatial_cutout,
    standardize,
    temporal_mask,
    time_resample,
)
from islr.data.landmarks import get_subset

SUBSET = get_subset("kaggle118")
LH = [SUBSET.position_of(468 + i) for i in range(21)]
RH = [SUBSET.position_of(522 + i) for i in range(21)]


def sequence(frames: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seq = rng.uniform(0.2, 0.8, (frames, len(SUBSET), 2)).astype(np.float32)
    seq[:, RH] = np.nan  # a one-handed signer, as in most real frames
    return seq


def only(name: str, **extra) -> AugmentConfig:
    """A config with every augmentation off except ``name`` at probability 1."""
    off = {n: 0.0 for n in AUGMENTATIONS}
    off[name] = 1.0
    return dataclasses.replace(AugmentConfig(), **off, **extra)


def test_mirror_twice_is_identity_and_swaps_hands():
    aug = Augmenter(only("mirror"), "kaggle118")
    seq = sequence()
    once = aug.mirror(seq)
    assert np.isnan(once[:, LH]).all()
    np.testing.assert_allclose(once[:, RH, 0], 1.0 - seq[:, LH, 0], rtol=1e-6)
    np.testing.assert_allclose(once[:, RH, 1], seq[:, LH, 1])
    np.testing.assert_allclose(aug.mirror(once), seq, atol=1e-7)
    lip17 = SUBSET.position_of(17)
    np.testing.assert_allclose(once[:, lip17, 0], 1 - seq[:, lip17, 0], rtol=1e-6)  # on the axis: stays itself
    np.testing.assert_array_equal(aug(seq, np.random.default_rng(0)), once)


def test_rotation_by_90_degrees_of_a_known_point():
    point = np.array([[[0.7, 0.5]]], dtype=np.float32)  # 0.2 right of the image centre
    np.testing.assert_allclose(rotate(point, 90)[0, 0], [0.5, 0.7], atol=1e-6)
    np.testing.assert_allclose(rotate(point, -90)[0, 0], [0.5, 0.3], atol=1e-6)
    np.testing.assert_allclose(rotate(rotate(point, 30), -30), point, atol=1e-6)


def test_random_rotation_keeps_distances_and_bounds_the_angle():
    aug = Augmenter(only("rotate", rotate_degrees=20.0), "kaggle118")
    seq = sequence()
    out = aug(seq, np.random.default_rng(3))
    d_in = np.hypot(seq[..., 0] - 0.5, seq[..., 1] - 0.5)
    d_out = np.hypot(out[..., 0] - 0.5, out[..., 1] - 0.5)
    np.testing.assert_allclose(d_out[:, LH], d_in[:, LH], rtol=1e-5)
    turn = np.angle((out[0, LH[0], 0] - 0.5) + 1j * (out[0, LH[0], 1] - 0.5)) - np.angle(
        (seq[0, LH[0], 0] - 0.5) + 1j * (seq[0, LH[0], 1] - 0.5)
    )
    assert 0 < abs(np.rad2deg((turn + np.pi) % (2 * np.pi) - np.pi)) <= 20 + 1e-4


def test_probability_zero_is_identity():
    off = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig) if f.name in AUGMENTATIONS}
    aug = Augmenter(AugmentConfig(**off), "kaggle118")
    assert not aug.active
    seqs = [sequence(10, s) for s in range(4)]
    out = aug.apply_batch(seqs, np.random.default_rng(0))
    for a, b in zip(out, seqs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_probability_one_always_applies(name):
    # ranges that cannot draw a no-op (a resample by ~1.0x keeps the length, a 5% dropout may drop nothing)
    extra = {"frame_dropout": {"frame_dropout_rate": 0.5}, "time_resample": {"time_resample_range": (1.2, 1.5)}}
    aug = Augmenter(only(name, **extra.get(name, {})), "kaggle118")
    seq = sequence(20)
    before = seq.copy()
    rng = np.random.default_rng(1)
    for _ in range(10):
        out = aug(seq, rng)
        changed = out.shape != seq.shape or not np.array_equal(out, seq, equal_nan=True)
        assert changed, name
    np.testing.assert_array_equal(seq, before)  # never in place


def test_batch_is_reproducible_from_the_generator():
    cfg = dataclasses.replace(AugmentConfig(), **{n: 0.5 for n in AUGMENTATIONS})
    aug = Augmenter(cfg, "kaggle118")
    seqs = [sequence(8 + s, s) for s in range(6)]
    a = aug.apply_batch(seqs, np.random.default_rng(42))
    b = aug.apply_batch(seqs, np.random.default_rng(42))
    c = aug.apply_batch(seqs, np.random.default_rng(43))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(x.shape != z.shape or not np.array_equal(x, z, equal_nan=True) for x, z in zip(a, c, strict=True))


def test_scale_and_shift_and_affine_hand_values():
    full = np.tile(np.array([[[0.6, 0.5]]], dtype=np.float32), (1, len(SUBSET), 1))
    scaled = Augmenter(only("scale", scale_range=(2.0, 2.0)), "kaggle118")(full, np.random.default_rng(0))
    np.testing.assert_allclose(scaled[0, 0], [0.7, 0.5], atol=1e-6)  # 0.1 from centre -> 0.2
    shifted = Augmenter(only("shift", shift_max=0.05), "kaggle118")(full, np.random.default_rng(0))
    delta = shifted - full
    assert np.allclose(delta, delta[0, 0]) and np.abs(delta).max() <= 0.05
    sheared = Augmenter(
        only("affine", affine_scale=(1.0, 1.0), affine_shear=0.0, affine_shift=0.0, affine_degrees=0.0), "kaggle118"
    )(full, np.random.default_rng(0))
    np.testing.assert_allclose(sheared, full, atol=1e-6)


def test_probabilities_set_and_scale():
    aug = Augmenter(dataclasses.replace(AugmentConfig(), mirror=0.1, rotate=0.3), "seed96")
    assert aug.probabilities["mirror"] == 0.1 and aug.probabilities["shift"] == 0.0
    aug.scale_probabilities(1.5, 0.35)
    p = aug.probabilities
    assert p["mirror"] == pytest.approx(0.15) and p["rotate"] == pytest.approx(0.35) and p["shift"] == 0.0
    aug.set_probability("shift", 0.5)
    aug.scale_probabilities(1.5, 0.35)
    assert aug.probabilities["shift"] == 0.5  # growing never lowers one already above the cap
    aug.scale_probabilities(0.5, 1.0)
    assert aug.probabilities["mirror"] == pytest.approx(0.1125)
    with pytest.raises(KeyError):
        aug.set_probability("nope", 0.1)
    with pytest.raises(ValueError):
        aug.set_probability("mirror", 1.5)


def test_temporal_helpers():
    seq = sequence(10)
    out = time_resample(seq, 1.5)
    assert out.shape[0] == 15
    np.testing.assert_array_equal(out[0], seq[0])
    np.testing.assert_array_equal(out[-1], seq[-1])
    np.testing.assert_allclose(out[7, LH], seq[[4, 5]][:, LH].mean(axis=0), rtol=1e-5)  # t=4.5
    assert time_resample(seq, 0.5).shape[0] == 5
    assert time_resample(seq[:1], 1.5).shape[0] == 2
    rng = np.random.default_rng(0)
    assert 1 <= len(frame_dropout(seq, 0.99, rng)) < 10
    masked = temporal_mask(seq, 0.4, np.random.default_rng(5))
    gone = np.isnan(masked[:, LH]).all(axis=(1, 2))
    assert gone.sum() <= 4 and (not gone.any() or np.ptp(np.flatnonzero(gone)) == gone.sum() - 1)
    cut = spatial_cutout(seq, 0.2, np.random.default_rng(1))
    newly = np.isnan(cut).any(-1) & ~np.isnan(seq).any(-1)
    assert newly.any()
    xs, ys = seq[newly][:, 0], seq[newly][:, 1]
    assert np.ptp(xs) <= 0.2 + 1e-6 and np.ptp(ys) <= 0.2 + 1e-6


def test_seed_normalize_and_standardize_helpers():
    x = np.array([1.0, 2.0, 3.0, np.nan], dtype=np.float32)
    np.testing.assert_allclose(normalize(x, 2.0, 0.5)[:3], [-2, 0, 2])
    s = standardize(x)
    np.testing.assert_allclose(np.nanmean(s), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.nanstd(s), 1.0, rtol=1e-5)


def test_for_preprocess_handles_the_carried_reference_point():
    pre = PreprocessConfig(landmarks="hands", normalization="center_std")
    aug = Augmenter.for_preprocess(only("mirror"), pre)
    assert len(aug.mirror_perm) == 43 and aug.mirror_perm[42] == 42
    seq = np.random.default_rng(0).uniform(0, 1, (5, 43, 2)).astype(np.float32)
    out = aug(seq, np.random.default_rng(0))
    np.testing.assert_allclose(out[:, :21], np.stack([1 - seq[:, 21:42, 0], seq[:, 21:42, 1]], -1), rtol=1e-6)
    np.testing.assert_allclose(out[:, 42, 0], 1 - seq[:, 42, 0], rtol=1e-6)
    xyz = Augmenter.for_preprocess(only("rotate"), PreprocessConfig(coords=("x", "y", "z")))
    seq3 = np.random.default_rng(1).uniform(0, 1, (4, 96, 3)).astype(np.float32)
    np.testing.assert_array_equal(xyz(seq3, np.random.default_rng(0))[..., 2], seq3[..., 2])  # z untouched
