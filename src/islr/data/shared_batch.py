"""Padded batches handed from worker processes to the trainer through reused shared memory.

A worker writes a batch's padded ``x`` straight into a POSIX shared-memory *slot* and sends back
only the slot's name and the batch's shape; the trainer wraps the slot in a numpy array without a
copy. Its share of a batch is then a few microseconds whatever the batch's size, instead of
unpickling megabytes from a pipe and padding them: with one worker the trainer's core is free
to train, with two the work splits over two cores.

Slots are reused, so their pages stay mapped in every process and no batch pays for page
faults: the trainer keeps a :class:`SlotPool` and hands a free slot to each task. A slot is free
again once nothing refers to the array the trainer made of it (numpy views, a
``torch.from_numpy`` tensor and the like all keep that array alive), so a consumer that keeps
batches (``list(loader)``) only makes the pool grow; a batch is never overwritten under it. A
worker grows a slot that is too small by writing into a new, larger segment. Every segment is
registered with multiprocessing's resource tracker, which removes it if the trainer dies.

Where there is no POSIX shared memory (Windows) or it is full (a container's ``/dev/shm`` is
often 64 MB), :func:`write` returns ``None`` and the batch travels the ordinary way.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

try:  # POSIX systems: the module behind multiprocessing.shared_memory
    import _posixshmem
    from multiprocessing import resource_tracker
except ImportError:  # pragma: no cover - Windows: batches travel pickled
    _posixshmem = None

__all__ = ["UNKNOWN", "SlotPool", "Ticket", "Written", "available", "write"]

_names = itertools.count()
_GROWTH = 1.25  # a new segment has room for batches a quarter larger than the one that needed it
_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class Ticket:
    """The slot a task may write into: its index, current segment name and size (bytes), and
    what the slot holds: ``(width, lengths)`` of the batch last written there, ``None`` for
    zeros, or ``UNKNOWN`` (a write that failed half-way)."""

    slot: int
    name: str | None
    capacity: int
    holds: tuple[int, np.ndarray] | str | None = None


UNKNOWN = "unknown"


@dataclass(frozen=True)
class Written:
    """What a worker sends back: the segment it wrote (maybe a new, larger one) and the shape."""

    slot: int
    name: str
    capacity: int
    shape: tuple[int, int, int]


def available() -> bool:
    """Whether batches can travel through POSIX shared memory here."""
    return _posixshmem is not None


# -- the worker side -------------------------------------------------------------------------
_mapped: dict[int, tuple[str, mmap.mmap]] = {}  # slot -> (segment name, this process's mapping)


def write(ticket: Ticket, features: np.ndarray, lengths: np.ndarray, width: int) -> Written | None:
    """Write a padded batch ``(len(lengths), width, F)`` into ``ticket``'s slot: sequence ``i``
    is rows ``lengths[:i].sum()`` onward of the packed ``features``, zeros after it. ``None``
    where shared memory cannot hold it (the caller then sends the batch itself)."""
    if _posixshmem is None:
        return None
    shape = (len(lengths), int(width), features.shape[1])
    needed = max(4, int(np.prod(shape)) * 4)
    name, capacity = ticket.name, ticket.capacity
    try:
        if name is None or capacity < needed:
            capacity = max(_MIN_BYTES, int(needed * _GROWTH))
            name, mm = _create(capacity)
            _drop(ticket.slot)
            _mapped[ticket.slot] = (name, mm)
        else:
            cached = _mapped.get(ticket.slot)
            if cached is None or cached[0] != name:
                _drop(ticket.slot)
                _mapped[ticket.slot] = (name, _open(name, capacity))
            mm = _mapped[ticket.slot][1]
    except OSError:  # no room in /dev/shm, no shared memory: the ordinary way
        return None
    rows = _data_rows(shape[1], lengths)
    flat = np.frombuffer(mm, np.float32, capacity // (4 * shape[2]) * shape[2]).reshape(-1, shape[2])
    holds = ticket.holds if name == ticket.name else None  # a new segment is all zeros
    if isinstance(holds, str):  # UNKNOWN: a write failed half-way
        flat[:] = 0.0
    elif holds is not None:  # zero only the rows the last batch wrote that are padding now
        stale = np.zeros(len(flat), dtype=bool)
        stale[_data_rows(*holds)] = True
        stale[rows] = False
        flat[np.flatnonzero(stale)] = 0.0
    flat[rows] = features  # the rest of the batch is zeros already: each byte written once
    del flat  # a mapping can be closed later only if no view of it is left
    return Written(ticket.slot, name, capacity, shape)


def _data_rows(width: int, lengths: np.ndarray) -> np.ndarray:
    """Row indices (in the ``(-1, F)`` view) of the real frames of a batch padded to ``width``."""
    return np.flatnonzero(np.arange(width) < np.asarray(lengths)[:, None])


def _create(capacity: int) -> tuple[str, mmap.mmap]:
    name = f"/islr_{os.getpid()}_{next(_names)}"
    fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    resource_tracker.register(name, "shared_memory")
    try:
        os.ftruncate(fd, capacity)
        if hasattr(os, "posix_fallocate"):
            # Reserve the pages now: a full /dev/shm fails here with ENOSPC instead of killing
            # the worker with SIGBUS at its first write.
            os.posix_fallocate(fd, 0, capacity)
        return name, mmap.mmap(fd, capacity)
    except OSError:
        _unlink(name)
        raise
    finally:
        os.close(fd)


def _open(name: str, capacity: int) -> mmap.mmap:
    fd = _posixshmem.shm_open(name, os.O_RDWR, mode=0o600)
    try:
        return mmap.mmap(fd, capacity)
    finally:
        os.close(fd)


def _drop(slot: int) -> None:
    old = _mapped.pop(slot, None)
    if old is not None:
        old[1].close()


def _unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink(name)
    resource_tracker.unregister(name, "shared_memory")


# -- the trainer side ------------------------------------------------------------------------
@dataclass
class _Slot:
    name: str | None = None
    capacity: int = 0
    mm: mmap.mmap | None = None
    busy: bool = False  # a task may be writing it
    lent: np.ndarray | None = field(default=None, repr=False)  # the array the last batch views
    holds: tuple[int, np.ndarray] | str | None = None  # see Ticket.holds


class SlotPool:
    """The trainer's slots: :meth:`acquire` one for a task, :meth:`take` the batch written into
    it, or :meth:`release` it when the batch is abandoned. Thread-safe."""

    def __init__(self) -> None:
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slots)

    def acquire(self) -> Ticket:
        """A slot no task writes and no live array views (a new one if every slot is in use)."""
        with self._lock:
            free = [i for i, slot in enumerate(self._slots) if not slot.busy and _unused(slot)]
            if free:
                index = free[0]
            else:
                index = len(self._slots)
                self._slots.append(_Slot())
            slot = self._slots[index]
            slot.busy, slot.lent = True, None
            return Ticket(index, slot.name, slot.capacity, slot.holds)

    def take(self, written: Written, lengths: np.ndarray) -> np.ndarray:
        """The padded batch of ``written`` (sequences of ``lengths``), viewing the slot (no copy)."""
        with self._lock:
            slot = self._adopt(written)
            slot.holds = (written.shape[1], np.asarray(lengths))
            flat = np.frombuffer(slot.mm, np.float32, int(np.prod(written.shape)))
            slot.lent, slot.busy = flat, False  # every view of the batch keeps ``flat`` alive
            return flat.reshape(written.shape)

    def release(self, slot_index: int, written: Written | None = None, lengths: np.ndarray | None = None,
                failed: bool = False) -> None:
        """The task of ``slot_index`` will never be taken: abandoned after it wrote ``written``
        (sequences of ``lengths``), cancelled (nothing given), or ``failed`` half-way."""
        with self._lock:
            slot = self._slots[slot_index]
            if written is not None:
                self._adopt(written)
                slot.holds = (written.shape[1], np.asarray(lengths))
            elif failed:
                slot.holds = UNKNOWN
            slot.busy = False

    def close(self) -> None:
        """Remove every segment's name (memory still viewed is freed when its views go)."""
        with self._lock:
            for slot in self._slots:
                if slot.name is not None:
                    _unlink(slot.name)
                if slot.mm is not None and _unused(slot):
                    slot.lent = None
                    slot.mm.close()
            self._slots = []

    def _adopt(self, written: Written) -> _Slot:
        """Map the segment a worker wrote, if it is a new one (and unlink the one it replaced)."""
        slot = self._slots[written.slot]
        if written.name != slot.name:
            if slot.name is not None:
                _unlink(slot.name)
            if slot.mm is not None:
                slot.mm.close()  # the slot was free: nothing views it
            slot.name, slot.capacity, slot.mm = written.name, written.capacity, _open(written.name, written.capacity)
            slot.holds = None
        return slot


def _unused(slot: _Slot) -> bool:
    """Whether nothing outside the pool refers to the last batch's array."""
    # Two references: the slot's attribute and getrefcount's argument. A numpy view, a tensor
    # from ``torch.from_numpy`` or the batch dict itself each hold one more.
    return slot.lent is None or sys.getrefcount(slot.lent) <= 2
