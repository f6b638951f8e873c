"""Batches built in worker processes, yielded in order: the loader that keeps a GPU fed.

:class:`ParallelBatchLoader` wraps a :class:`islr.data.dataset.BatchLoader` and has its interface
(``len``, iteration, ``set_epoch``, ``batch``, ``order``). Each worker process receives the
wrapped loader once, when it starts; a dataset over a :class:`islr.data.cache.CacheStore`
travels without its array (the store pickles without the memory map) and each worker reopens
``data.npy`` memory-mapped, so the frames are shared through the page cache, never copied per
worker. A task is only ``(epoch, batch index, sample positions, augmentation probabilities,
shared-memory slot)``; the worker writes the padded batch into the slot
(:mod:`islr.data.shared_batch`) and answers with its shape, so this process does almost nothing
per batch. Where shared memory is missing or full the worker sends the unpadded features instead
and this process pads them.

Each worker has its own pipe and batch ``b`` goes to worker ``b % workers``: the answers come
back in batch order without a dispatcher thread (a ``ProcessPoolExecutor`` in between cost a
fifth of the throughput with two workers). The parent computes each epoch's order with the
wrapped loader's ``order()`` (whatever sampling mode it has); a worker builds batch ``b`` with
the wrapped loader's ``batch_of`` and the generator of ``(seed, epoch, b)``, so the stream is
identical for any number of workers (0 builds in this process) and a resumed run reproduces an
uninterrupted one. Probabilities travel with each task because training callbacks change them in
the parent between epochs. ``in_flight`` batches (default ``3 * workers``) are being built at
any time; an iteration stopped early collects the batches still being built before the next.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import traceback
import weakref
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from islr.data import shared_batch
from islr.data.dataset import BatchLoader
from islr.errors import ConfigError

__all__ = ["LoaderWorkerError", "ParallelBatchLoader", "keep_freed_memory", "make_loader"]

log = logging.getLogger(__name__)

_WORKER_LOADER: BatchLoader | None = None  # the wrapped loader, inside a worker process


class LoaderWorkerError(RuntimeError):
    """A loader worker process died, or failed in a way that cannot be sent back as it was."""


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


# -- the worker process ----------------------------------------------------------------------
def _worker_main(loader: BatchLoader, conn: Connection) -> None:
    """A worker: build each task's batch and answer, until told to stop (``None``) or orphaned."""
    global _WORKER_LOADER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle; it stops us
    _WORKER_LOADER = loader
    keep_freed_memory()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the trainer is gone
            return
        if task is None:
            return
        try:
            answer: tuple[str, Any] = ("ok", _build(*task))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the trainer
            answer = ("error", (exc, traceback.format_exc()))
        try:
            conn.send(answer)
        except Exception:  # noqa: BLE001 - an exception that does not pickle: send its text
            conn.send(("error", (None, answer[1][1] if answer[0] == "error" else traceback.format_exc())))


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


# -- the trainer side ------------------------------------------------------------------------
class _Workers:
    """The worker processes, their pipes and the shared-memory slots of one loader."""

    def __init__(self, loader: BatchLoader, count: int, shared_memory: bool):
        from islr.data.cache import _mp_context

        ctx = _mp_context()
        self.slots = shared_batch.SlotPool() if shared_memory and shared_batch.available() else None
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(count):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(loader, child_end), daemon=True, name="islr-loader")
            proc.start()
            child_end.close()  # only the worker holds it now: its death reads as EOF here
            self.conns.append(parent_end)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def send(self, worker: int, task: tuple[Any, ...]) -> None:
        try:
            self.conns[worker].send(task)
        except (BrokenPipeError, OSError) as exc:
            raise self._died(worker) from exc

    def receive(self, worker: int) -> dict[str, Any]:
        """The next answer of ``worker``; its exception re-raised if the batch failed."""
        try:
            kind, payload = self.conns[worker].recv()
        except (EOFError, OSError) as exc:
            raise self._died(worker) from exc
        if kind == "ok":
            return payload
        exc, text = payload
        if exc is None:
            raise LoaderWorkerError(f"loader worker {self.procs[worker].pid} failed:\n{text}")
        raise exc

    def _died(self, worker: int) -> LoaderWorkerError:
        proc = self.procs[worker]
        proc.join(timeout=1.0)
        return LoaderWorkerError(f"loader worker {proc.pid} died (exit code {proc.exitcode}); "
                                 "if it was killed for memory, lower train.num_workers or the batch size")


def _stop(workers: _Workers, timeout: float = 5.0) -> None:
    """Tell each worker to stop, wait for it, kill what does not; free the shared memory."""
    for conn in workers.conns:
        with contextlib.suppress(OSError):  # a worker already gone
            conn.send(None)
    for proc in workers.procs:
        proc.join(timeout=timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=timeout)
    for conn in workers.conns:
        conn.close()
    if workers.slots is not None:
        workers.slots.close()


class ParallelBatchLoader:
    """A :class:`BatchLoader` whose batches are built by ``workers`` processes, in order."""

    def __init__(self, loader: BatchLoader, workers: int, in_flight: int | None = None,
                 shared_memory: bool = True):
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        self.loader = loader
        self.workers = int(workers)
        self.in_flight = max(1, int(in_flight) if in_flight else 3 * max(self.workers, 1))
        self.shared_memory = shared_memory
        """Hand padded batches over in shared memory (:mod:`islr.data.shared_batch`), not pipes."""
        self._pool: _Workers | None = None
        self._finalizer: weakref.finalize | None = None
        self._pending: collections.deque | None = None  # batches in flight of the newest iteration
        self._generation = 0  # counts iterations: an older, suspended one must not read the pipes
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

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (none before the first iteration)."""
        return self._pool.pids if self._pool is not None else []

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
        if self._pending and not self._drain(pool, self._pending):
            # An earlier iteration was left suspended with batches in flight; its answers come
            # first on the pipes, so they are collected before this one sends anything.
            self.close()
            pool = self._ensure_pool()
        self._generation += 1
        generation = self._generation
        order = self.loader.order()
        epoch, size = self.loader.epoch, self.loader.batch_size
        augmenter = self.loader.dataset.augmenter
        probabilities = augmenter.probabilities if augmenter is not None else None
        pending: collections.deque[tuple[int, shared_batch.Ticket | None]] = collections.deque()
        self._pending = pending
        total, sent = len(self), 0
        clean = False
        try:
            for b in range(total):
                if generation != self._generation:
                    clean = True  # not ours to close: the newer iteration owns the workers
                    raise RuntimeError("this iteration of a ParallelBatchLoader was superseded by a newer "
                                       "one (or the loader was closed); iterate one epoch at a time")
                while sent < total and len(pending) < self.in_flight:
                    ticket = pool.slots.acquire() if pool.slots is not None else None
                    indices = order[sent * size : (sent + 1) * size]
                    pending.append((sent, ticket))
                    pool.send(sent % self.workers, (epoch, sent, indices, probabilities, ticket))
                    sent += 1
                _, ticket = pending.popleft()
                try:
                    parts = pool.receive(b % self.workers)
                except BaseException:
                    if ticket is not None:
                        pool.slots.release(ticket.slot, failed=True)
                    raise
                yield self._finish(pool, parts, ticket)
            clean = True
        except GeneratorExit:  # the consumer stopped early (a batch limit): collect what is in flight
            clean = self._drain(pool, pending)
            raise
        finally:
            if not clean and generation == self._generation:
                self.close()  # a failure or an interrupt: the pipes' state is unknown, start anew

    def _finish(self, pool: _Workers, parts: dict[str, Any],
                ticket: shared_batch.Ticket | None) -> dict[str, np.ndarray]:
        """The batch dict of a worker's answer (this process's only work for a batch)."""
        written = parts.pop("written", None)
        if written is None:
            if ticket is not None:
                pool.slots.release(ticket.slot)
                if not self._warned:
                    self._warned = True
                    log.warning("shared memory is not available or full (/dev/shm): batches travel "
                                "through pipes, which costs this process time; give it more /dev/shm")
            return self.loader.dataset.pad(parts)
        return self.loader.dataset.pad(parts, pool.slots.take(written, parts["lengths"]))

    def _drain(self, pool: _Workers, pending: collections.deque) -> bool:
        """Read and drop the answers of batches still being built; False if a worker failed."""
        while pending:
            b, ticket = pending.popleft()
            try:
                parts = pool.receive(b % self.workers)
            except BaseException:  # noqa: BLE001 - the caller restarts the pool
                return False
            if ticket is not None:
                written = parts.get("written")
                pool.slots.release(ticket.slot, written, parts.get("lengths") if written else None)
        return True

    # -- the pool -----------------------------------------------------------------------------
    def _ensure_pool(self) -> _Workers:
        if self._pool is None:
            self._pool = _Workers(self.loader, self.workers, self.shared_memory)
            self._finalizer = weakref.finalize(self, _stop, self._pool)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes and free the shared memory (a later iteration starts anew)."""
        if self._pool is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            pool, self._pool = self._pool, None
            self._pending, self._generation = None, self._generation + 1
            _stop(pool)

    def __enter__(self) -> ParallelBatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParallelBatchLoader(workers={self.workers}, in_flight={self.in_flight}, batches={len(self)})"


def make_loader(loader: BatchLoader, workers: int) -> BatchLoader | ParallelBatchLoader:
    """``loader`` itself for ``workers == 0``, else a :class:`ParallelBatchLoader` around it."""
    return loader if workers == 0 else ParallelBatchLoader(loader, workers)
