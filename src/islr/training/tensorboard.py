"""A TensorBoard callback that writes event files without importing torch or tensorflow."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from islr.training.callbacks import Callback

if TYPE_CHECKING:
    from islr.training.event_writer import EventFileWriter
    from islr.training.trainer import Trainer

# Loss, accuracy, top-5 and LR are what the issue asks to see per epoch; everything else numeric is logged too.
_TAG_GROUPS = {"loss": "loss", "val_loss": "loss", "accuracy": "accuracy", "val_accuracy": "accuracy",
               "val_top5": "top5", "lr": "lr"}


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a log key: ``loss/train``, ``loss/valid``, ``lr/train``, ... or the key itself."""
    group = _TAG_GROUPS.get(key)
    return f"{group}/{'valid' if key.startswith('val_') else 'train'}" if group else key


def scalar_logs(values: dict[str, Any]) -> dict[str, float]:
    """The loggable entries of ``values`` by tag: real numbers, not bools, not NaN."""
    return {scalar_tag(k): float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)}


class TensorBoardLogger(Callback):
    """Scalars per epoch (grouped as ``loss/train`` ...) and a confusion-matrix image at the end."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writer: EventFileWriter | None = None

    def _open(self) -> EventFileWriter:
        if self._writer is None:
            from islr.training.event_writer import EventFileWriter

            self._writer = EventFileWriter(self.log_dir)
        return self._writer

    def add_scalars(self, step: int, values: dict[str, Any]) -> None:
        """Log every numeric entry of ``values`` at ``step`` under its tag (see :func:`scalar_tag`)."""
        self._open().add_scalars(step, scalar_logs(values))

    def add_png(self, step: int, tag: str, png: bytes) -> None:
        """Log a PNG image at ``step``."""
        self._open().add_png(step, tag, png)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self.add_scalars(epoch, logs)

    def on_train_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        cm = logs.get("confusion_matrix")
        if cm is not None:
            from islr.evaluation.confusion import (
                confusion_png,  # the one drawing of a confusion matrix
            )

            png = confusion_png(np.asarray(cm), trainer.sign_names)
            self.add_png(int(logs.get("epoch", 0)), "confusion_matrix/valid", png)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

