"""The Backend protocol: everything below one epoch belongs to the framework.

The trainer hands a backend numpy batches (``{"x": (B, T, F) float32, "mask": (B, T) bool,
"y": (B,) int64}``) and receives plain floats and numpy logits back, so metrics, callbacks and
checkpoint bookkeeping stay framework-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from islr.config import ExperimentConfig

Batch = dict[str, np.ndarray]


@runtime_checkable
class Backend(Protocol):
    """What a framework must provide to be trained by :class:`islr.training.trainer.Trainer`.

    Distributed backends may also provide ``synchronize()`` (make every process's model the
    same before validation) and ``any_process(flag) -> bool`` (True everywhere if True on any
    process, so all stop together); the trainer calls them on every process when present.
    """

    name: str

    def setup(self, cfg: ExperimentConfig, input_dim: int, num_classes: int, steps_per_epoch: int) -> None:
        """Build the model, optimizer, loss and LR schedule from the config."""

    def train_epoch(
        self, batches: Iterable[Batch], epoch: int, on_batch: Callable[[int, dict[str, float]], None] | None = None
    ) -> dict[str, float]:
        """One pass over ``batches``; returns ``{"loss", "accuracy"}`` averaged over samples."""

    def predict_logits(self, batches: Iterable[Batch]) -> np.ndarray:
        """Logits ``(N, classes)`` for every sample of ``batches`` in order (eval mode)."""

    def set_class_weights(self, weights: np.ndarray | None) -> None:
        """Weight each sample's training loss by ``weights[label]`` (None: unweighted)."""

    def get_lr(self) -> float: ...

    def set_dropout(self, rate: float) -> None:
        """Set the rate of every ordinary dropout layer (for dynamic dropout)."""

    def get_dropout(self) -> list[float]: ...

    def num_parameters(self, trainable_only: bool = True) -> int: ...

    def state(self) -> dict[str, Any]:
        """Everything needed to resume exactly: weights, optimizer, schedule, RNG."""

    def load_state(self, state: dict[str, Any]) -> None: ...

    def save_checkpoint(self, path: Path, extra: dict[str, Any]) -> None:
        """Write ``state()`` plus ``extra`` (resolved config, sign map, epoch, metrics)."""

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Restore a checkpoint written by :meth:`save_checkpoint`; returns its ``extra``."""


def account_batches(pending: list[tuple[Any, ...]], losses: list[float], corrects: list[float],
                    totals: dict[str, Any], epoch: int,
                    on_batch: Callable[[int, dict[str, float]], None] | None) -> None:
    """Add read-back batch losses to ``totals`` in order; stop at the first non-finite one.

    ``pending`` holds ``(batch index, loss, correct, n, lr)`` per batch (the device values are
    already read into ``losses`` and ``corrects``, one transfer for all of them); it is cleared.
    """
    from islr.errors import TrainingError

    try:
        for (index, _, _, n, lr), batch_loss, batch_correct in zip(pending, losses, corrects, strict=True):
            if not math.isfinite(batch_loss):
                raise TrainingError(batch_loss, epoch, index)
            totals["loss"] += batch_loss * n
            totals["correct"] += int(batch_correct)
            totals["seen"] += n
            if on_batch is not None:
                on_batch(index, {"loss": batch_loss, "accuracy": batch_correct / max(n, 1), "lr": lr})
    finally:
        pending.clear()
