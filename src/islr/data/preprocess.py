"""Raw ``(frames, 543, 3)`` landmarks -> model features, in two pure-numpy stages.

``prepare`` (cached): select the landmark subset and coordinates, fill short interior NaN gaps by
linear interpolation, drop empty frames, truncate to ``max_len`` in variable mode. The result is
``(L, P, C)`` in image coordinates with NaN where a point is still missing, so augmentations can
work on it. With ``center_std`` the reference landmark (raw row ``ref_landmark``) is carried as
one extra last point when the subset lacks it; :func:`prepared_rows` names every prepared point.

``featurize`` (every epoch, after augmentation): normalise, resize to ``fixed_len`` in fixed
mode, append motion features, replace NaN by ``nan_value``; returns ``(L', F)`` float32.

``preprocess(raw, cfg) = featurize(prepare(raw, cfg), cfg)`` is the one definition used by
training, evaluation, export and the camera.

Fixed-length rule (``length_mode="fixed"``), ``L`` frames to ``N = fixed_len``:
``L < N``: output frame ``j`` repeats input frame ``floor(j * L / N)`` (every frame kept, each
repeated ``floor(N/L)`` or ``ceil(N/L)`` times, order preserved); ``L > N``: output frame ``j``
is the NaN-ignoring mean of input frames ``floor(j*L/N) .. floor((j+1)*L/N) - 1`` (contiguous
windows of ``floor(L/N)`` or ``ceil(L/N)`` frames covering every frame once); ``L == N``: as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from islr.config import PreprocessConfig, allowed_values
from islr.data.landmarks import HANDS, ROWS_PER_FRAME, get_subset
from islr.errors import ConfigError, DataError

# The allowed values live next to the config fields (checked when a config loads).
COORD_NAMES = allowed_values(PreprocessConfig, "coords")
NORMALIZATIONS = allowed_values(PreprocessConfig, "normalization")
DROP_MODES = allowed_values(PreprocessConfig, "drop_empty_frames")
LENGTH_MODES = allowed_values(PreprocessConfig, "length_mode")
_EPS = 1e-6


def check_config(cfg: PreprocessConfig) -> None:
    """Raise :class:`ConfigError` if a preprocessing setting is unknown or out of range."""
    try:
        get_subset(cfg.landmarks)
    except KeyError as exc:
        raise ConfigError(f"preprocess.landmarks: {exc.args[0]}") from None
    coords = tuple(cfg.coords)
    if not coords or any(c not in COORD_NAMES for c in coords) or len(set(coords)) != len(coords):
        raise ConfigError(f"preprocess.coords: {coords!r} must be distinct names among x, y, z")
    for name, value, allowed in (
        ("normalization", cfg.normalization, NORMALIZATIONS),
        ("drop_empty_frames", cfg.drop_empty_frames, DROP_MODES),
        ("length_mode", cfg.length_mode, LENGTH_MODES),
    ):
        if value not in allowed:
            raise ConfigError(f"preprocess.{name}: {value!r} is not one of {list(allowed)}")
    if cfg.fixed_len < 1 or cfg.max_len < 1:
        raise ConfigError("preprocess.fixed_len and preprocess.max_len must be >= 1")
    if cfg.max_gap < 0:
        raise ConfigError("preprocess.max_gap must be >= 0")
    if not 0 <= cfg.ref_landmark < ROWS_PER_FRAME:
        raise ConfigError(f"preprocess.ref_landmark must be a row in 0..{ROWS_PER_FRAME - 1}")


@dataclass(frozen=True)
class _Layout:
    """Index arrays derived from the settings (computed once per distinct setting)."""

    rows: np.ndarray  # raw rows of the prepared points
    coords: np.ndarray  # positions of the kept coordinates in (x, y, z)
    hand_pos: np.ndarray  # prepared positions of hand rows
    n_feat: int  # points that become features
    ref_pos: int  # prepared position of the reference landmark (-1 if not kept)


@lru_cache(maxsize=64)
def _layout_for(landmarks: str, coords: tuple[str, ...], normalization: str, ref: int) -> _Layout:
    subset = get_subset(landmarks)
    rows = subset.indices.astype(np.int64)
    if normalization == "center_std" and ref not in set(rows.tolist()):
        rows = np.append(rows, ref)  # carried as one extra last point
    hits = np.flatnonzero(rows == ref)
    lay = _Layout(
        rows=rows,
        coords=np.array([COORD_NAMES.index(c) for c in coords], dtype=np.int64),
        hand_pos=np.flatnonzero(np.isin(rows, HANDS)),
        n_feat=len(subset),
        ref_pos=int(hits[0]) if hits.size else -1,
    )
    for arr in (lay.rows, lay.coords, lay.hand_pos):
        arr.setflags(write=False)  # shared by every call (cached)
    return lay


def _layout(cfg: PreprocessConfig) -> _Layout:
    check_config(cfg)
    return _layout_for(cfg.landmarks, tuple(cfg.coords), cfg.normalization, int(cfg.ref_landmark))


def prepared_rows(cfg: PreprocessConfig) -> np.ndarray:
    """Raw rows of the prepared points: the subset, plus ``ref_landmark`` last when carried."""
    return _layout(cfg).rows.copy()


def coord_indices(cfg: PreprocessConfig) -> np.ndarray:
    """Positions of ``cfg.coords`` in the raw ``(x, y, z)`` axis."""
    return _layout(cfg).coords.copy()


def points_and_coords(cfg: PreprocessConfig) -> tuple[int, int]:
    """Shape ``(P, C)`` of one prepared frame (P counts a carried reference point)."""
    lay = _layout(cfg)
    return len(lay.rows), len(lay.coords)


def feature_points(cfg: PreprocessConfig) -> int:
    """Number of points that become features (the subset; never the carried reference)."""
    return _layout(cfg).n_feat


def feature_dim(cfg: PreprocessConfig) -> int:
    """Features per frame: ``points * coords`` times 3 with motion (positions, lag 1, lag 2)."""
    return feature_points(cfg) * len(cfg.coords) * (3 if cfg.motion else 1)


def interpolate_gaps(x: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill interior NaN runs of at most ``max_gap`` frames linearly along axis 0.

    Each trailing column (point, coordinate) is handled independently; runs touching the start
    or end, and longer runs, stay NaN. Returns a new array (the input is not modified).
    """
    x = np.array(x, dtype=np.float32, copy=True)
    _fill_gaps(x.reshape(len(x), -1), max_gap)
    return x


def _fill_gaps(flat: np.ndarray, max_gap: int) -> None:
    """In-place core of :func:`interpolate_gaps` on a ``(frames, columns)`` float32 view."""
    frames = flat.shape[0]
    if max_gap <= 0 or frames < 3:
        return
    missing = np.isnan(flat)
    # Only columns with a gap and at least one value can change (often few: parts vanish whole).
    count = missing.sum(axis=0)
    cols = np.flatnonzero((count > 0) & (count < frames))
    if not cols.size:
        return
    gap = missing[:, cols]
    t = np.arange(frames, dtype=np.int32)[:, None]
    prev = np.maximum.accumulate(np.where(gap, -1, t), axis=0)
    nxt = np.minimum.accumulate(np.where(gap, frames, t)[::-1], axis=0)[::-1]
    fill = gap & (prev >= 0) & (nxt - prev <= max_gap + 1) & (nxt < frames)
    if not fill.any():
        return
    ti, ci = np.nonzero(fill)
    p, n = prev[ti, ci], nxt[ti, ci]
    col = cols[ci]
    weight = ((ti - p) / (n - p)).astype(np.float32)
    lo = flat[p, col]
    flat[ti, col] = lo + (flat[n, col] - lo) * weight


def _check_raw(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.ndim != 3 or raw.shape[1:] != (ROWS_PER_FRAME, 3):
        raise DataError(None, f"expected raw landmarks of shape (frames, {ROWS_PER_FRAME}, 3), got {raw.shape}")
    return raw


def prepare(raw: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Raw ``(T, 543, 3)`` -> prepared ``(L, P, C)`` float32 (what the cache stores).

    Steps: select :func:`prepared_rows` and ``cfg.coords``; interpolate interior NaN runs up to
    ``max_gap`` frames; drop empty frames (``hands``: every hand point NaN, ``selected``: every
    selected point NaN; if that would drop every frame, all frames are kept); in variable mode
    keep the first ``max_len`` frames. Still-missing values stay NaN. Non-finite values (inf,
    -inf: never written by MediaPipe, only by broken files) count as missing from the first step.
    """
    lay = _layout(cfg)
    raw = _check_raw(raw)
    x = np.ascontiguousarray(raw[:, lay.rows[:, None], lay.coords[None, :]], dtype=np.float32)  # a fresh copy
    x[np.isinf(x)] = np.nan  # a broken file's inf/-inf is missing, like an undetected point
    _fill_gaps(x.reshape(len(x), -1), cfg.max_gap)
    if cfg.drop_empty_frames != "none" and len(x):
        if cfg.drop_empty_frames == "hands":
            if lay.hand_pos.size:
                present = ~np.isnan(x[:, lay.hand_pos]).all(axis=(1, 2))
            else:  # a subset without hands: judge by the raw hand rows
                present = np.isfinite(raw[:, HANDS]).any(axis=(1, 2))
        else:
            present = ~np.isnan(x).all(axis=(1, 2))
        if present.any() and not present.all():
            x = x[present]
    if cfg.length_mode == "variable":
        x = x[: cfg.max_len]
    return np.ascontiguousarray(x, dtype=np.float32)


def _nan_stats(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the non-NaN values over ``axes`` (no warnings on empty slices)."""
    valid = ~np.isnan(x)
    total = np.where(valid, x, 0.0).sum(axis=axes, dtype=np.float64)
    return total, valid.sum(axis=axes)


def normalize(x: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Normalise a prepared ``(L, P, C)`` sequence; returns the feature points only.

    ``seed_normalize``: per coordinate ``(x - min) / (max - min)`` over non-NaN values (range 0
    -> divide by 1). ``seed_standardize``: per coordinate ``(x - mean) / std`` (std 0 -> 1).
    ``center_std``: centre ``c`` = per-coordinate NaN-mean over frames of the reference landmark
    (0.5 where it is never seen); per-coordinate scale ``s = sqrt(nanmean((x - c)**2))`` over every
    feature point and frame (0 or no data -> 1); result ``(x - c) / s``. This is the Kaggle 1st
    place's formula (its std reduces over frames and points, keeping the coordinate axis).
    """
    lay = _layout(cfg)
    n_feat = lay.n_feat
    x = np.asarray(x, dtype=np.float32)
    pts = x[:, :n_feat]
    method = cfg.normalization
    if method == "none" or not len(x):
        return np.array(pts, dtype=np.float32, copy=True)
    if method == "seed_normalize":
        with np.errstate(all="ignore"):
            lo = np.where(np.isnan(pts), np.inf, pts).min(axis=(0, 1))
            hi = np.where(np.isnan(pts), -np.inf, pts).max(axis=(0, 1))
        span = hi - lo
        lo = np.where(np.isfinite(lo), lo, 0.0)
        span = np.where(np.isfinite(span) & (span > _EPS), span, 1.0)
        return ((pts - lo) / span).astype(np.float32)
    if method == "seed_standardize":
        total, count = _nan_stats(pts, (0, 1))
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        sq, _ = _nan_stats((pts - mean) ** 2, (0, 1))
        std = np.sqrt(sq / np.maximum(count, 1))
        std = np.where(std > _EPS, std, 1.0)
        return ((pts - mean) / std).astype(np.float32)
    if method == "center_std":
        total, count = _nan_stats(x[:, lay.ref_pos], (0,))
        centre = np.where(count > 0, total / np.maximum(count, 1), 0.5)
        d = pts - centre.astype(np.float32)
        sq, n = _nan_stats(d * d, (0, 1))
        with np.errstate(all="ignore"):
            scale = np.sqrt(sq / np.maximum(n, 1))
        scale = np.where((n > 0) & (scale > _EPS), scale, 1.0)
        return (d / scale.astype(np.float32)).astype(np.float32)
    raise ConfigError(f"preprocess.normalization: unknown {method!r}")


def resize_index(length: int, size: int) -> np.ndarray:
    """``floor(j * length / size)`` for each output frame ``j``: the source frame when repeating
    (``length < size``), the first frame of window ``j`` when pooling (``length > size``)."""
    return (np.arange(size, dtype=np.int64) * length) // size


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(L, ...)`` to ``(size, ...)`` along time by the module's fixed-length rule."""
    length = len(x)
    if length == size:
        return np.array(x, dtype=np.float32, copy=True)
    if length == 0:
        return np.full((size, *x.shape[1:]), np.nan, dtype=np.float32)
    index = resize_index(length, size)
    if length < size:
        return np.ascontiguousarray(x[index], dtype=np.float32)
    valid = ~np.isnan(x)
    total = np.add.reduceat(np.where(valid, x, 0.0), index, axis=0)
    count = np.add.reduceat(valid, index, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(count > 0, total / count, np.nan)
    return out.astype(np.float32)


def motion(x: np.ndarray) -> np.ndarray:
    """``[x, lag1, lag2]`` along the last axis, lags ``x[t+k] - x[t]`` zero-padded at the end."""
    lag1 = np.zeros_like(x)
    lag2 = np.zeros_like(x)
    if len(x) > 1:
        lag1[:-1] = x[1:] - x[:-1]
    if len(x) > 2:
        lag2[:-2] = x[2:] - x[:-2]
    return np.concatenate([x, lag1, lag2], axis=-1)


def featurize(seq: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Prepared ``(L, P, C)`` -> features ``(L', F)`` float32.

    Normalise (:func:`normalize`), resize to ``fixed_len`` in fixed mode (:func:`resize`),
    flatten each frame point-major (``p0x, p0y, p1x, ...``), append lag-1 and lag-2 differences
    when ``cfg.motion`` (layout ``[positions, lag1, lag2]``), and write ``nan_value`` where a
    value is missing. ``L' = fixed_len`` in fixed mode, else ``L``.
    """
    seq = np.asarray(seq, dtype=np.float32)
    if seq.ndim != 3 or seq.shape[1:] != points_and_coords(cfg):
        raise DataError(None, f"expected a prepared sequence of shape (L, {points_and_coords(cfg)}), got {seq.shape}")
    x = normalize(seq, cfg)
    if cfg.length_mode == "fixed":
        x = resize(x, cfg.fixed_len)
    x = x.reshape(len(x), -1)
    if cfg.motion:
        x = motion(x)
    return np.nan_to_num(x, nan=cfg.nan_value, posinf=cfg.nan_value, neginf=cfg.nan_value).astype(np.float32, copy=False)


def preprocess(raw: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Raw ``(T, 543, 3)`` -> features ``(L', F)``: ``featurize(prepare(raw, cfg), cfg)``."""
    return featurize(prepare(raw, cfg), cfg)


def batchable(cfg: PreprocessConfig) -> bool:
    """Whether :func:`featurize_packed` computes ``cfg``'s features over a batch in one pass
    (variable length with ``center_std`` or no normalisation); others run per sequence."""
    return cfg.length_mode == "variable" and cfg.normalization in ("center_std", "none")


def featurize_packed(x: np.ndarray, lengths: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """:func:`featurize` of a packed batch: frames ``(sum of lengths, P, C)``, the sequences one
    after another, -> features ``(sum of lengths', F)`` in the same order.

    The same formula as :func:`featurize` (a test compares them), with the per-sequence
    statistics taken as per-segment sums over the concatenated frames, so a batch costs a few
    array operations instead of a few dozen per sequence. Settings that are not
    :func:`batchable` run :func:`featurize` per sequence.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    shape = points_and_coords(cfg)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != shape or len(x) != lengths.sum():
        raise DataError(None, f"expected packed frames of shape ({int(lengths.sum())}, {shape}), got {x.shape}")
    if not batchable(cfg):
        feats = [featurize(s, cfg) for s in np.split(x, np.cumsum(lengths)[:-1])] if len(lengths) else []
        return np.concatenate(feats) if feats else np.zeros((0, feature_dim(cfg)), np.float32)
    n_seq = len(lengths)
    lay = _layout(cfg)
    seg = np.repeat(np.arange(n_seq), lengths)  # sequence of each frame
    width = lay.n_feat * shape[1]
    out = np.empty((len(x), width * (3 if cfg.motion else 1)), np.float32)
    flat = out[:, :width].reshape(len(x), lay.n_feat, shape[1])  # point-major: p0x, p0y, p1x, ...
    if cfg.normalization == "center_std":
        def per_sequence(values: np.ndarray) -> np.ndarray:  # (frames, C) -> (sequences, C) float64
            return np.stack([np.bincount(seg, values[:, c], n_seq) for c in range(values.shape[1])], 1)

        # Work on (frames, C, P): every operation then runs along the long points axis.
        xt = np.ascontiguousarray(x.transpose(0, 2, 1))
        ref = xt[:, :, lay.ref_pos]  # (frames, C)
        valid = ~np.isnan(ref)
        total, count = per_sequence(np.where(valid, ref, 0.0)), per_sequence(valid)
        centre = np.where(count > 0, total / np.maximum(count, 1), 0.5).astype(np.float32)
        d = xt[:, :, : lay.n_feat] - centre[seg][:, :, None]
        dd = d * d
        missing = np.isnan(dd)
        dd[missing] = 0.0
        per_frame = dd.sum(axis=-1, dtype=np.float64)
        per_count = lay.n_feat - missing.sum(axis=-1)
        sq, n = per_sequence(per_frame), per_sequence(per_count)
        with np.errstate(all="ignore"):
            scale = np.sqrt(sq / np.maximum(n, 1))
        scale = np.where((n > 0) & (scale > _EPS), scale, 1.0).astype(np.float32)
        d /= scale[seg][:, :, None]
        for c in range(shape[1]):  # one strided copy a coordinate: far faster than a transposed copy
            flat[..., c] = d[:, c]
    else:
        flat[:] = x[:, : lay.n_feat]
    if cfg.motion:
        flat = out[:, :width]
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        left = np.repeat(lengths, lengths) - (np.arange(len(flat)) - starts) - 1  # frames after this one
        for lag in (1, 2):
            lagged = out[:, lag * width : (lag + 1) * width]
            if len(flat) > lag:
                np.subtract(flat[lag:], flat[:-lag], out=lagged[:-lag])
            lagged[left < lag] = 0.0  # the last frames of each sequence: no frame that far ahead
    out[~np.isfinite(out)] = cfg.nan_value
    return out
