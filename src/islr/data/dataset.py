"""Framework-free dataset and batch loader over prepared sequences.

:class:`LandmarkDataset` holds prepared ``(L, P, C)`` sequences (a list of arrays or a
:class:`islr.data.cache.CacheStore`) with their labels and metadata; an item is
``prepared -> augment (training only) -> featurize``. :class:`BatchLoader` yields numpy batch
dicts ``{"x": (B, T, F) float32, "mask": (B, T) bool, "y": (B,) int64}`` that every framework
only converts. Shuffling and augmentation draw only from ``(seed, epoch, batch index)``, so a
resumed run reproduces its batches exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from islr.config import PreprocessConfig
from islr.data.augment import Augmenter, pack, unpack
from islr.data.balance import sample_probabilities
from islr.data.preprocess import batchable, feature_dim, featurize, featurize_packed

_AUG_STREAM = 0xA5  # separates augmentation draws from the shuffling stream


class LandmarkDataset:
    """Prepared sequences with labels; ``ds[i] -> (features (L', F) float32, label)``."""

    def __init__(
        self,
        sequences: Sequence[np.ndarray] | Any,
        labels: Sequence[int] | np.ndarray,
        cfg: PreprocessConfig,
        participants: Sequence[int] | np.ndarray | None = None,
        sequence_ids: Sequence[int] | np.ndarray | None = None,
        sign_names: list[str] | None = None,
        augmenter: Augmenter | None = None,
        indices: np.ndarray | None = None,
    ):
        self.sequences = sequences
        n_all = len(sequences)
        self._labels = np.asarray(labels, dtype=np.int64)
        if len(self._labels) != n_all:
            raise ValueError(f"{n_all} sequences but {len(self._labels)} labels")
        self._participants = np.asarray(participants if participants is not None else np.zeros(n_all), dtype=np.int64)
        self._sequence_ids = np.asarray(sequence_ids if sequence_ids is not None else np.arange(n_all), dtype=np.int64)
        self.cfg = cfg
        self.sign_names = list(sign_names) if sign_names is not None else []
        self.augmenter = augmenter
        self._indices = np.arange(n_all, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        self.feature_dim = feature_dim(cfg)
        self._rng = np.random.default_rng(0)
        self.mirrored = False
        """When True every sequence is mirrored after augmentation (test-time augmentation)."""

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def labels(self) -> np.ndarray:
        """Class index of each sample (int64)."""
        return self._labels[self._indices]

    @property
    def participants(self) -> np.ndarray:
        """Participant id of each sample."""
        return self._participants[self._indices]

    @property
    def sequence_ids(self) -> np.ndarray:
        """Kaggle sequence id of each sample."""
        return self._sequence_ids[self._indices]

    def prepared(self, i: int) -> np.ndarray:
        """The stored prepared sequence ``(L, P, C)`` of sample ``i`` (do not modify it)."""
        return np.asarray(self.sequences[int(self._indices[i])])

    def lengths(self) -> np.ndarray:
        """Prepared frame count of every sample (before any resizing)."""
        lengths = getattr(self.sequences, "lengths", None)
        if lengths is not None:
            return np.asarray(lengths)[self._indices]
        return np.array([len(self.sequences[int(j)]) for j in self._indices], dtype=np.int64)

    def features(self, indices: Sequence[int], rng: np.random.Generator | None = None,
                 positions: Sequence[int] | None = None, total: int | None = None) -> list[np.ndarray]:
        """Features of ``indices``; augmented (batched) when an augmenter is set and ``rng`` given
        (as positions ``positions`` of a batch of ``total``: see :meth:`Augmenter.apply_batch`)."""
        features, lengths = self.packed_features(indices, rng, positions, total)
        return unpack(features, lengths)

    def packed_features(self, indices: Sequence[int], rng: np.random.Generator | None = None,
                        positions: Sequence[int] | None = None,
                        total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`features` packed: ``(sum of lengths, F)`` float32 and the lengths.

        The batch stays one array from the stored frames to the features: one gather of the
        stored frames, each augmentation once over the batch, one featurize pass.
        """
        frames, lengths = pack([self.prepared(i) for i in indices])
        if not len(lengths):
            return np.zeros((0, self.feature_dim), np.float32), lengths
        if self.augmenter is not None and rng is not None and self.augmenter.active:
            frames, lengths = self.augmenter.apply_packed(frames, lengths, rng, positions, total)
        if self.mirrored:
            from islr.data.tta import mirror_prepared

            frames = mirror_prepared(frames, self.cfg)  # a frame-wise map
        if not batchable(self.cfg):  # fixed length: every sequence becomes fixed_len frames
            feats = [featurize(s, self.cfg) for s in unpack(frames, lengths)]
            lengths = np.array([len(f) for f in feats], dtype=np.int64)
            return np.concatenate(feats), lengths
        return featurize_packed(frames, lengths, self.cfg), lengths

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        rng = self._rng if self.augmenter is not None else None
        return self.features([i], rng)[0], int(self.labels[i])

    def subset(self, indices: Sequence[int] | np.ndarray, augmenter: Augmenter | None | str = "same") -> LandmarkDataset:
        """A view on some samples (positions in this dataset); shares the stored sequences."""
        idx = np.asarray(indices, dtype=np.int64)
        return LandmarkDataset(
            self.sequences, self._labels, self.cfg, self._participants, self._sequence_ids, self.sign_names,
            self.augmenter if isinstance(augmenter, str) else augmenter, indices=self._indices[idx],
        )

    def mirror_view(self) -> LandmarkDataset:
        """The same samples, each mirrored (no augmentation): the second pass of mirror TTA."""
        view = self.subset(np.arange(len(self)), augmenter=None)
        view.mirrored = True
        return view

    def collate(self, indices: Sequence[int], rng: np.random.Generator | None = None,
                pad: bool = True, positions: Sequence[int] | None = None,
                total: int | None = None) -> dict[str, np.ndarray]:
        """One batch dict: ``x`` zero-padded ``(B, T, F)``, ``mask`` True on real frames, ``y``.

        ``pad=False`` returns the unpadded parts instead, ``features`` ``(sum of lengths, F)``,
        ``lengths`` and ``y`` (a far smaller message between processes); :meth:`pad` finishes them.
        """
        features, lengths = self.packed_features(indices, rng, positions, total)
        y = self.labels[np.asarray(indices, dtype=np.int64)] if len(indices) else np.zeros(0, np.int64)
        parts = {"features": features, "lengths": lengths, "y": y.astype(np.int64)}
        if total is not None:
            parts["global_size"] = np.int64(total)
        return self.pad(parts) if pad else parts

    def pad_width(self, lengths: np.ndarray) -> int:
        """Frames of the padded batch of sequences of ``lengths`` (``fixed_len`` in fixed mode)."""
        return self.cfg.fixed_len if self.cfg.length_mode == "fixed" else max(1, int(np.max(lengths, initial=0)))

    def pad(self, parts: dict[str, np.ndarray], x: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The batch dict of :meth:`collate`'s unpadded ``parts`` (``x``: the padded features,
        when something else already wrote them)."""
        lengths = parts["lengths"]
        width = self.pad_width(lengths)
        mask = np.arange(width) < lengths[:, None]
        if x is None:
            x = np.zeros((len(lengths), width, self.feature_dim), dtype=np.float32)
            if len(lengths):  # one scatter of the packed rows into the padded batch
                x.reshape(-1, self.feature_dim)[np.flatnonzero(mask)] = parts["features"]
        batch = {"x": x, "mask": mask, "y": parts["y"]}
        if "global_size" in parts:
            batch["global_size"] = parts["global_size"]
        return batch

    def __repr__(self) -> str:
        n_part = len(np.unique(self.participants))
        n_signs = len(np.unique(self.labels))
        aug = repr(self.augmenter) if self.augmenter is not None else "none"
        return (
            f"LandmarkDataset(samples={len(self)}, participants={n_part}, signs={n_signs}, "
            f"landmarks={self.cfg.landmarks}, length_mode={self.cfg.length_mode}, features={self.feature_dim}, "
            f"augment={aug})"
        )


class BatchLoader:
    """Iterate a :class:`LandmarkDataset` in numpy batch dicts.

    ``len(loader)`` is the number of batches. With ``shuffle`` the order is a permutation drawn
    from ``(seed, epoch)``; with ``sampling`` ``balanced`` or ``sqrt`` (shuffled loaders only) it
    is instead ``len(dataset)`` positions drawn with replacement from ``(seed, epoch)``, weighted
    per class (:mod:`islr.data.balance`). Augmentation of batch ``b`` draws from
    ``(seed, epoch, b)``; call :meth:`set_epoch` before each epoch. ``loader.batch(b)`` builds
    batch ``b`` directly.
    """

    def __init__(self, dataset: LandmarkDataset, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, sampling: str = "uniform", shard: tuple[int, int] = (0, 1)):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.sampling = sampling
        self.shard = (int(shard[0]), int(shard[1]))
        """``(rank, world)``: this process builds samples ``rank::world`` of every batch."""
        self._probabilities = sample_probabilities(dataset.labels, sampling) if shuffle else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration reproduces."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> np.ndarray:
        """Sample positions of this epoch, in batch order."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self._probabilities is not None:
            return rng.choice(n, size=n, replace=True, p=self._probabilities).astype(np.int64)
        return rng.permutation(n)

    def batch(self, b: int, order: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Batch ``b`` of the current epoch."""
        order = self.order() if order is None else order
        return self.batch_of(b, order[b * self.batch_size : (b + 1) * self.batch_size])

    def batch_of(self, b: int, indices: np.ndarray, pad: bool = True) -> dict[str, np.ndarray]:
        """Batch ``b`` of the current epoch from its sample positions (``order``'s slice ``b``);
        ``pad=False``: its unpadded parts (see :meth:`LandmarkDataset.collate`)."""
        rng = np.random.default_rng([self.seed, self.epoch, b, _AUG_STREAM])
        rank, world = self.shard
        if world > 1:  # DistributedSampler-like: this rank's samples of the global batch, as built whole
            positions = np.arange(rank, len(indices), world)
            return self.dataset.collate(np.asarray(indices)[positions], rng, pad=pad, positions=positions,
                                        total=len(indices))
        return self.dataset.collate(indices, rng, pad=pad)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        order = self.order()
        for b in range(len(self)):
            yield self.batch(b, order)
