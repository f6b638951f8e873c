"""Batches built in worker processes, yielded in order: the loader that keeps a GPU fed.

:class:`ParallelBatchLoader` wraps a :class:`islr.data.dataset.BatchLoader` and has its interface
(``len``, iteration, ``set_epoch``, ``batch``, ``order``). Each worker process receives the
wrapped loader once, when the pool starts; a dataset over a
:class:`islr.data.cache.CacheStore` travels without its array (the store pickles without the
memory map) and each worker reopens ``data.npy`` memory-mapped, so the frames are shared through
the page cache, never copied per worker. A task is only ``(epoch, batch index, sample positions,
augmentation probabilities)``; a worker sends back the batch's unpadded features (padding to the
longest sequence multiplies the bytes several times over) and this process pads them.

The parent computes each epoch's order with the wrapped loader's ``order()`` (whatever sampling
mode it has) and sends every batch its positions; a worker builds batch ``b`` with the wrapped
loader's ``batch_of`` and the generator of ``(seed, epoch, b)``, so the stream is identical for
any number of workers (0 builds in this process) and a resumed run reproduces an uninterrupted
one. Probabilities travel with each task because training callbacks change them in the parent
between epochs. ``in_flight`` batches (default ``2 * workers``) are being built at any time.
"""

from __future__ import annotations

import collections
import functools
import logging
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from islr.data import shared_batch
from islr.data.dataset import BatchLoader
from islr.errors import ConfigError

__all__ = ["ParallelBatchLoader", "make_loader"]

log = logging.getLogger(__name__)

_WORKER_LOADER: BatchLoader | None = None  # the wrapped loader, inside a worker process


def _init_worker(loader: BatchLoader) -> None:
    global _WORKER_LOADER
    _WORKER_LOADER = loader
    keep_freed_memory()


def keep_freed_memory(limit: int = 256 << 20) -> bool:
    """Make glibc's malloc keep freed blocks up to ``limit`` bytes for reuse instead of handing
    them back to the kernel (``mallopt``); True where it applied.

    A batch allocates and frees a few dozen arrays of a megabyte or more. By default glibc
    returns each to the kernel and the next batch takes fresh pages, paying a page fault per
    4 KiB: measured here that was almost half of a batch's time (11.3 -> 6.4 ms a recipe batch).
    A worker process does nothing else, so its memory stays at the peak of one batch's arrays.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, limit)) and bool(mallopt(m_trim_threshold, 2 * limit))


def _build(epoch: int, b: int, indices: np.ndarray, probabilities: dict[str, float] | None,
           ticket: shared_batch.Ticket | None) -> dict[str, Any]:
    """Worker: batch ``b`` of ``epoch`` from its sample positions, its padded features written
    into the shared-memory slot of ``ticket`` where possible (else sent unpadded: a fraction of
    the padded bytes)."""
    loader = _WORKER_LOADER
    assert loader is not None, "worker not initialised"
    augmenter = loader.dataset.augmenter
    if probabilities is not None and augmenter is not None:
        for name, p in probabilities.items():
            augmenter.set_probability(name, p)
    loader.set_epoch(epoch)
    parts = loader.batch_of(b, indices, pad=False)
    written = None
    if ticket is not None:
        written = shared_batch.write(ticket, parts["features"], parts["lengths"],
                                     loader.dataset.pad_width(parts["lengths"]))
    if written is not None:
        del parts["features"]
        parts["written"] = written
    return parts


class ParallelBatchLoader:
    """A :class:`BatchLoader` whose batches are built by ``workers`` processes, in order."""

    def __init__(self, loader: BatchLoader, workers: int, in_flight: int | None = None,
                 shared_memory: bool = True):
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        self.loader = loader
        self.workers = int(workers)
        self.in_flight = max(1, int(in_flight) if in_flight else 2 * max(self.workers, 1))
        self.shared_memory = shared_memory
        """Hand padded batches over in shared memory (:mod:`islr.data.shared_batch`), not pipes."""
        self._pool: ProcessPoolExecutor | None = None
        self._slots: shared_batch.SlotPool | None = None
        self._warned = False

    # -- the BatchLoader interface -------------------------------------------------------------
    @property
    def dataset(self) -> Any:
        return self.loader.dataset

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    @property
    def epoch(self) -> int:
        return self.loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration reproduces."""
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def order(self) -> np.ndarray:
        """Sample positions of this epoch, in batch order (the wrapped loader's)."""
        return self.loader.order()

    def batch(self, b: int, order: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Batch ``b`` of the current epoch, built in this process."""
        return self.loader.batch(b, order)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        if self.workers == 0:
            yield from self.loader
            return
        pool = self._ensure_pool()
        order = self.loader.order()
        epoch, size = self.loader.epoch, self.loader.batch_size
        augmenter = self.loader.dataset.augmenter
        probabilities = augmenter.probabilities if augmenter is not None else None
        pending: collections.deque[tuple[Future, shared_batch.Ticket | None]] = collections.deque()
        total = len(self)
        try:
            for b in range(total + self.in_flight):
                if b < total:
                    indices = order[b * size : (b + 1) * size]
                    ticket = self._slots.acquire() if self._slots is not None else None
                    pending.append((pool.submit(_build, epoch, b, indices, probabilities, ticket), ticket))
                if len(pending) >= self.in_flight or (b >= total and pending):
                    future, ticket = pending.popleft()
                    try:
                        parts = future.result()
                    except BaseException:
                        self._release(ticket, failed=True)
                        raise
                    yield self._finish(parts, ticket)
        finally:
            for future, ticket in pending:  # stopped early (a batch limit, an error): drop the rest
                if future.cancel():
                    self._release(ticket)
                else:
                    future.add_done_callback(functools.partial(self._abandon, ticket))

    def _finish(self, parts: dict[str, Any], ticket: shared_batch.Ticket | None) -> dict[str, np.ndarray]:
        """The batch dict of a worker's result (this process's only work for a batch)."""
        written = parts.pop("written", None)
        if written is None:
            self._release(ticket)
            if ticket is not None and not self._warned:
                self._warned = True
                log.warning("shared memory is not available or full (/dev/shm): batches travel through "
                            "pipes, which costs this process time; give the container more /dev/shm")
            return self.loader.dataset.pad(parts)
        return self.loader.dataset.pad(parts, self._slots.take(written, parts["lengths"]))

    def _release(self, ticket: shared_batch.Ticket | None, written: shared_batch.Written | None = None,
                 lengths: np.ndarray | None = None, failed: bool = False) -> None:
        if ticket is not None and self._slots is not None:
            self._slots.release(ticket.slot, written, lengths, failed)

    def _abandon(self, ticket: shared_batch.Ticket | None, future: Future) -> None:
        """A batch nobody will take: give its slot back (adopting a segment the worker made)."""
        if future.cancelled():
            self._release(ticket)
        elif future.exception() is not None:
            self._release(ticket, failed=True)
        else:
            parts = future.result()
            self._release(ticket, parts.get("written"), parts.get("lengths"))

    # -- the pool -----------------------------------------------------------------------------
    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            from islr.data.cache import _mp_context

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=_mp_context(), initializer=_init_worker, initargs=(self.loader,)
            )
            self._slots = shared_batch.SlotPool() if self.shared_memory and shared_batch.available() else None
            self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._slots)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes and free the shared memory (a later iteration starts anew)."""
        if self._pool is not None:
            self._finalizer.detach()
            _shutdown(self._pool, self._slots, wait=True)
            self._pool = self._slots = None

    def __enter__(self) -> ParallelBatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParallelBatchLoader(workers={self.workers}, in_flight={self.in_flight}, batches={len(self)})"


def _shutdown(pool: ProcessPoolExecutor, slots: shared_batch.SlotPool | None, wait: bool = False) -> None:
    pool.shutdown(wait=wait, cancel_futures=True)
    if slots is not None:
        slots.close()


def make_loader(loader: BatchLoader, workers: int) -> BatchLoader | ParallelBatchLoader:
    """``loader`` itself for ``workers == 0``, else a :class:`ParallelBatchLoader` around it."""
    return loader if workers == 0 else ParallelBatchLoader(loader, workers)
