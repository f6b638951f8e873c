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
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from islr.data.dataset import BatchLoader
from islr.errors import ConfigError

__all__ = ["ParallelBatchLoader", "make_loader"]

_WORKER_LOADER: BatchLoader | None = None  # the wrapped loader, inside a worker process


def _init_worker(loader: BatchLoader) -> None:
    global _WORKER_LOADER
    _WORKER_LOADER = loader


def _build(epoch: int, b: int, indices: np.ndarray, probabilities: dict[str, float] | None) -> dict[str, np.ndarray]:
    """Worker: batch ``b`` of ``epoch`` from its sample positions."""
    loader = _WORKER_LOADER
    assert loader is not None, "worker not initialised"
    augmenter = loader.dataset.augmenter
    if probabilities is not None and augmenter is not None:
        for name, p in probabilities.items():
            augmenter.set_probability(name, p)
    loader.set_epoch(epoch)
    return loader.batch_of(b, indices, pad=False)  # unpadded: a fraction of the bytes to send


class ParallelBatchLoader:
    """A :class:`BatchLoader` whose batches are built by ``workers`` processes, in order."""

    def __init__(self, loader: BatchLoader, workers: int, in_flight: int | None = None):
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        self.loader = loader
        self.workers = int(workers)
        self.in_flight = max(1, int(in_flight) if in_flight else 2 * max(self.workers, 1))
        self._pool: ProcessPoolExecutor | None = None

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
        pending: collections.deque[Future] = collections.deque()
        total = len(self)
        try:
            for b in range(total + self.in_flight):
                if b < total:
                    indices = order[b * size : (b + 1) * size]
                    pending.append(pool.submit(_build, epoch, b, indices, probabilities))
                if len(pending) >= self.in_flight or (b >= total and pending):
                    yield self.loader.dataset.pad(pending.popleft().result())
        finally:
            for future in pending:  # stopped early (a batch limit, an error): drop the rest
                future.cancel()

    # -- the pool -----------------------------------------------------------------------------
    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            from islr.data.cache import _mp_context

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=_mp_context(), initializer=_init_worker, initargs=(self.loader,)
            )
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (a later iteration starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ParallelBatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParallelBatchLoader(workers={self.workers}, in_flight={self.in_flight}, batches={len(self)})"


def make_loader(loader: BatchLoader, workers: int) -> BatchLoader | ParallelBatchLoader:
    """``loader`` itself for ``workers == 0``, else a :class:`ParallelBatchLoader` around it."""
    return loader if workers == 0 else ParallelBatchLoader(loader, workers)
