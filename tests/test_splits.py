"""Splits: grouped by participant (checked on the real 94k-row metadata), k-fold, stratified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from islr.data.splits import (
    describe_split,
    participant_kfold,
    participant_split,
    stratified_random_split_signer_dependent,
)
from islr.errors import ConfigError


def assert_partition(n: int, *parts: np.ndarray) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n


@pytest.mark.real
def test_participant_split_on_full_metadata(real_full_csv):
    participants = pd.read_csv(real_full_csv, usecols=["participant_id"])["participant_id"].to_numpy()
    assert len(np.unique(participants)) == 21
    train, valid, test = participant_split(participants, 0.1, 0.1, seed=0)
    assert_partition(len(participants), train, valid, test)
    sets = [set(participants[idx]) for idx in (train, valid, test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    n = len(participants)
    assert 0.06 < len(valid) / n < 0.14 and 0.06 < len(test) / n < 0.14
    again = participant_split(participants, 0.1, 0.1, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again, strict=True))
    other = participant_split(participants, 0.1, 0.1, seed=1)
    assert set(participants[other[2]]) != sets[2]

    folds = participant_kfold(participants, 5, seed=0)
    seen = np.concatenate([v for _, v in folds])
    assert_partition(n, seen)
    sizes = [len(v) for _, v in folds]
    assert max(sizes) / min(sizes) < 1.3
    for tr, va in folds:
        assert_partition(n, tr, va)
        assert not set(participants[tr]) & set(participants[va])


def test_few_participants_still_fill_every_set():
    three = np.repeat([7, 8, 9], [50, 10, 40])
    train, valid, test = participant_split(three, 0.1, 0.1, seed=0)
    assert len(train) and len(valid) and len(test)
    assert len({*three[train]} | {*three[valid]} | {*three[test]}) == 3
    two = np.repeat([1, 2], 5)
    train, valid, test = participant_split(two, 0.1, 0.1, seed=0)
    assert len(train) and len(valid) and not len(test)
    one = np.zeros(4, dtype=int)
    train, valid, test = participant_split(one, 0.1, 0.1, seed=0)
    assert len(train) == 4 and not len(valid) and not len(test)
    train, valid, test = participant_split(three, 0.2, 0.0, seed=0)
    assert not len(test) and len(valid)


def test_kfold_needs_enough_participants():
    with pytest.raises(ConfigError):
        participant_kfold([1, 1, 2], 3)
    folds = participant_kfold([1, 1, 2, 3], 3)
    assert sorted(len(v) for _, v in folds) == [1, 1, 2]


def test_stratified_split_is_per_label_and_signer_dependent():
    labels = np.repeat(np.arange(5), 20)
    participants = np.tile(np.arange(4), 25)
    train, valid, test = stratified_random_split_signer_dependent(labels, 0.1, 0.1, seed=0)
    assert_partition(100, train, valid, test)
    for c in range(5):
        assert (labels[valid] == c).sum() == 2 and (labels[test] == c).sum() == 2
    assert set(participants[train]) & set(participants[test])  # the same signers on both sides
    single = stratified_random_split_signer_dependent([0, 1, 1, 2], 0.1, 0.1, seed=0)
    assert 0 in single[0]  # a one-sample label stays in training


def test_sizes_are_validated_and_described():
    with pytest.raises(ConfigError):
        participant_split([1, 2, 3], 0.6, 0.5)
    assert "signer-independent" in describe_split("participant")
    assert "fold 2 of 5" in describe_split("participant", 2, 5)
    assert "signer-dependent" in describe_split("random_stratified")
    with pytest.raises(ConfigError):
        describe_split("whatever")
