"""Class imbalance: epoch sampling weights and loss class weights (numpy only).

Two independent remedies, so cross-validation can choose:

* ``data.sampling`` (:func:`sample_probabilities`): ``uniform`` visits every sample once per
  epoch (a permutation); ``balanced`` draws ``len(dataset)`` samples with replacement, each with
  probability proportional to ``1 / count(its class)``, so every class is equally likely;
  ``sqrt`` uses ``1 / sqrt(count)``, halfway between the two.
* ``train.class_weights`` (:func:`class_weights`): ``balanced`` weights the loss of a sample of
  class ``c`` by ``n / (k * count_c)`` (``n`` training samples, ``k`` classes present), the
  weight scikit-learn calls "balanced"; the batch loss is the mean of weight x per-sample loss.
"""

from __future__ import annotations

import numpy as np

from islr.errors import ConfigError

SAMPLING_MODES = ("uniform", "balanced", "sqrt")
CLASS_WEIGHT_MODES = ("none", "balanced")


def check_sampling(mode: str) -> None:
    """Raise :class:`ConfigError` unless ``mode`` is a known ``data.sampling``."""
    if mode not in SAMPLING_MODES:
        raise ConfigError(f"data.sampling: {mode!r} is not one of {list(SAMPLING_MODES)}")


def check_class_weights(mode: str) -> None:
    """Raise :class:`ConfigError` unless ``mode`` is a known ``train.class_weights``."""
    if mode not in CLASS_WEIGHT_MODES:
        raise ConfigError(f"train.class_weights: {mode!r} is not one of {list(CLASS_WEIGHT_MODES)}")


def sample_probabilities(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-sample draw probabilities for ``mode`` (None for ``uniform``: a plain permutation)."""
    check_sampling(mode)
    labels = np.asarray(labels, dtype=np.int64)
    if mode == "uniform" or len(labels) == 0:
        return None
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    per_class = 1.0 / (counts.astype(np.float64) if mode == "balanced" else np.sqrt(counts))
    weights = per_class[inverse]
    return weights / weights.sum()


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray | None:
    """Loss weight of each class, ``(num_classes,)`` float32, or None for ``none``.

    ``balanced``: ``n / (k * count_c)`` over the ``k`` classes present in ``labels``; a class
    absent from training gets weight 1 (it never occurs in the training loss anyway).
    """
    check_class_weights(mode)
    if mode == "none":
        return None
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ConfigError("train.class_weights=balanced needs training labels; the training split is empty")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(num_classes, dtype=np.float64)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)
