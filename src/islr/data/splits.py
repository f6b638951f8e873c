"""Train / validation / test splits.

``participant_split`` and ``participant_kfold`` group by signer: no participant appears in two
sets, so validation and test measure recognition of *unseen* signers. The seed project split
at random (stratified by sign), which puts every signer in every set and measures
signer-*dependent* accuracy; that behaviour is kept, under an honest name, as
:func:`stratified_random_split_signer_dependent`.
All functions return sorted ``int64`` index arrays and are deterministic in ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from islr.errors import ConfigError

IndexArray = np.ndarray


def _check_sizes(valid_size: float, test_size: float) -> None:
    if not (0 <= valid_size < 1 and 0 <= test_size < 1 and valid_size + test_size < 1):
        raise ConfigError(
            f"valid_size={valid_size} and test_size={test_size} must be in [0, 1) with a sum below 1"
        )


def _groups(participants: Sequence[int] | np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique participants in a seeded random order, their sample counts and each sample's group."""
    participants = np.asarray(participants)
    uniq, inverse, counts = np.unique(participants, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    return order, counts, inverse


def _take(order: list[int], counts: np.ndarray, target: float, keep_for_rest: int) -> list[int]:
    """Greedily pick groups (in ``order``) whose total count gets closest to ``target``.

    At least one group is taken when ``target > 0`` and more than ``keep_for_rest`` groups are
    left; at most ``len(order) - keep_for_rest`` groups are taken.
    """
    chosen: list[int] = []
    total = 0
    if target <= 0:
        return chosen
    for g in list(order):
        if len(order) - len(chosen) <= keep_for_rest:
            break
        if not chosen or abs(total + counts[g] - target) < abs(total - target):
            chosen.append(g)
            total += counts[g]
        if total >= target:
            break
    return chosen


def participant_split(
    participants: Sequence[int] | np.ndarray,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 0,
) -> tuple[IndexArray, IndexArray, IndexArray]:
    """Signer-independent split: ``(train_idx, valid_idx, test_idx)`` grouped by participant.

    Participants are shuffled with ``seed``; test then validation take participants until their
    sample counts are closest to ``test_size`` / ``valid_size`` of all samples. Each set with a
    non-zero size gets at least one participant whenever enough participants exist (training
    always keeps at least one).
    """
    _check_sizes(valid_size, test_size)
    order, counts, inverse = _groups(participants, seed)
    n = counts.sum()
    remaining = order.tolist()
    want_valid = 1 if valid_size > 0 else 0
    test = _take(remaining, counts, test_size * n, keep_for_rest=1 + want_valid)
    taken = set(test)
    remaining = [g for g in remaining if g not in taken]
    valid = _take(remaining, counts, valid_size * n, keep_for_rest=1)
    group_set = np.full(len(counts), 0)
    group_set[valid] = 1
    group_set[test] = 2
    sample_set = group_set[inverse]
    return tuple(np.flatnonzero(sample_set == k).astype(np.int64) for k in range(3))  # type: ignore[return-value]


def participant_kfold(participants: Sequence[int] | np.ndarray, k: int, seed: int = 0) -> list[tuple[IndexArray, IndexArray]]:
    """``k`` participant-grouped folds: a list of ``(train_idx, valid_idx)``.

    Participants are shuffled with ``seed``, then (largest first) each joins the fold with the
    fewest samples so far, which balances fold sizes. Needs ``2 <= k <= participants``.
    """
    order, counts, inverse = _groups(participants, seed)
    if not 2 <= k <= len(counts):
        raise ConfigError(f"k-fold needs 2 <= k <= {len(counts)} participants, got k={k}")
    by_size = sorted(order.tolist(), key=lambda g: -counts[g])  # stable: ties keep the shuffled order
    fold_of = np.zeros(len(counts), dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in by_size:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += counts[g]
    sample_fold = fold_of[inverse]
    return [
        (np.flatnonzero(sample_fold != f).astype(np.int64), np.flatnonzero(sample_fold == f).astype(np.int64))
        for f in range(k)
    ]


def stratified_random_split_signer_dependent(
    labels: Sequence[int] | np.ndarray,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 0,
) -> tuple[IndexArray, IndexArray, IndexArray]:
    """The seed's split: random, stratified by label, ignoring who signed (signer-dependent).

    Within each label the samples are shuffled; the sample at rank ``r`` of ``n`` goes to test if
    ``(r + 0.5) / n < test_size``, else to validation if below ``test_size + valid_size``, else to
    training, so every label is split in the requested proportions (rounded). Scores on such a
    split overstate accuracy on new signers.
    """
    _check_sizes(valid_size, test_size)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    which = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        frac = (np.arange(len(members)) + 0.5) / len(members)
        which[members] = np.where(frac < test_size, 2, np.where(frac < test_size + valid_size, 1, 0))
    return tuple(np.flatnonzero(which == k).astype(np.int64) for k in range(3))  # type: ignore[return-value]


def describe_split(kind: str, fold: int = -1, folds: int = 0) -> str:
    """A one-line description of a split kind for reports."""
    if kind == "participant":
        text = "participant (signer-independent)"
        if folds > 1:
            text += f", fold {fold} of {folds}"
        return text
    if kind == "random_stratified":
        return "random stratified (signer-dependent: the same signers in train and test)"
    raise ConfigError(f"data.split: unknown {kind!r}; use 'participant' or 'random_stratified'")
