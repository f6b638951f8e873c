"""The preprocessing of :mod:`islr.data.preprocess`, written in TensorFlow for the Kaggle graph.

Used ONLY inside an exported ``kaggle`` TFLite file, where the raw ``(frames, 543, 3)`` landmarks
go in and preprocessing must run in the graph. Everywhere else (training, evaluation, the other
exports, the camera) the numpy definition :func:`islr.data.preprocess.preprocess` is used; a
test checks on the genuine Kaggle files that both agree within 1e-5 for every setting.

Every step is written with ops the TFLite converter maps to builtin kernels (no Select TF ops):

* gap interpolation looks at most ``max_gap`` frames back and ahead with ``max_gap`` shifted
  copies (the numpy version's running max/min of valid frame indices is a scan, which TFLite
  only has as a While loop);
* frames are dropped with ``tf.boolean_mask``;
* the fixed-length resize is one matrix product with a 0/1 window matrix, which repeats frames
  (``L < N``) or sums contiguous windows (``L > N``) exactly as :func:`islr.data.preprocess.resize`.

The statistics of ``seed_standardize`` and ``center_std`` are accumulated in float64 in numpy and
in float32 here; the difference stays far below 1e-5 on real sequences.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from islr.config import PreprocessConfig
from islr.data.landmarks import HANDS, ROWS_PER_FRAME
from islr.data.preprocess import _EPS, coord_indices, feature_points, prepared_rows

__all__ = ["resize_matrix", "tf_featurize", "tf_interpolate_gaps", "tf_motion", "tf_normalize", "tf_prepare",
           "tf_preprocess", "tf_resize"]


def _finite(x: tf.Tensor) -> tf.Tensor:
    """True where ``x`` is finite; ``abs`` and ``less`` are builtin TFLite ops (NaN and inf fail it)."""
    return tf.math.less(tf.math.abs(x), np.inf)


def _nan_mask(x: tf.Tensor) -> tf.Tensor:
    """True where ``x`` is a number (NaN is the only value unequal to itself)."""
    return tf.math.logical_not(tf.math.is_nan(x))


def _shift(x: tf.Tensor, k: int, fill: float) -> tf.Tensor:
    """``y[t] = x[t - k]`` (``k > 0``: from the past) or ``x[t + |k|]`` (``k < 0``), ``fill`` outside."""
    length = tf.shape(x)[0]
    rest = [[0, 0]] * (len(x.shape) - 1)
    if k > 0:
        return tf.pad(x, [[k, 0], *rest], constant_values=fill)[:length]
    return tf.pad(x, [[0, -k], *rest], constant_values=fill)[-k:]


def tf_interpolate_gaps(x: tf.Tensor, max_gap: int) -> tf.Tensor:
    """Fill interior NaN runs of at most ``max_gap`` frames linearly along axis 0 (any trailing shape).

    For a missing value, the nearest valid frames at distance ``dp`` before and ``dn`` after
    (each at most ``max_gap`` away) give ``lo + (hi - lo) * dp / (dp + dn)`` when the run between
    them is short enough (``dp + dn <= max_gap + 1``); else it stays NaN, like the numpy version.
    """
    if max_gap <= 0:
        return x
    valid = _nan_mask(x)
    values = tf.where(valid, x, tf.zeros_like(x))
    present = tf.cast(valid, tf.float32)
    far = float(2 * max_gap + 2)  # "no valid frame within reach"
    dist_prev = tf.fill(tf.shape(x), far)
    dist_next = tf.fill(tf.shape(x), far)
    lo = tf.zeros_like(x)
    hi = tf.zeros_like(x)
    for k in range(max_gap, 0, -1):  # farthest first, so the nearest valid frame wins
        seen = _shift(present, k, 0.0) > 0.5
        dist_prev = tf.where(seen, tf.cast(k, tf.float32), dist_prev)
        lo = tf.where(seen, _shift(values, k, 0.0), lo)
        seen = _shift(present, -k, 0.0) > 0.5
        dist_next = tf.where(seen, tf.cast(k, tf.float32), dist_next)
        hi = tf.where(seen, _shift(values, -k, 0.0), hi)
    fill = tf.logical_and(tf.logical_not(valid), dist_prev + dist_next <= float(max_gap + 1))
    weight = dist_prev / (dist_prev + dist_next)
    return tf.where(fill, lo + (hi - lo) * weight, x)


def _nan_sum_count(x: tf.Tensor, axis: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Sum and count of the non-NaN values over ``axis``.

    One axis at a time, innermost first: shorter float32 sums lose less than one long sum (numpy
    accumulates these in float64; this keeps the difference near 1e-6 on 543-point frames).
    """
    valid = _nan_mask(x)
    total = tf.where(valid, x, tf.zeros_like(x))
    count = tf.cast(valid, tf.float32)
    for a in sorted(axis, reverse=True):
        total = tf.reduce_sum(total, axis=a)
        count = tf.reduce_sum(count, axis=a)
    return total, count


def tf_normalize(x: tf.Tensor, cfg: PreprocessConfig) -> tf.Tensor:
    """:func:`islr.data.preprocess.normalize` of a prepared ``(L, P, C)`` tensor -> feature points."""
    rows = prepared_rows(cfg)
    n_feat = feature_points(cfg)
    pts = x[:, :n_feat]
    method = cfg.normalization
    if method == "none":
        return pts
    if method == "seed_normalize":
        valid = _nan_mask(pts)
        inf = tf.fill(tf.shape(pts), np.inf)
        lo = tf.reduce_min(tf.where(valid, pts, inf), axis=[0, 1])
        hi = tf.reduce_max(tf.where(valid, pts, -inf), axis=[0, 1])
        found = tf.reduce_any(valid, axis=[0, 1])  # per coordinate: some value seen
        span = hi - lo
        lo = tf.where(found, lo, tf.zeros_like(lo))
        span = tf.where(tf.logical_and(found, span > _EPS), span, tf.ones_like(span))
        return (pts - lo) / span
    if method == "seed_standardize":
        total, count = _nan_sum_count(pts, [0, 1])
        mean = tf.where(count > 0, total / tf.maximum(count, 1.0), tf.zeros_like(total))
        sq, _ = _nan_sum_count(tf.square(pts - mean), [0, 1])
        std = tf.sqrt(sq / tf.maximum(count, 1.0))
        std = tf.where(std > _EPS, std, tf.ones_like(std))
        return (pts - mean) / std
    if method == "center_std":
        ref_pos = int(np.flatnonzero(rows == cfg.ref_landmark)[0])
        total, count = _nan_sum_count(x[:, ref_pos], [0])
        centre = tf.where(count > 0, total / tf.maximum(count, 1.0), tf.fill(tf.shape(total), 0.5))
        d = pts - centre
        sq, n = _nan_sum_count(tf.square(d), [0, 1])  # per coordinate
        scale = tf.sqrt(sq / tf.maximum(n, 1.0))
        scale = tf.where(tf.logical_and(n > 0, scale > _EPS), scale, tf.ones_like(scale))
        return d / scale
    raise ValueError(f"unknown normalization {method!r}")  # check_config rejects it earlier


def resize_matrix(length: tf.Tensor, size: int) -> tf.Tensor:
    """The ``(size, length)`` 0/1 matrix of :func:`islr.data.preprocess.resize`'s windows.

    Output frame ``j`` covers input frames ``floor(j L / N) .. max(floor((j+1) L / N), floor(j L / N) + 1) - 1``:
    one frame when repeating (``L <= N``), a contiguous window when pooling (``L > N``).
    """
    j = tf.range(size, dtype=tf.int32)
    start = (j * length) // size
    end = tf.maximum(((j + 1) * length) // size, start + 1)
    i = tf.range(length, dtype=tf.int32)[None, :]
    inside = tf.logical_and(i >= start[:, None], i < end[:, None])
    return tf.cast(inside, tf.float32)


def tf_resize(x: tf.Tensor, size: int) -> tf.Tensor:
    """Resize ``(L, D)`` to ``(size, D)`` along time (NaN-ignoring window means, NaN if none)."""
    weights = resize_matrix(tf.shape(x)[0], size)
    valid = _nan_mask(x)
    total = tf.matmul(weights, tf.where(valid, x, tf.zeros_like(x)))
    count = tf.matmul(weights, tf.cast(valid, tf.float32))
    return tf.where(count > 0, total / tf.maximum(count, 1.0), tf.fill(tf.shape(total), np.nan))


def tf_motion(x: tf.Tensor) -> tf.Tensor:
    """``[x, lag1, lag2]`` along the last axis of ``(L, D)``; lag ``k`` is ``x[t+k] - x[t]``, 0 at the end."""
    length = tf.shape(x)[0]
    parts = [x]
    for k in (1, 2):
        diff = x[k:] - x[: tf.maximum(length - k, 0)]
        parts.append(tf.pad(diff, [[0, length - tf.shape(diff)[0]], [0, 0]]))
    return tf.concat(parts, axis=-1)


def tf_preprocess(raw: tf.Tensor, cfg: PreprocessConfig) -> tf.Tensor:
    """Raw ``(T, 543, 3)`` float32 with NaN -> features ``(L', F)``, as :func:`islr.data.preprocess.preprocess`.

    Needs ``T >= 1`` (the Kaggle contract always has frames).
    """
    return tf_featurize(tf_prepare(raw, cfg), cfg)


def tf_prepare(raw: tf.Tensor, cfg: PreprocessConfig) -> tf.Tensor:
    """Raw ``(T, 543, 3)`` -> prepared ``(L, P, C)`` with NaN, as :func:`islr.data.preprocess.prepare`."""
    rows = prepared_rows(cfg)
    coords = coord_indices(cfg)
    raw = tf.reshape(tf.convert_to_tensor(raw, tf.float32), [-1, ROWS_PER_FRAME, 3])
    x = tf.gather(tf.gather(raw, rows, axis=1), coords, axis=2)  # (T, P, C)
    # A broken file's inf/-inf is missing, like an undetected point (as in the numpy prepare).
    x = tf.where(_finite(x), x, tf.fill(tf.shape(x), np.float32(np.nan)))
    x = tf_interpolate_gaps(x, int(cfg.max_gap))
    if cfg.drop_empty_frames != "none":
        if cfg.drop_empty_frames == "hands":
            hand_pos = np.flatnonzero(np.isin(rows, HANDS))
            source = tf.gather(x, hand_pos, axis=1) if hand_pos.size else tf.gather(raw, HANDS, axis=1)
        else:
            source = x
        present = tf.reduce_any(_finite(source), axis=[1, 2])
        # If no frame qualifies, keep them all (as the numpy version does).
        keep = tf.logical_or(present, tf.logical_not(tf.reduce_any(present)))
        x = tf.boolean_mask(x, keep)
    if cfg.length_mode == "variable":
        x = x[: cfg.max_len]
    return x


def tf_featurize(x: tf.Tensor, cfg: PreprocessConfig) -> tf.Tensor:
    """Prepared ``(L, P, C)`` -> features ``(L', F)``, as :func:`islr.data.preprocess.featurize`."""
    coords = coord_indices(cfg)
    x = tf_normalize(x, cfg)
    # Reshape with the static width, so the graph knows the feature dimension.
    x = tf.reshape(x, [-1, feature_points(cfg) * len(coords)])
    if cfg.length_mode == "fixed":
        x = tf_resize(x, int(cfg.fixed_len))
    if cfg.motion:
        x = tf_motion(x)
    finite = tf.math.is_finite(x)
    return tf.where(finite, x, tf.fill(tf.shape(x), float(cfg.nan_value)))
