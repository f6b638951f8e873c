"""``tf.data`` views of the framework-free numpy batches (the seed's ``DatasetWithLen``).

Training does not need this module: the TensorFlow backend feeds the same numpy batches as the
torch backend straight to its compiled step. It is for code that wants a ``tf.data.Dataset``
(``model.fit``, ``model.evaluate``, TFLite calibration) over exactly those batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

Batch = dict[str, np.ndarray]


def batch_signature(feature_dim: int) -> dict[str, tf.TensorSpec]:
    """The ``tf.TensorSpec`` of one batch dict: batch and time dimensions left open."""
    return {
        "x": tf.TensorSpec((None, None, feature_dim), tf.float32, name="x"),
        "mask": tf.TensorSpec((None, None), tf.bool, name="mask"),
        "y": tf.TensorSpec((None,), tf.int64, name="y"),
    }


def to_tf_dataset(batches: Iterable[Batch], feature_dim: int) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` yielding the batch dicts of ``batches``, prefetched.

    Each pass over the dataset iterates ``batches`` again, so a loader that reshuffles per epoch
    (``set_epoch``) gives the new order. Arrays are cast to float32 / bool / int64.
    """

    def generate() -> Iterator[dict[str, np.ndarray]]:
        for batch in batches:
            yield {
                "x": np.asarray(batch["x"], np.float32),
                "mask": np.asarray(batch["mask"], bool),
                "y": np.asarray(batch["y"], np.int64),
            }

    dataset = tf.data.Dataset.from_generator(generate, output_signature=batch_signature(feature_dim))
    return dataset.prefetch(tf.data.AUTOTUNE)


class DatasetWithLen:
    """A ``tf.data.Dataset`` with a known number of batches (``len()``) for progress bars.

    ``source`` is the loader the dataset reads from; ``set_epoch`` is forwarded to it so this
    object can stand in for the loader in :class:`islr.training.trainer.Trainer`.
    """

    def __init__(self, tf_dataset: tf.data.Dataset, length: int, source: Any = None):
        self.tf_dataset = tf_dataset
        self.length = int(length)
        self.source = source

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tf_dataset)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the source loader (its shuffling and augmentation depend on it)."""
        setter = getattr(self.source, "set_epoch", None)
        if setter is not None:
            setter(epoch)


def from_loader(loader: Any, feature_dim: int) -> DatasetWithLen:
    """Wrap a numpy batch loader (``len()`` and ``set_epoch``) as a :class:`DatasetWithLen`."""
    return DatasetWithLen(to_tf_dataset(loader, feature_dim), len(loader), source=loader)


def get_tf_dataset(dataloader: DatasetWithLen) -> tf.data.Dataset:
    """The seed's ``get_TF_Dataset``: the ``tf.data.Dataset`` inside a :class:`DatasetWithLen`."""
    return dataloader.tf_dataset
