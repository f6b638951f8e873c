"""prepare / featurize / preprocess: hand-computed values, and every genuine file."""

from __future__ import annotations

import numpy as np
import pytest

from islr.config import PreprocessConfig
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.landmarks import LEFT_HAND, RIGHT_HAND, get_subset
from islr.data.preprocess import (
    feature_dim,
    featurize,
    interpolate_gaps,
    motion,
    points_and_coords,
    prepare,
    prepared_rows,
    preprocess,
    resize,
)
from islr.errors import ConfigError, DataError

NAN = np.nan


def raw_frames(frames: int, hands: bool = True) -> np.ndarray:
    """Raw landmarks whose value identifies (frame, row, coord): t*1000 + row + coord/10."""
    t = np.arange(frames)[:, None, None] * 1000.0
    r = np.arange(543)[None, :, None]
    c = np.arange(3)[None, None, :] / 10
    raw = (t + r + c).astype(np.float32)
    if not hands:
        raw[:, LEFT_HAND] = NAN
        raw[:, RIGHT_HAND] = NAN
    return raw


def test_interpolate_fills_short_interior_gaps_only():
    col = np.array([NAN, 1, NAN, NAN, 4, NAN, NAN, NAN, NAN, 9, NAN], dtype=np.float32)
    out = interpolate_gaps(col[:, None], max_gap=3)[:, 0]
    expected = [NAN, 1, 2, 3, 4, NAN, NAN, NAN, NAN, 9, NAN]  # run of 4 > 3 stays; edges stay
    np.testing.assert_allclose(out, expected)
    out4 = interpolate_gaps(col[:, None], max_gap=4)[:, 0]
    np.testing.assert_allclose(out4[4:10], [4, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(np.isnan(interpolate_gaps(col[:, None], 0)[:, 0]), np.isnan(col))


def test_interpolate_is_per_column_and_leaves_input_alone():
    x = np.array([[0, 10], [NAN, NAN], [2, 30]], dtype=np.float32).reshape(3, 1, 2)
    before = x.copy()
    out = interpolate_gaps(x, 3)
    np.testing.assert_allclose(out[1, 0], [1, 20])
    np.testing.assert_array_equal(np.isnan(x), np.isnan(before))


def test_prepare_selects_rows_and_coords_in_order():
    cfg = PreprocessConfig(landmarks="seed96", coords=("x", "z"), normalization="none", drop_empty_frames="none")
    out = prepare(raw_frames(4), cfg)
    rows = get_subset("seed96").indices
    assert out.shape == (4, 96, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[2, :, 0], 2000 + rows)
    np.testing.assert_allclose(out[2, :, 1], 2000 + rows + 0.2, rtol=1e-6)


def test_prepare_drops_frames_without_hands():
    raw = raw_frames(5)
    raw[[0, 3], 468:489] = NAN
    raw[[0, 3], 522:543] = NAN
    cfg = PreprocessConfig(landmarks="seed96", max_gap=0, normalization="none")
    out = prepare(raw, cfg)
    assert out.shape[0] == 3
    np.testing.assert_allclose(out[:, 0, 0], [1000 + 61, 2000 + 61, 4000 + 61])  # LIPS[0] = 61
    # With interpolation the single-frame gap at 3 is filled first, so only frame 0 goes.
    assert prepare(raw, PreprocessConfig(landmarks="seed96", max_gap=1, normalization="none")).shape[0] == 4
    assert prepare(raw, PreprocessConfig(landmarks="seed96", max_gap=0, drop_empty_frames="none",
                                         normalization="none")).shape[0] == 5


def test_prepare_keeps_all_frames_when_no_hand_is_ever_seen():
    out = prepare(raw_frames(6, hands=False), PreprocessConfig())
    assert out.shape[0] == 6


def test_prepare_selected_mode_drops_fully_empty_frames():
    raw = raw_frames(4)
    raw[1] = NAN
    cfg = PreprocessConfig(drop_empty_frames="selected", max_gap=0, normalization="none")
    assert prepare(raw, cfg).shape[0] == 3


def test_variable_mode_truncates_never_resizes():
    raw = raw_frames(50)
    seed = {"landmarks": "seed96", "normalization": "none"}
    out = prepare(raw, PreprocessConfig(length_mode="variable", max_len=20, **seed))
    assert out.shape[0] == 20
    np.testing.assert_allclose(out[19, 0, 0], 19000 + 61)
    feats = featurize(out, PreprocessConfig(length_mode="variable", max_len=20, **seed))
    assert feats.shape == (20, 192)
    assert prepare(raw, PreprocessConfig(length_mode="fixed", **seed)).shape[0] == 50


def test_seed_normalize_and_standardize_per_coordinate():
    cfg = PreprocessConfig(landmarks="hands", normalization="seed_normalize", length_mode="variable")
    seq = np.full((2, 42, 2), NAN, dtype=np.float32)
    seq[0, 0] = [1.0, 10.0]
    seq[1, 0] = [3.0, 30.0]
    seq[1, 1] = [2.0, 20.0]
    f = featurize(seq, cfg)
    assert f.shape == (2, 84)
    np.testing.assert_allclose(f[0, :4], [0.0, 0.0, 0.0, 0.0])  # frame 0: p0=(0, 0), p1 missing -> 0
    np.testing.assert_allclose(f[1, :4], [1.0, 1.0, 0.5, 0.5])
    cfg_std = PreprocessConfig(landmarks="hands", normalization="seed_standardize", length_mode="variable")
    f = featurize(seq, cfg_std)
    # x values 1, 3, 2: mean 2, std sqrt(2/3)
    s = np.sqrt(2 / 3)
    np.testing.assert_allclose(f[0, 0], -1 / s, rtol=1e-5)
    np.testing.assert_allclose(f[1, [0, 2]], [1 / s, 0.0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f[1, [1, 3]], [1 / s, 0.0], rtol=1e-5, atol=1e-6)  # y = 10x: same z-scores


def test_center_std_hand_computed():
    cfg = PreprocessConfig(landmarks="kaggle118", normalization="center_std", length_mode="variable", max_gap=0)
    subset = get_subset("kaggle118")
    p17, p_hand = subset.position_of(17), subset.position_of(468)
    seq = np.full((2, 118, 2), NAN, dtype=np.float32)
    seq[:, p17] = [[0.5, 0.5], [0.7, 0.3]]  # centre = (0.6, 0.4)
    seq[:, p_hand] = [[0.9, 0.4], [0.6, 0.8]]  # offsets (0.3, 0) and (0, 0.4)
    # per-coordinate scale (the winner's std keeps the coordinate axis):
    # x offsets -.1 .1 (17), .3 0 (hand) -> sx = sqrt(.11 / 4); y: .1 -.1, 0 .4 -> sy = sqrt(.18 / 4)
    sx, sy = np.sqrt(0.11 / 4), np.sqrt(0.18 / 4)
    f = featurize(seq, cfg)
    np.testing.assert_allclose(f[0, 2 * p17 : 2 * p17 + 2], [-0.1 / sx, 0.1 / sy], rtol=1e-5)
    np.testing.assert_allclose(f[1, 2 * p_hand : 2 * p_hand + 2], [0.0, 0.4 / sy], rtol=1e-5, atol=1e-6)
    assert f[0, 0] == 0.0  # missing points -> nan_value


def test_center_std_uses_half_when_reference_missing():
    cfg = PreprocessConfig(landmarks="kaggle118", normalization="center_std", length_mode="variable")
    seq = np.full((1, 118, 2), NAN, dtype=np.float32)
    p = get_subset("kaggle118").position_of(468)
    seq[0, p] = [0.8, 0.5]  # only point: offset (0.3, 0) from (0.5, 0.5); sx = .3, sy = 0 -> 1
    f = featurize(seq, cfg)
    np.testing.assert_allclose(f[0, 2 * p : 2 * p + 2], [1.0, 0.0], rtol=1e-5, atol=1e-6)


def test_center_std_carries_reference_point_for_hands_subset():
    cfg = PreprocessConfig(landmarks="hands", normalization="center_std", drop_empty_frames="none")
    assert prepared_rows(cfg)[-1] == 17 and points_and_coords(cfg) == (43, 2)
    assert feature_dim(cfg) == 84
    raw = np.full((3, 543, 3), NAN, dtype=np.float32)
    raw[:, 17, :2] = [0.2, 0.2]
    raw[:, 468, :2] = [0.4, 0.2]  # offset (0.2, 0); the scale uses feature points only: sx = .2, sy -> 1
    f = preprocess(raw, cfg)
    assert f.shape == (32, 84)
    np.testing.assert_allclose(f[0, :2], [1.0, 0.0], rtol=1e-5, atol=1e-6)
    assert points_and_coords(PreprocessConfig(landmarks="hands", normalization="none")) == (42, 2)


def test_resize_repeat_and_pool():
    x = np.arange(3, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(resize(x, 7)[:, 0], [0, 0, 0, 1, 1, 2, 2])
    y = np.array([0, 1, 2, 3, 4, 5, NAN], dtype=np.float32)[:, None]
    # windows floor(j*7/3): [0,1] [2,3] [4,5,6]; NaN ignored in the mean
    np.testing.assert_allclose(resize(y, 3)[:, 0], [0.5, 2.5, 4.5])
    np.testing.assert_array_equal(resize(x, 3), x)
    assert np.isnan(resize(np.full((4, 1), NAN, np.float32), 2)).all()


def test_motion_lags_and_layout():
    x = np.array([[0.0], [1.0], [3.0], [6.0]], dtype=np.float32)
    np.testing.assert_allclose(motion(x), [[0, 1, 3], [1, 2, 5], [3, 3, 0], [6, 0, 0]])
    cfg = PreprocessConfig(landmarks="kaggle118", motion=True, length_mode="variable", normalization="none",
                           drop_empty_frames="none")
    assert feature_dim(cfg) == 708
    raw = raw_frames(3)
    f = preprocess(raw, cfg)
    assert f.shape == (3, 708)
    rows = get_subset("kaggle118").indices
    np.testing.assert_allclose(f[0, :4], [rows[0], rows[0] + 0.1, rows[1], rows[1] + 0.1], rtol=1e-6)
    np.testing.assert_allclose(f[0, 236:240], [1000, 1000, 1000, 1000])  # lag 1, point-major
    np.testing.assert_allclose(f[0, 472:476], [2000, 2000, 2000, 2000])  # lag 2
    np.testing.assert_allclose(f[2, 236:], 0.0)  # padded at the end


def test_nan_value_is_written_and_preprocess_composes():
    cfg = PreprocessConfig(landmarks="seed96", nan_value=-1.0, normalization="none")
    raw = raw_frames(5)
    raw[:, 61] = NAN  # LIPS[0], never seen
    f = preprocess(raw, cfg)
    assert (f[:, :2] == -1.0).all() and np.isfinite(f).all()
    np.testing.assert_array_equal(f, featurize(prepare(raw, cfg), cfg))


def test_bad_input_and_settings_raise_clear_errors():
    with pytest.raises(DataError, match="543"):
        prepare(np.zeros((3, 500, 3), np.float32), PreprocessConfig())
    with pytest.raises(ConfigError, match="normalization"):
        prepare(raw_frames(2), PreprocessConfig(normalization="bogus"))
    with pytest.raises(ConfigError, match="coords"):
        feature_dim(PreprocessConfig(coords=("x", "w")))
    with pytest.raises(ConfigError, match="landmarks"):
        feature_dim(PreprocessConfig(landmarks="nope"))
    with pytest.raises(DataError, match="prepared"):
        featurize(np.zeros((3, 5, 2), np.float32), PreprocessConfig())


def every_file_preprocesses(root) -> tuple[int, int]:
    """Preprocess every file of ``root`` under three configurations; (files, longest variable output)."""
    samples = read_train_csv(root)
    configs = [
        PreprocessConfig(),
        PreprocessConfig(landmarks="kaggle118", motion=True, length_mode="variable"),
        PreprocessConfig(landmarks="hands", normalization="seed_standardize", coords=("x", "y", "z")),
    ]
    lengths = []
    for s in samples:
        raw = read_landmarks(s.path)
        for cfg in configs:
            f = preprocess(raw, cfg)
            assert f.dtype == np.float32 and f.shape[1] == feature_dim(cfg) and np.isfinite(f).all()
            if cfg.length_mode == "fixed":
                assert f.shape[0] == cfg.fixed_len
            else:
                assert 1 <= f.shape[0] <= min(len(raw), cfg.max_len)
                lengths.append(f.shape[0])
    return len(samples), max(lengths)


def test_every_synthetic_file_preprocesses(synth_dir):
    assert every_file_preprocesses(synth_dir) == (120, 32)


@pytest.mark.real
def test_every_genuine_file_preprocesses(real_data_dir):
    files, longest = every_file_preprocesses(real_data_dir)
    assert files == 522 and longest > 32
