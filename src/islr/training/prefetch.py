"""Run a batch iterator in a background thread so numpy augmentation overlaps the model step."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(iterable: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield the items of ``iterable`` while the next ``depth`` are produced in a thread."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterable:
                if stop.is_set():
                    return
                items.put(item)
        except BaseException as exc:  # re-raised in the consumer, with its traceback
            items.put(exc)
            return
        items.put(_DONE)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
