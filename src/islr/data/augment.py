"""Training augmentations on prepared ``(L, P, C)`` sequences (x, y in image units, about [0, 1]).

:class:`Augmenter` applies each augmentation with its own probability from
:class:`islr.config.AugmentConfig`, drawing every random number from the generator it is given,
so a batch is reproducible from ``(seed, epoch, batch)``. Over a batch the spatial transforms
(rotation, scaling, shift, affine) are composed into one 2x2 matrix and offset per sample and
applied to all frames of the batch in one ``einsum``.

The seed project's augmentations: frame dropout, mirror, rotation, scaling, shift (and the
``normalize`` / ``standardize`` helpers below). The Kaggle 1st place's: time resampling,
random affine (scale, shear, shift, rotation about the image centre), temporal mask and
spatial cutout (both write NaN, i.e. "missing", which featurize turns into ``nan_value``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from islr.config import AugmentConfig, PreprocessConfig
from islr.data.landmarks import FULL_MIRROR, get_subset

#: Augmentation names in the order they are applied; each has a probability field of that name.
AUGMENTATIONS = (
    "frame_dropout",
    "time_resample",
    "mirror",
    "rotate",
    "scale",
    "shift",
    "affine",
    "temporal_mask",
    "spatial_cutout",
)
_CENTRE = 0.5  # rotations, scalings and shears act about the image centre


def normalize(frames: np.ndarray, mn: float | np.ndarray, std: float | np.ndarray) -> np.ndarray:
    """The seed's ``normalize``: ``(frames - mn) / std``."""
    return ((np.asarray(frames, dtype=np.float32) - mn) / std).astype(np.float32)


def standardize(frames: np.ndarray) -> np.ndarray:
    """The seed's ``standardize``: zero NaN-mean and unit NaN-std over the whole array."""
    frames = np.asarray(frames, dtype=np.float32)
    valid = ~np.isnan(frames)
    if not valid.any():
        return frames.copy()
    mean = frames[valid].mean()
    std = frames[valid].std()
    return ((frames - mean) / (std if std > 1e-6 else 1.0)).astype(np.float32)


def mirror_permutation(subset_name: str, extra_rows: Sequence[int] = ()) -> np.ndarray:
    """Point permutation of a horizontal flip for ``subset`` plus ``extra_rows`` appended to it.

    An extra row whose mirror twin is not among the points maps to itself (the default carried
    reference, lower-lip centre 17, lies on the mirror axis, so that is exact).
    """
    subset = get_subset(subset_name)
    base = subset.mirror
    if not len(extra_rows):
        return base
    rows = np.concatenate([subset.indices, np.asarray(extra_rows, dtype=np.int64)])
    where = {int(r): i for i, r in enumerate(rows)}
    extra = [where.get(int(FULL_MIRROR[r]), len(base) + k) for k, r in enumerate(extra_rows)]
    return np.concatenate([base, np.asarray(extra, dtype=np.int64)])


@dataclasses.dataclass(frozen=True)
class Draws:
    """The random numbers of one batch, one entry (row) per sequence (see :meth:`Augmenter.draw`)."""

    apply: dict[str, np.ndarray]
    """Per augmentation name: whether it applies to each sequence."""
    rate: np.ndarray
    angle: np.ndarray
    factor: np.ndarray
    shift: np.ndarray
    a_scale: np.ndarray
    a_shear: np.ndarray
    a_shift: np.ndarray
    a_angle: np.ndarray
    seeds: np.ndarray
    """Seeds of each sequence's own generator (frame dropout, temporal mask, spatial cutout)."""


class Augmenter:
    """Random augmentations with per-augmentation probabilities (see :data:`AUGMENTATIONS`).

    ``subset_name`` gives the mirror map of the prepared points; ``coords`` names the prepared
    coordinates (spatial transforms act on x and y only); ``extra_rows`` are raw rows appended
    after the subset (the carried reference point, see :func:`for_preprocess`).
    """

    def __init__(
        self,
        cfg: AugmentConfig,
        subset_name: str,
        coords: Sequence[str] = ("x", "y"),
        extra_rows: Sequence[int] = (),
    ):
        self.cfg = dataclasses.replace(cfg)
        self.subset_name = subset_name
        self.coords = tuple(coords)
        self.mirror_perm = mirror_permutation(subset_name, extra_rows)
        self._x = self.coords.index("x") if "x" in self.coords else None
        self._y = self.coords.index("y") if "y" in self.coords else None
        self._p = {name: float(getattr(cfg, name)) for name in AUGMENTATIONS}
        for name, p in self._p.items():
            self.set_probability(name, p)

    @classmethod
    def for_preprocess(cls, cfg: AugmentConfig, pre: PreprocessConfig) -> Augmenter:
        """An augmenter matching the prepared layout of ``pre`` (subset, coords, reference point)."""
        from islr.data.preprocess import feature_points, prepared_rows

        extra = prepared_rows(pre)[feature_points(pre):]
        return cls(cfg, pre.landmarks, pre.coords, extra_rows=extra.tolist())

    # -- probabilities ------------------------------------------------------------------------
    @property
    def probabilities(self) -> dict[str, float]:
        """Current probability of each augmentation (a copy)."""
        return dict(self._p)

    def set_probability(self, name: str, p: float) -> None:
        """Set the probability of one augmentation (0 disables it)."""
        if name not in self._p:
            raise KeyError(f"unknown augmentation {name!r}; known: {list(AUGMENTATIONS)}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"probability of {name!r} must be in [0, 1], got {p}")
        self._p[name] = float(p)

    def scale_probabilities(self, factor: float, max_p: float) -> dict[str, float]:
        """Multiply every enabled probability by ``factor``, capped at ``max_p``.

        Disabled (zero) augmentations stay disabled; growing never lowers a probability that
        already exceeds ``max_p``. Returns the new probabilities.
        """
        for name, p in self._p.items():
            if p <= 0:
                continue
            new = p * factor
            new = max(p, min(new, max_p)) if factor >= 1 else min(new, max_p)
            self._p[name] = float(min(max(new, 0.0), 1.0))
        return self.probabilities

    @property
    def active(self) -> bool:
        """True if any augmentation has a non-zero probability."""
        return any(p > 0 for p in self._p.values())

    def __repr__(self) -> str:
        on = {k: round(v, 3) for k, v in self._p.items() if v > 0}
        return f"Augmenter({self.subset_name}, {on or 'all off'})"

    # -- application --------------------------------------------------------------------------
    def __call__(self, seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment one prepared sequence (a new array; the input is never modified)."""
        return self.apply_batch([seq], rng)[0]

    def apply_batch(self, seqs: Sequence[np.ndarray], rng: np.random.Generator,
                    positions: Sequence[int] | None = None, total: int | None = None) -> list[np.ndarray]:
        """Augment a batch of prepared sequences; the draws depend only on ``rng`` and the batch.

        ``seqs`` may be a part of a batch of ``total`` sequences (one process's shard in
        distributed training): ``seqs[k]`` is then sequence ``positions[k]`` of that batch and
        gets exactly what it would get if the whole batch were augmented here. The inputs are
        never modified. See :meth:`apply_packed` for the same on concatenated frames.
        """
        if not len(seqs):
            return []
        frames, lengths = pack(seqs)
        frames, lengths = self.apply_packed(frames, lengths, rng, positions, total)
        return unpack(frames, lengths)

    def apply_packed(self, frames: np.ndarray, lengths: np.ndarray, rng: np.random.Generator,
                     positions: Sequence[int] | None = None,
                     total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`apply_batch` on a batch packed as ``frames`` ``(sum of lengths, P, C)`` float32
        (the sequences one after another, e.g. from :func:`pack`) and ``lengths``.

        ``frames`` is used as scratch (pass a copy you own). Returns the augmented frames and
        lengths, packed the same way. Each augmentation runs once over the whole batch (a
        gather, a masked write, one ``einsum``); only the scalar draws loop over samples, so
        the result is bit for bit what per-sequence application of :func:`time_resample`,
        :meth:`mirror`, :func:`temporal_mask` and :func:`spatial_cutout` with the same draws
        gives (:func:`islr.data.augment_reference.augment_per_sequence`; a test compares them).
        """
        x = np.asarray(frames, dtype=np.float32)
        lengths = np.asarray(lengths, dtype=np.int64)
        n = len(lengths) if total is None else int(total)
        if not len(lengths):
            return x, lengths
        d = self.draw(rng, n, positions)
        if len(d.seeds) != len(lengths):
            raise ValueError(f"{len(lengths)} sequences but {len(d.seeds)} draws (positions/total)")
        apply, rate, seeds = d.apply, d.rate, d.seeds

        if apply["frame_dropout"].any():
            x, lengths = self._drop_frames(x, lengths, apply["frame_dropout"], seeds)
        if apply["time_resample"].any():
            x, lengths = _resample_packed(x, lengths, apply["time_resample"], rate)
        if apply["mirror"].any():
            if x.shape[1] != len(self.mirror_perm):
                raise ValueError(f"sequence has {x.shape[1]} points, the mirror map {len(self.mirror_perm)}")
            rows = np.flatnonzero(np.repeat(apply["mirror"], lengths))
            flipped = x[rows[:, None], self.mirror_perm]  # mirror() on the packed frames, one gather
            if self._x is not None:
                flipped[..., self._x] = 1.0 - flipped[..., self._x]
            x[rows] = flipped
        spatial = apply["rotate"] | apply["scale"] | apply["shift"] | apply["affine"]
        if self._x is not None and self._y is not None and spatial.any():
            self._transform_packed(x, lengths, spatial, *_spatial_params(d))
        if (apply["temporal_mask"] | apply["spatial_cutout"]).any():
            self._mask_packed(x, lengths, apply["temporal_mask"], apply["spatial_cutout"], seeds)
        return x, lengths

    def draw(self, rng: np.random.Generator, n: int, positions: Sequence[int] | None = None) -> Draws:
        """Every random number of a batch of ``n`` sequences, in a fixed layout (each draw happens
        whatever the probabilities); ``positions``: only those sequences' draws are kept."""
        cfg = self.cfg
        apply = {name: rng.random(n) < self._p[name] for name in AUGMENTATIONS}
        d = Draws(
            apply=apply,
            rate=rng.uniform(*cfg.time_resample_range, size=n),
            angle=np.deg2rad(rng.uniform(-cfg.rotate_degrees, cfg.rotate_degrees, size=n)),
            factor=rng.uniform(*cfg.scale_range, size=n),
            shift=rng.uniform(-cfg.shift_max, cfg.shift_max, size=(n, 2)),
            a_scale=rng.uniform(*cfg.affine_scale, size=(n, 2)),
            a_shear=rng.uniform(-cfg.affine_shear, cfg.affine_shear, size=(n, 2)),
            a_shift=rng.uniform(-cfg.affine_shift, cfg.affine_shift, size=(n, 2)),
            a_angle=np.deg2rad(rng.uniform(-cfg.affine_degrees, cfg.affine_degrees, size=n)),
            seeds=rng.integers(0, 2**63 - 1, size=n),  # per-sample streams for variable-size draws
        )
        if positions is None:
            return d
        pick = np.asarray(positions, dtype=np.int64)
        return Draws(**{f.name: ({k: v[pick] for k, v in d.apply.items()} if f.name == "apply"
                                 else getattr(d, f.name)[pick]) for f in dataclasses.fields(Draws)})

    def mirror(self, seq: np.ndarray) -> np.ndarray:
        """Horizontal flip: ``x -> 1 - x`` and left/right landmarks swapped."""
        if seq.shape[1] != len(self.mirror_perm):
            raise ValueError(f"sequence has {seq.shape[1]} points, the mirror map {len(self.mirror_perm)}")
        flipped = seq[:, self.mirror_perm]  # fancy indexing copies
        if self._x is not None:
            flipped[..., self._x] = 1.0 - flipped[..., self._x]
        return flipped

    def _drop_frames(self, x: np.ndarray, lengths: np.ndarray, flags: np.ndarray,
                     seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`frame_dropout` on the flagged samples (each with its own generator), packed."""
        keep = np.ones(len(x), dtype=bool)
        starts = np.cumsum(lengths) - lengths
        new = lengths.copy()
        for i in np.flatnonzero(flags).tolist():
            length = int(lengths[i])
            if length <= 1:
                continue
            sub = np.random.default_rng(int(seeds[i]))
            kept = sub.random(length) >= self.cfg.frame_dropout_rate
            if not kept.any():
                kept[sub.integers(length)] = True
            keep[starts[i] : starts[i] + length] = kept
            new[i] = int(kept.sum())
        return x[keep], new

    def _transform_packed(self, x: np.ndarray, lengths: np.ndarray, moved: np.ndarray,
                          mats: np.ndarray, offs: np.ndarray) -> None:
        """Apply the per-sample affine maps to every frame of the ``moved`` samples at once."""
        rows = np.flatnonzero(np.repeat(moved, lengths))
        if not len(rows):
            return
        xy_idx = [self._x, self._y]
        stacked = x[rows][..., xy_idx] - _CENTRE  # (frames, P, 2)
        per_frame_m = np.repeat(mats[moved], lengths[moved], axis=0).astype(np.float32)
        per_frame_b = np.repeat(offs[moved], lengths[moved], axis=0).astype(np.float32)
        moved_xy = np.einsum("fpc,fdc->fpd", stacked, per_frame_m) + _CENTRE + per_frame_b[:, None, :]
        if xy_idx == [0, 1] and x.shape[-1] == 2:
            x[rows] = moved_xy
        else:
            block = x[rows]
            block[..., xy_idx] = moved_xy
            x[rows] = block

    def _mask_packed(self, x: np.ndarray, lengths: np.ndarray, temporal: np.ndarray, cutout: np.ndarray,
                     seeds: np.ndarray) -> None:
        """:func:`temporal_mask` then :func:`spatial_cutout` of each flagged sample, in place.

        Each sample draws from its own generator in the per-sample order (span, start, then the
        cutout's point); the writes are one masked assignment each over the packed frames.
        """
        cfg = self.cfg
        starts = np.cumsum(lengths) - lengths
        subs: dict[int, np.random.Generator] = {}
        hidden = np.zeros(len(x), dtype=bool)
        for i in np.flatnonzero(temporal | cutout).tolist():
            sub = subs[i] = np.random.default_rng(int(seeds[i]) ^ 0x5DEECE66D)
            if not temporal[i]:
                continue
            length = int(lengths[i])
            span = int(sub.integers(0, max(1, int(cfg.temporal_mask_fraction * length)) + 1))
            if span == 0 or length == 0:
                continue
            start = int(starts[i]) + int(sub.integers(0, length - span + 1))
            hidden[start : start + span] = True
        if hidden.any():
            x[hidden] = np.nan
        if self._x is None or self._y is None:
            return
        cut = np.flatnonzero(cutout)
        if not len(cut):
            return
        xy_idx = [self._x, self._y]
        rows = np.flatnonzero(np.repeat(cutout, lengths))
        pts = x[rows][..., xy_idx]  # (frames of the cut samples, P, 2)
        seen = ~np.isnan(pts).any(axis=-1)  # (frames, P)
        seen_flat = np.cumsum(seen.ravel())  # running count of seen points over the cut samples
        cut_lengths = lengths[cut]
        points = x.shape[1]
        first = (np.cumsum(cut_lengths) - cut_lengths) * points  # flat start of each cut sample
        ends = first + cut_lengths * points
        before = np.where(first > 0, seen_flat[np.maximum(first - 1, 0)], 0)
        count = np.where(ends > 0, seen_flat[np.maximum(ends - 1, 0)], 0) - before
        centres = np.full((len(cut), 2), np.nan, dtype=np.float32)
        for k, i in enumerate(cut.tolist()):
            if count[k]:
                pick = int(subs[i].integers(int(count[k])))  # the pick-th seen point of the sample
                flat = int(np.searchsorted(seen_flat, before[k] + pick + 1))
                centres[k] = pts.reshape(-1, 2)[flat]
        per_frame = np.repeat(centres, cut_lengths, axis=0)[:, None, :]
        with np.errstate(invalid="ignore"):
            inside = (np.abs(pts - per_frame) <= cfg.spatial_cutout_fraction / 2).all(axis=-1)
        if inside.any():
            block = x[rows]
            block[inside] = np.nan
            x[rows] = block


def _spatial_params(d: Draws) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``M`` (2x2) and offset ``b`` of a batch's draws: ``xy' = M (xy - c) + c + b``,
    c = image centre.

    Composed for the whole batch at once: rotation, then scaling, then the shift, then the
    affine map ``A = R(a_angle) diag(a_scale) shear`` (``M <- A M``, ``b <- A b + a_shift``).
    """
    apply, n = d.apply, len(d.angle)
    eye = np.broadcast_to(np.eye(2), (n, 2, 2))
    m = np.where(apply["rotate"][:, None, None], _rotations(d.angle), eye)
    m = m * np.where(apply["scale"], d.factor, 1.0)[:, None, None]
    b = np.where(apply["shift"][:, None], d.shift, 0.0)
    affine = apply["affine"]
    if affine.any():
        shear = np.ones((n, 2, 2))
        shear[:, 0, 1], shear[:, 1, 0] = d.a_shear[:, 0], d.a_shear[:, 1]
        scale = np.zeros((n, 2, 2))
        scale[:, 0, 0], scale[:, 1, 1] = d.a_scale[:, 0], d.a_scale[:, 1]
        aff = _rotations(d.a_angle) @ scale @ shear
        m = np.where(affine[:, None, None], aff @ m, m)
        b = np.where(affine[:, None], (aff @ b[:, :, None])[:, :, 0] + d.a_shift, b)
    return np.ascontiguousarray(m), np.ascontiguousarray(b)


def pack(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sequences ``(L_i, P, C)`` -> their frames one after another ``(sum L_i, P, C)`` float32
    (always a new array) and the lengths."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if not len(seqs):
        return np.zeros((0, 0, 0), np.float32), lengths
    return np.concatenate([np.asarray(s, dtype=np.float32) for s in seqs]), lengths


def unpack(frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The inverse of :func:`pack`: one array (a view) per sequence."""
    return np.split(frames, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _resample_packed(x: np.ndarray, lengths: np.ndarray, flags: np.ndarray,
                     rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`time_resample` of the flagged samples of a packed batch, as one gather.

    The positions are computed as ``np.linspace`` computes them (``j * step``, the last one set
    to ``L - 1``), so every value equals the per-sequence function's.
    """
    new = lengths.copy()
    wanted = np.maximum(1, np.round(lengths * rate.astype(np.float64)).astype(np.int64))
    change = flags & (lengths > 0) & (wanted != lengths)
    new[change] = wanted[change]
    starts = np.cumsum(lengths) - lengths
    out_starts = np.cumsum(new) - new
    sample = np.repeat(np.arange(len(new)), new)
    j = np.arange(int(new.sum()), dtype=np.int64) - out_starts[sample]  # output frame within its sample
    lo, hi = j.copy(), j.copy()
    w = np.zeros(len(j), dtype=np.float32)
    frames_in = lengths[sample]
    frames_out = new[sample]
    moving = change[sample] & (frames_in > 1) & (frames_out > 1)
    lo[change[sample] & (frames_in == 1)] = 0  # one frame repeated
    lo[change[sample] & (frames_out == 1)] = 0  # linspace(0, L - 1, 1) == [0]
    if moving.any():
        jm = j[moving].astype(np.float64)
        last = (frames_in[moving] - 1).astype(np.float64)
        pos = jm * (last / (frames_out[moving] - 1))
        end = j[moving] == frames_out[moving] - 1
        pos[end] = last[end]
        low = np.floor(pos).astype(np.int64)
        lo[moving] = low
        hi[moving] = np.minimum(low + 1, frames_in[moving] - 1)
        w[moving] = (pos - low).astype(np.float32)
    base = starts[sample]
    out = x[base + lo]
    between = np.flatnonzero(w != 0)
    if len(between):  # x[lo] * (1 - w) + x[hi] * w, in place on the gathered frames
        wb = w[between][:, None, None]
        low = out[between]
        low *= 1 - wb
        high = x[base[between] + hi[between]]
        high *= wb
        low += high
        out[between] = low
    return out, new


def _rotations(theta: np.ndarray) -> np.ndarray:
    """:func:`rotation_matrix` of each angle, stacked ``(n, 2, 2)``."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def rotation_matrix(theta: float) -> np.ndarray:
    """Rotation by ``theta`` radians in (x, y): ``[[cos, -sin], [sin, cos]]`` (with y pointing
    down in image coordinates a positive angle turns +x toward +y, i.e. clockwise on screen)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def affine_transform(
    seq: np.ndarray, matrix: np.ndarray, offset: Sequence[float] = (0.0, 0.0), xy: tuple[int, int] = (0, 1)
) -> np.ndarray:
    """``xy' = matrix @ (xy - 0.5) + 0.5 + offset`` on every point of ``(L, P, C)`` (a new array)."""
    out = np.array(seq, dtype=np.float32, copy=True)
    idx = list(xy)
    moved = (out[..., idx] - _CENTRE) @ np.asarray(matrix, dtype=np.float32).T
    out[..., idx] = moved + _CENTRE + np.asarray(offset, dtype=np.float32)
    return out


def rotate(seq: np.ndarray, degrees: float, xy: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Rotate about the image centre by ``degrees`` (see :func:`rotation_matrix` for the sense)."""
    return affine_transform(seq, rotation_matrix(np.deg2rad(degrees)), xy=xy)


def frame_dropout(seq: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The seed's frame dropout: drop each frame with probability ``rate`` (one frame always stays)."""
    if len(seq) <= 1:
        return seq.copy()
    keep = rng.random(len(seq)) >= rate
    if not keep.any():
        keep[rng.integers(len(seq))] = True
    return seq[keep].copy()


def time_resample(seq: np.ndarray, rate: float) -> np.ndarray:
    """Change the speed: ``round(L * rate)`` frames (at least 1) by linear interpolation in time.

    Where an output frame falls exactly on an input frame it is that frame; between frames a
    value is NaN when either neighbour is NaN.
    """
    length = len(seq)
    new = max(1, int(round(length * rate)))
    if length == 0 or new == length:
        return seq.copy()
    if length == 1:
        return np.repeat(seq, new, axis=0)
    pos = np.linspace(0.0, length - 1, new)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, length - 1)
    w = (pos - lo).astype(np.float32)[:, None, None]
    out = seq[lo] * (1 - w) + seq[hi] * w
    exact = w[:, 0, 0] == 0
    out[exact] = seq[lo[exact]]
    return out.astype(np.float32)


def temporal_mask(seq: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Set a random run of up to ``fraction * L`` consecutive frames to NaN (frames are kept)."""
    out = seq.copy()
    length = len(seq)
    span = int(rng.integers(0, max(1, int(fraction * length)) + 1))
    if span == 0 or length == 0:
        return out
    start = int(rng.integers(0, length - span + 1))
    out[start : start + span] = np.nan
    return out


def spatial_cutout(
    seq: np.ndarray, fraction: float, rng: np.random.Generator, xy: tuple[int, int] = (0, 1)
) -> np.ndarray:
    """Set to NaN every point inside a random square of side ``fraction`` (image units), centred
    on a randomly chosen observed point, in every frame."""
    out = seq.copy()
    pts = seq[..., list(xy)]
    seen = np.flatnonzero(~np.isnan(pts).any(axis=-1).ravel())
    if not seen.size:
        return out
    centre = pts.reshape(-1, 2)[seen[rng.integers(seen.size)]]
    half = fraction / 2
    with np.errstate(invalid="ignore"):
        inside = (np.abs(pts - centre) <= half).all(axis=-1)
    out[inside] = np.nan
    return out
