"""The framework-free training loop.

The :class:`Trainer` owns epochs, validation, callbacks, checkpoints and resume; the
:class:`~islr.backends.base.Backend` owns everything below one epoch (so TensorFlow keeps its
compiled step and PyTorch its plain loop). Validation metrics are computed in numpy from the
backend's logits, so both frameworks print identical numbers for identical predictions.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from islr.backends.base import Backend
from islr.checkpoint_format import checkpoint_file
from islr.config import ExperimentConfig, to_dict
from islr.errors import ConfigError, ModelError
from islr.metrics import classification_metrics, confusion_matrix
from islr.run_dir import RunDir
from islr.training.callbacks import (
    Checkpoint,
    DynamicAugmentation,
    DynamicDropout,
    EarlyStopping,
    History,
)

_HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


class Trainer:
    """Train ``backend`` on ``train_loader``, validate on ``valid_loader``, write ``run_dir``.

    Loaders are iterables of numpy batch dicts with ``len()`` and ``set_epoch(epoch)`` (shuffling
    and augmentation derived from the seed and the epoch, which is what makes resume exact).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        backend: Backend,
        train_loader: Any,
        valid_loader: Any,
        run_dir: str | Path,
        sign_map: dict[str, int],
        augmenter: Any = None,
        callbacks: Iterable[Any] = (),
        is_main_process: bool = True,
    ):
        self.cfg = cfg
        self.backend = backend
        self.train_loader = train_loader
        self.valid_loader = valid_loader
        self.run = RunDir(run_dir)
        self.sign_map = sign_map
        self.sign_names = [name for name, _ in sorted(sign_map.items(), key=lambda kv: kv[1])]
        self.augmenter = augmenter
        self.is_main = is_main_process
        self.should_stop = False
        self.epoch = 0
        self.callbacks: list[Any] = []
        self.history = History()
        self.checkpointer = Checkpoint(cfg.train.monitor, cfg.train.mode)
        self._default_callbacks()
        for callback in callbacks:
            self.add_callback(callback)

    # -- callbacks ---------------------------------------------------------------------------
    def _default_callbacks(self) -> None:
        t = self.cfg.train
        if t.monitor.replace("val_", "") not in ("accuracy", "loss", "top5", "macro_f1"):
            raise ConfigError(f"train.monitor {t.monitor!r}: use val_accuracy, val_loss, val_top5 or val_macro_f1")
        if t.dynamic_dropout:
            self.add_callback(DynamicDropout(t.dropout_init, t.dropout_rate, t.dropout_interval, t.dropout_max))
        if t.dynamic_augmentation:
            self.add_callback(DynamicAugmentation(self.augmenter, t.aug_rate, t.aug_interval, t.aug_max))
        if t.early_stopping:
            self.add_callback(EarlyStopping(t.monitor, t.mode, t.patience, t.min_delta))
        if self.is_main:
            if t.select_best:
                self.add_callback(self.checkpointer)
            self.add_callback(self.history)
            if t.tensorboard:
                from islr.training.tensorboard import TensorBoardLogger

                self.add_callback(TensorBoardLogger(self.run.tensorboard))

    def add_callback(self, callback: Any) -> None:
        """Register a callback object (any object with some ``on_*`` methods)."""
        if not any(hasattr(callback, hook) for hook in _HOOKS):
            raise TypeError(f"{callback!r} has none of the hooks {_HOOKS}")
        self.callbacks.append(callback)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    def _stateful_callbacks(self) -> dict[str, Any]:
        """Callbacks with state to carry across a resume, keyed ``ClassName`` (``ClassName#2`` ...)."""
        out: dict[str, Any] = {}
        for callback in self.callbacks:
            if hasattr(callback, "state_dict") and hasattr(callback, "load_state_dict"):
                key = type(callback).__name__
                n = sum(1 for k in out if k.split("#")[0] == key)
                out[f"{key}#{n + 1}" if n else key] = callback
        return out

    # -- checkpoints -------------------------------------------------------------------------
    def _extra(self, epoch: int, logs: dict[str, Any]) -> dict[str, Any]:
        return {
            "config": to_dict(self.cfg),
            "sign_map": self.sign_map,
            "epoch": epoch,
            "logs": {k: v for k, v in logs.items() if isinstance(v, int | float)},
            "callbacks": {key: c.state_dict() for key, c in self._stateful_callbacks().items()},
            "python_random": random.getstate(),
            "numpy_random": np.random.get_state(),  # noqa: NPY002  (global RNG restored for user callbacks)
        }

    def save_checkpoint(self, tag: str, epoch: int, logs: dict[str, Any]) -> None:
        """Write checkpoint ``tag`` (``best`` or ``last``) with config, sign map and trainer state."""
        if self.is_main:
            self.backend.save_checkpoint(self.run.checkpoints / tag, self._extra(epoch, logs))

    def _resume(self) -> None:
        # A damaged last checkpoint is an error, not a silent fall-back to best: best may be many
        # epochs older, and resuming from it would quietly drop those epochs. islr writes
        # checkpoints atomically, so damage came from outside and the user should see it.
        last = self.run.checkpoints / "last"
        try:
            extra = self.backend.load_checkpoint(last)
        except ModelError as exc:
            best = checkpoint_file(self.run.checkpoints / "best")
            if checkpoint_file(last).exists() and best.exists():
                raise ModelError(f"{exc}; to resume from the best epoch instead, copy {best} over "
                                 f"{checkpoint_file(last)}") from None
            raise
        try:
            states = extra.get("callbacks", {})
            for key, callback in self._stateful_callbacks().items():
                if key in states:
                    callback.load_state_dict(states[key])
            if "dropout" in extra.get("logs", {}):
                self.backend.set_dropout(extra["logs"]["dropout"])
            random.setstate(_as_random_state(extra["python_random"]))
            np.random.set_state(tuple(extra["numpy_random"]))  # noqa: NPY002
            self.epoch = int(extra["epoch"]) + 1
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{checkpoint_file(last)}: the trainer state in it is unusable ({type(exc).__name__}: {exc})") from None

    # -- loop --------------------------------------------------------------------------------
    def evaluate(self, loader: Any) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        """Metrics, logits and labels of ``loader`` (no augmentation, eval mode)."""
        logits = self.backend.predict_logits(loader)
        labels = _labels(loader)
        metrics = classification_metrics(logits, labels, self.cfg.train.label_smoothing) if len(labels) else {}
        return metrics, logits, labels

    def validate(self) -> dict[str, float]:
        """Validation metrics of this epoch. Distributed (a backend with ``gather_rows``): each
        process scores samples ``rank::world`` of the validation set and the logits are
        gathered back in order, so the work is shared and every process gets the same numbers."""
        loader, world = self.valid_loader, int(getattr(self.backend, "world_size", 1))
        gather = getattr(self.backend, "gather_rows", None)
        dataset = getattr(loader, "dataset", None)
        if world <= 1 or gather is None or dataset is None or getattr(loader, "shuffle", False) or not len(loader):
            return self.evaluate(loader)[0]
        from islr.data.dataset import BatchLoader

        rank = int(self.backend.rank)
        part = BatchLoader(dataset.subset(np.arange(rank, len(dataset), world)), loader.batch_size)
        logits = gather(self.backend.predict_logits(part), len(dataset))
        labels = np.asarray(dataset.labels)
        return classification_metrics(logits, labels, self.cfg.train.label_smoothing)

    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train until ``train.epochs`` or early stopping; returns the metrics history."""
        t = self.cfg.train
        if self.is_main:
            self.run.create()
            self.run.save_config(self.cfg)
            self.run.save_sign_map(self.sign_map)
        if resume:
            self._resume()
        self._call("on_train_begin", {})
        if resume and self.epoch >= t.epochs:
            self.should_stop = True
        last_logs: dict[str, Any] = {}
        while self.epoch < t.epochs and not self.should_stop:
            epoch = self.epoch
            self.train_loader.set_epoch(epoch)
            self._call("on_epoch_begin", epoch, {})
            started = time.perf_counter()
            bar = self._progress(epoch)

            def on_batch(index: int, logs: dict[str, float], bar: Any = bar) -> None:
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs.get('loss', math.nan):.3f}", acc=f"{logs.get('accuracy', math.nan):.3f}")
                self._call("on_batch_end", index, logs)

            train_logs = self.backend.train_epoch(self.train_loader, epoch, on_batch)
            epoch_time = time.perf_counter() - started
            if bar is not None:
                bar.close()
            # Distributed: every process validates the same model (BatchNorm statistics are
            # per process otherwise), so they all see the same numbers.
            getattr(self.backend, "synchronize", lambda: None)()
            val_metrics = self.validate()
            logs: dict[str, Any] = {
                "loss": train_logs["loss"],
                "accuracy": train_logs["accuracy"],
                **{f"val_{k}": v for k, v in val_metrics.items() if k != "n"},
                "lr": self.backend.get_lr(),
                "epoch_time": epoch_time,
                "samples_per_s": train_logs.get("samples", 0) / max(epoch_time, 1e-9),
            }
            self._call("on_epoch_end", epoch, logs)
            # Every process stops when any asks to: one that left early would leave the others
            # waiting for it in the next step's all-reduce.
            self.should_stop = getattr(self.backend, "any_process", bool)(self.should_stop)
            self.save_checkpoint("last", epoch, logs)
            if not len(self.valid_loader) or not t.select_best:
                # no validation split, or no selection on it: the final model is the last epoch
                self.save_checkpoint("best", epoch, logs)
            if self.is_main and t.progress:
                shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy", "val_top5", "lr"))
                print(f"epoch {epoch + 1}/{t.epochs} {shown} ({epoch_time:.1f}s)", flush=True)
            last_logs = logs
            self.epoch += 1
        end_logs: dict[str, Any] = {"epoch": self.epoch - 1, **last_logs}
        if self.is_main and len(self.valid_loader):
            _, logits, labels = self.evaluate(self.valid_loader)
            end_logs["confusion_matrix"] = confusion_matrix(labels, logits.argmax(-1), len(self.sign_names))
        self._call("on_train_end", end_logs)
        return self.history.rows

    def _progress(self, epoch: int) -> Any:
        from islr.progress import bars_enabled

        if not (self.is_main and bars_enabled(self.cfg.train.progress)):
            return None
        from tqdm.auto import tqdm

        total = len(self.train_loader)
        if self.cfg.train.limit_batches:
            total = min(total, self.cfg.train.limit_batches)
        return tqdm(total=total, desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}", leave=False, dynamic_ncols=True)


def _labels(loader: Any) -> np.ndarray:
    """The labels of ``loader``'s samples in order (without building its batches if it can tell)."""
    dataset = getattr(loader, "dataset", None)
    if (dataset is not None and hasattr(dataset, "labels") and not getattr(loader, "shuffle", True)
            and not getattr(loader, "drop_last", True) and getattr(loader, "shard", (0, 1))[1] == 1):
        return np.asarray(dataset.labels, dtype=np.int64)
    return np.concatenate([batch["y"] for batch in loader]) if len(loader) else np.zeros(0, np.int64)


def _as_random_state(state: Any) -> tuple:
    """JSON/pickle round trips turn tuples into lists; ``random.setstate`` needs tuples."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
