"""One exception type per failure family; the CLI prints them in one line."""

from __future__ import annotations

from pathlib import Path


class IslrError(Exception):
    """Base of every error islr raises on purpose (the CLI prints these without a traceback)."""


class DataError(IslrError):
    """A data file or table is unusable; carries the file and the reason."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):  # rebuilt from (path, reason) when sent back from a worker process
        return type(self), (self.path, self.reason)


class ConfigError(IslrError):
    """A configuration value or file is invalid."""


class ModelError(IslrError):
    """A model name, checkpoint or exported file cannot be used."""


class TrainingError(IslrError):
    """Training cannot go on: the loss became NaN or infinite. Checkpoints already written are unchanged."""

    def __init__(self, loss: float, epoch: int, batch: int):
        self.loss, self.epoch, self.batch = loss, epoch, batch
        super().__init__(
            f"the training loss became {loss} in epoch {epoch + 1} at batch {batch} (counting from 0; the first "
            "non-finite batch); the checkpoints written before are unchanged. Lower train.lr, set "
            "train.grad_clip, or check that batch's data"
        )


class DeviceError(IslrError):
    """A camera, video or compute device cannot be opened."""


class WriteError(IslrError):
    """An output file could not be written (disk full, permissions); the previous file is intact."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: could not write ({reason}); the previous file, if any, is unchanged")

    def __reduce__(self):  # rebuilt from (path, reason) when sent back from a worker process
        return type(self), (self.path, self.reason)
