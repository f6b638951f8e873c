"""Metrics in numpy, so both frameworks report identical numbers for identical predictions."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(axis=-1) == labels).mean())


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Fraction of rows whose label is among the k largest logits."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[-1])
    top = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    return float((top == labels[:, None]).any(axis=-1).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[true, predicted]`` counts."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Unweighted mean F1 over the classes present in labels or predictions."""
    cm = confusion_matrix(labels, predictions, num_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean())


def cross_entropy(logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0) -> float:
    """Mean (label-smoothed) cross-entropy, the same definition as the backends' losses."""
    if len(labels) == 0:
        return float("nan")
    z = logits - logits.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    nll = -log_p[np.arange(len(labels)), labels]
    if label_smoothing:
        smooth = -log_p.mean(axis=-1)
        nll = (1 - label_smoothing) * nll + label_smoothing * smooth
    return float(nll.mean())


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy per true class (NaN where a class has no sample)."""
    cm = confusion_matrix(labels, predictions, num_classes)
    support = cm.sum(axis=1)
    return np.divide(np.diag(cm), support, out=np.full(num_classes, np.nan), where=support > 0)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0) -> dict[str, float]:
    """accuracy, top5, macro_f1, loss and n for a set of logits."""
    num_classes = logits.shape[-1]
    predictions = logits.argmax(axis=-1)
    return {
        "accuracy": accuracy(logits, labels),
        "top5": top_k_accuracy(logits, labels, 5),
        "macro_f1": macro_f1(labels, predictions, num_classes),
        "loss": cross_entropy(logits, labels, label_smoothing),
        "n": int(len(labels)),
    }
