"""Keras 3 (TensorFlow backend) model zoo: importing this package registers every family.

Each family module defines ``keras.Model`` classes called as ``model([x, mask], training=...)``
with ``x`` (B, T, F) float32 and ``mask`` (B, T) bool, returning logits (B, classes), and
registers a builder ``fn(input_dim, num_classes, **params)`` under the name of
``configs/models/<name>.yaml`` (the same names and parameters as ``islr.models.torch``).
"""

from __future__ import annotations

import os

# Keras reads the backend once, at its first import.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

from islr.errors import ModelError  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ModelError(
        f"islr.models.tensorflow needs the Keras TensorFlow backend, but Keras was loaded with "
        f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow before importing keras)"
    )

from islr.models.tensorflow import (  # noqa: E402,F401  (imported for their registrations)
    cnn_transfer,
    conv1d_transformer,
    ensemble,
    hybrid,
    lstm,
    transformer,
    yet_another_transformer,
)
from islr.models.tensorflow.layers import get_dropout, set_dropout  # noqa: E402

__all__ = ["get_dropout", "set_dropout"]
