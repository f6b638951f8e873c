"""From an :class:`ExperimentConfig` to train / validation / test datasets.

Reads ``train.csv`` and the sign map, builds or opens the preprocessing cache over every row of
train.csv, keeps the rows that ``data.signs`` and ``data.exclusions`` leave (a view of the one
store, so changing them never rebuilds it), and splits by ``data.split``: ``participant`` (signer-independent,
optionally ``data.folds``-fold with ``data.fold`` as validation, the test participants held out
first) or ``random_stratified`` (the seed's signer-dependent split). Only the training set gets
an augmenter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islr.config import ExperimentConfig
from islr.data.augment import Augmenter
from islr.data.cache import CacheStore, build_cache
from islr.data.dataset import LandmarkDataset
from islr.data.kaggle import TRAIN_CSV, Sample, read_sign_map, read_train_csv
from islr.data.preprocess import feature_dim
from islr.data.splits import (
    describe_split,
    participant_kfold,
    participant_split,
    stratified_random_split_signer_dependent,
)
from islr.errors import ConfigError, DataError


@dataclass
class Datasets:
    """The three datasets of one experiment and what they were built from."""

    train: LandmarkDataset
    valid: LandmarkDataset
    test: LandmarkDataset
    sign_map: dict[str, int]
    sign_names: list[str]
    feature_dim: int
    split: str
    """Human description of the split, e.g. ``participant (signer-independent)``."""
    store: CacheStore | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    """Files skipped while building the cache: ``(path, reason)``."""
    excluded: int = 0
    """Sequences dropped because the exclusion file lists them."""


def apply_exclusions(samples: list[Sample], exclusions: str | Path) -> tuple[list[Sample], int]:
    """Drop samples whose ``sequence_id`` the exclusion CSV lists; returns (kept, dropped count)."""
    from islr.data.cleaning import read_exclusions

    excluded = read_exclusions(exclusions)
    kept = [s for s in samples if s.sequence_id not in excluded]
    return kept, len(samples) - len(kept)


def restrict_signs(
    sign_map: dict[str, int], samples: list[Sample], signs: tuple[str, ...], data_dir: Path
) -> tuple[dict[str, int], list[Sample]]:
    """Keep only ``signs`` (a new map indexed in their order) and the samples of those signs."""
    unknown = [s for s in signs if s not in sign_map]
    if unknown:
        raise DataError(data_dir / "sign_to_prediction_index_map.json", f"data.signs not in the sign map: {unknown}")
    keep = set(signs)
    return {s: i for i, s in enumerate(signs)}, [s for s in samples if s.sign in keep]


def rotating_fold(
    participants: np.ndarray, pool: np.ndarray, rotating: tuple[int, ...], folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, valid)`` positions of ``fold`` when only the ``rotating`` participants rotate.

    The participants of ``pool`` (positions) that are in ``rotating`` are split into ``folds``
    participant-grouped folds; fold ``fold`` validates, and every other sample of ``pool`` (the
    other rotating participants and everybody not rotating) trains.
    """
    present = set(np.unique(participants[pool]).tolist())
    missing = sorted(set(rotating) - present)
    if missing:
        raise ConfigError(f"data.fold_participants: participant(s) {missing} have no sequences (outside the "
                          f"test split); known: {sorted(present)}")
    moving = pool[np.isin(participants[pool], np.asarray(rotating, dtype=np.int64))]
    _, valid_rel = participant_kfold(participants[moving], folds, seed)[fold]
    valid = moving[valid_rel]
    return np.setdiff1d(pool, valid).astype(np.int64), np.sort(valid).astype(np.int64)


def load_split_indices(
    cfg: ExperimentConfig, participants: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, valid, test)`` positions for ``cfg.data``'s split, seeded by ``cfg.data.split_seed``."""
    d, seed = cfg.data, cfg.data.split_seed
    if d.split == "participant":
        if d.folds > 1:
            if not 0 <= d.fold < d.folds:
                raise ConfigError(f"data.fold must be in 0..{d.folds - 1} with data.folds={d.folds}, got {d.fold}")
            rest, _, test = participant_split(participants, 0.0, d.test_size, seed)
            if d.fold_participants:
                return (*rotating_fold(participants, rest, d.fold_participants, d.folds, d.fold, seed), test)
            train_rel, valid_rel = participant_kfold(participants[rest], d.folds, seed)[d.fold]
            return rest[train_rel], rest[valid_rel], test
        if d.fold_participants:
            raise ConfigError("data.fold_participants needs data.folds > 1 (it chooses who rotates through the folds)")
        return participant_split(participants, d.valid_size, d.test_size, seed)
    if d.split == "random_stratified":
        if d.folds > 1:
            raise ConfigError("data.folds applies to the participant split only")
        return stratified_random_split_signer_dependent(labels, d.valid_size, d.test_size, seed)
    raise ConfigError(f"data.split: unknown {d.split!r}; use 'participant' or 'random_stratified'")


def build_datasets(cfg: ExperimentConfig, data_dir: str | Path | None = None, progress: bool = True) -> Datasets:
    """Read, cache and split the data that ``cfg`` names (``data_dir`` overrides ``cfg.data.data_dir``)."""
    if not (data_dir or cfg.data.data_dir):
        raise ConfigError("no data folder: set data.data_dir (a folder in Kaggle layout)")
    data_dir = Path(data_dir or cfg.data.data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found (expected train.csv, the sign map and train_landmark_files/)")
    describe = describe_split(cfg.data.split, cfg.data.fold, cfg.data.folds)
    sign_map = read_sign_map(data_dir)
    every_row = read_train_csv(data_dir)
    samples = every_row
    if cfg.data.signs:
        sign_map, samples = restrict_signs(sign_map, samples, cfg.data.signs, data_dir)
    sign_names = [name for name, _ in sorted(sign_map.items(), key=lambda kv: kv[1])]
    excluded = 0
    if cfg.data.exclusions:
        samples, excluded = apply_exclusions(samples, cfg.data.exclusions)
    unknown = sorted({s.sign for s in samples} - set(sign_map))
    if unknown:
        raise DataError(data_dir / TRAIN_CSV, f"signs missing from the sign map: {unknown[:10]}")
    # One store per preprocessing and dataset, over every row of train.csv (the one `islr
    # preprocess` builds); exclusions and data.signs then select rows of it, never rebuild it.
    whole = build_cache(every_row, cfg.preprocess, cfg.data.cache_dir, workers=cfg.data.workers, progress=progress)
    store = whole if len(samples) == len(every_row) else whole.restrict(samples)
    labels = np.array([sign_map[s] for s in store.signs], dtype=np.int64)
    participants = store.participant_ids
    full = LandmarkDataset(store, labels, cfg.preprocess, participants, store.sequence_ids, sign_names)
    train_idx, valid_idx, test_idx = load_split_indices(cfg, participants, labels)
    augmenter = Augmenter.for_preprocess(cfg.augment, cfg.preprocess)
    return Datasets(
        train=full.subset(train_idx, augmenter=augmenter),
        valid=full.subset(valid_idx, augmenter=None),
        test=full.subset(test_idx, augmenter=None),
        sign_map=sign_map,
        sign_names=sign_names,
        feature_dim=feature_dim(cfg.preprocess),
        split=describe,
        store=store,
        errors=list(store.errors),
        excluded=excluded,
    )
