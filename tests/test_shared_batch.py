"""Shared-memory slots: a batch written by one side is read by the other without a copy, a slot
is reused only when nothing views its batch, stale rows are zeroed, a full /dev/shm falls back."""

from __future__ import annotations

import errno
import logging

import numpy as np
import pytest

from islr.data import shared_batch
from islr.data.loader import ParallelBatchLoader
from test_loader import toy_loader


def packed(lengths: list[int], width: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths_array = np.array(lengths, dtype=np.int64)
    return rng.normal(size=(int(lengths_array.sum()), width)).astype(np.float32) + 1.0, lengths_array


def padded(features: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(lengths), width, features.shape[1]), np.float32)
    start = 0
    for i, n in enumerate(lengths):
        out[i, :n] = features[start : start + n]
        start += n
    return out


def test_a_slot_carries_a_padded_batch_and_is_reused_only_when_free() -> None:
    pool = shared_batch.SlotPool()
    try:
        features, lengths = packed([3, 7, 1])
        ticket = pool.acquire()
        written = shared_batch.write(ticket, features, lengths, 7)
        x = pool.take(written, lengths)
        np.testing.assert_array_equal(x, padded(features, lengths, 7))
        view = x[1:]  # a view keeps the slot taken
        del x
        assert pool.acquire().slot != ticket.slot
        del view
        again = pool.acquire()
        assert again.slot == ticket.slot and again.holds is not None  # free again, remembers its rows
        # A shorter batch in the same slot: the rows of the old one that are padding now read zero.
        features2, lengths2 = packed([2, 2], seed=1)
        x2 = pool.take(shared_batch.write(again, features2, lengths2, 2), lengths2)
        np.testing.assert_array_equal(x2, padded(features2, lengths2, 2))
        del x2
        # A batch larger than the slot: the worker makes a bigger segment, the old name is dropped.
        big, big_lengths = packed([400] * 80, width=64, seed=2)
        third = pool.acquire()
        grown = shared_batch.write(third, big, big_lengths, 400)
        assert grown.name != third.name and grown.capacity >= big.nbytes
        np.testing.assert_array_equal(pool.take(grown, big_lengths), padded(big, big_lengths, 400))
    finally:
        pool.close()


def test_a_full_dev_shm_sends_the_batch_the_ordinary_way(monkeypatch, caplog) -> None:
    def full(capacity: int):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shared_batch, "_create", full)
    pool = shared_batch.SlotPool()
    loader = ParallelBatchLoader(toy_loader(), 1)
    features, lengths = packed([3, 4], width=loader.dataset.feature_dim)
    assert shared_batch.write(pool.acquire(), features, lengths, 4) is None
    # The trainer side: a result without a slot is padded here, with one warning.

    class Workers:
        slots = pool

    parts = {"features": features, "lengths": lengths, "y": np.array([0, 1])}
    with caplog.at_level(logging.WARNING, logger="islr.data.loader"):
        for _ in range(2):
            batch = loader._finish(Workers, dict(parts), pool.acquire())  # noqa: SLF001
            np.testing.assert_array_equal(batch["x"], padded(features, lengths, 4))
    assert sum("shared memory is not available or full" in r.message for r in caplog.records) == 1
    assert len(pool) == 2  # both slots were given back: the next acquire reuses them
    pool.close()


@pytest.mark.parametrize("failed", [False, True])
def test_stale_rows_are_zeroed_whether_the_last_write_is_known_or_not(failed: bool) -> None:
    pool = shared_batch.SlotPool()
    try:
        first, first_lengths = packed([2, 2])
        x = pool.take(shared_batch.write(pool.acquire(), first, first_lengths, 2), first_lengths)
        del x
        ticket = pool.acquire()
        features, lengths = packed([6, 6], seed=1)
        written = shared_batch.write(ticket, features, lengths, 6)
        if failed:  # the task failed after writing: the slot's content is unknown, zeroed whole
            pool.release(ticket.slot, failed=True)
        else:  # abandoned after a complete write: exactly those rows are zeroed
            pool.release(ticket.slot, written, lengths)
        small, small_lengths = packed([1, 1], seed=3)
        again = pool.acquire()
        assert again.slot == ticket.slot and again.name == ticket.name
        x = pool.take(shared_batch.write(again, small, small_lengths, 3), small_lengths)
        np.testing.assert_array_equal(x, padded(small, small_lengths, 3))
    finally:
        pool.close()
