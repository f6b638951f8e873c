"""Trainer callbacks: objects with optional ``on_*`` hooks that receive dict logs.

Hooks (all optional): ``on_train_begin(trainer, logs)``, ``on_epoch_begin(trainer, epoch, logs)``,
``on_batch_end(trainer, batch, logs)``, ``on_epoch_end(trainer, epoch, logs)``,
``on_train_end(trainer, logs)``. A callback may set ``trainer.should_stop = True``. Callbacks that
carry state across epochs implement ``state_dict()`` / ``load_state_dict(state)`` so that
``--resume`` continues exactly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from islr.training.trainer import Trainer


class Callback:
    """Base class; every hook is optional (a plain object with some ``on_*`` methods works too)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max", patience: int = 10, min_delta: float = 0.001):
        if mode not in ("max", "min"):
            raise ValueError("mode must be 'max' or 'min'")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None

    def improved(self, value: float) -> bool:
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        if value is None or math.isnan(value):
            return
        if self.improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]


class Checkpoint(Callback):
    """Save ``last`` after every epoch and ``best`` when ``monitor`` improves (any improvement)."""

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max"):
        self.monitor, self.mode = monitor, mode
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = -1

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor, math.nan)
        better = value > self.best if self.mode == "max" else value < self.best
        if not math.isnan(value) and better:
            self.best, self.best_epoch = value, epoch
            logs["best_epoch"] = epoch
            trainer.save_checkpoint("best", epoch, logs)
        # "last" is written by the trainer itself after every callback ran, so it holds their state.

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class DynamicDropout(Callback):
    """The seed's ``dropout_callback``: start dropout low, multiply it by ``rate`` every
    ``interval`` epochs up to ``max_rate`` (ordinary dropout layers only)."""

    def __init__(self, initial: float = 0.01, rate: float = 1.1, interval: int = 2, max_rate: float = 0.2):
        self.initial, self.rate, self.interval, self.max_rate = initial, rate, interval, max_rate
        self.current = initial

    def on_train_begin(self, trainer: Trainer, logs: dict[str, float]) -> None:
        trainer.backend.set_dropout(self.current)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.interval == 0:
            self.current = min(self.current * self.rate, self.max_rate)
            trainer.backend.set_dropout(self.current)
        logs["dropout"] = self.current

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = state["current"]


class DynamicAugmentation(Callback):
    """The seed's ``augmentation_increase_callback``: multiply every augmentation probability by
    ``rate`` every ``interval`` epochs, capped at ``max_p``."""

    def __init__(self, augmenter: Any, rate: float = 1.5, interval: int = 5, max_p: float = 0.35):
        self.augmenter, self.rate, self.interval, self.max_p = augmenter, rate, interval, max_p

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.augmenter is None:
            return
        if (epoch + 1) % self.interval == 0:
            self.augmenter.scale_probabilities(self.rate, self.max_p)
        probabilities = [p for p in self.augmenter.probabilities.values() if p > 0]
        if probabilities:
            logs["aug_p_max"] = max(probabilities)

    def state_dict(self) -> dict[str, Any]:
        return {"probabilities": dict(self.augmenter.probabilities)} if self.augmenter is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, p in state.get("probabilities", {}).items():
            self.augmenter.set_probability(name, p)


class History(Callback):
    """Keeps every epoch's logs and writes them as JSON and CSV into the run directory."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch, **logs})
        trainer.run.write_history(self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])
