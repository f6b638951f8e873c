"""Limit a framework's CPU threads, for latency numbers that compare across machines.

TensorFlow fixes its thread pools when its runtime starts, so call :func:`limited_threads` before
anything builds a TensorFlow model; afterwards it changes nothing and reports the threads in effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def limited_threads(framework: str, threads: int = 1) -> Iterator[int | None]:
    """Run the ``with`` body with ``threads`` intra-op threads; yields the number in effect (None: unknown)."""
    if framework == "torch":
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield torch.get_num_threads()
        finally:
            torch.set_num_threads(previous)
        return
    if framework == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # runtime already initialised: settings are fixed
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        yield tf.config.threading.get_intra_op_parallelism_threads() or None
        return
    yield None
