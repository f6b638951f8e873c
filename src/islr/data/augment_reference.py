"""The training augmentation written one sequence at a time: the specification of the batched code.

:meth:`islr.data.augment.Augmenter.apply_packed` runs every augmentation once over a whole
packed batch. :func:`augment_per_sequence` draws the same random numbers and applies the
single-sequence functions (:func:`~islr.data.augment.time_resample`,
:meth:`~islr.data.augment.Augmenter.mirror`, :func:`~islr.data.augment.temporal_mask`,
:func:`~islr.data.augment.spatial_cutout`) to each sequence in turn, composing the spatial maps
per sample, as the loader did before it was vectorised. The tests require both to agree bit for
bit, and ``benchmarks/loader.py`` measures it as the old loader's baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from islr.data.augment import (
    _CENTRE,
    Augmenter,
    frame_dropout,
    rotation_matrix,
    spatial_cutout,
    temporal_mask,
    time_resample,
)

__all__ = ["augment_per_sequence"]


def augment_per_sequence(aug: Augmenter, seqs: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """``aug.apply_batch(seqs, rng)`` computed one sequence at a time with the single-sequence
    functions (same draws, same values)."""
    cfg, n = aug.cfg, len(seqs)
    out = [np.array(s, dtype=np.float32, copy=True) for s in seqs]
    d = aug.draw(rng, n)
    apply, rate, angle, factor, shift, seeds = d.apply, d.rate, d.angle, d.factor, d.shift, d.seeds
    a_scale, a_shear, a_shift, a_angle = d.a_scale, d.a_shear, d.a_shift, d.a_angle
    for i in range(n):
        if apply["frame_dropout"][i]:
            out[i] = frame_dropout(out[i], cfg.frame_dropout_rate, np.random.default_rng(int(seeds[i])))
        if apply["time_resample"][i]:
            out[i] = time_resample(out[i], float(rate[i]))
        if apply["mirror"][i]:
            out[i] = aug.mirror(out[i])
    mats, offs = np.tile(np.eye(2), (n, 1, 1)), np.zeros((n, 2))
    for i in range(n):
        m, b = np.eye(2), np.zeros(2)
        if apply["rotate"][i]:
            m = rotation_matrix(angle[i]) @ m
        if apply["scale"][i]:
            m = factor[i] * m
        if apply["shift"][i]:
            b = b + shift[i]
        if apply["affine"][i]:
            shear = np.array([[1.0, a_shear[i, 0]], [a_shear[i, 1], 1.0]])
            aff = rotation_matrix(a_angle[i]) @ np.diag(a_scale[i]) @ shear
            m, b = aff @ m, aff @ b + a_shift[i]
        mats[i], offs[i] = m, b
    moved = np.flatnonzero(apply["rotate"] | apply["scale"] | apply["shift"] | apply["affine"]).tolist()
    if moved and sum(len(out[i]) for i in moved):
        lengths = np.array([len(out[i]) for i in moved])
        stacked = np.concatenate([out[i][..., [0, 1]] for i in moved]) - _CENTRE
        m = np.repeat(mats[moved], lengths, axis=0).astype(np.float32)
        b = np.repeat(offs[moved], lengths, axis=0).astype(np.float32)
        xy = np.einsum("fpc,fdc->fpd", stacked, m) + _CENTRE + b[:, None, :]
        for i, piece in zip(moved, np.split(xy, np.cumsum(lengths)[:-1]), strict=True):
            out[i][..., [0, 1]] = piece
    for i in range(n):
        if not (apply["temporal_mask"][i] or apply["spatial_cutout"][i]):
            continue
        sub = np.random.default_rng(int(seeds[i]) ^ 0x5DEECE66D)
        if apply["temporal_mask"][i]:
            out[i] = temporal_mask(out[i], cfg.temporal_mask_fraction, sub)
        if apply["spatial_cutout"][i]:
            out[i] = spatial_cutout(out[i], cfg.spatial_cutout_fraction, sub)
    return out
