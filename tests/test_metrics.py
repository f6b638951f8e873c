"""Numpy metrics against hand-computed cases."""

import numpy as np
import pytest

from islr import metrics as m


def test_accuracy_and_top5_hand_computed():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    labels = np.array([1, 0, 0, 1])
    assert m.accuracy(logits, labels) == 0.5
    assert m.top_k_accuracy(logits, labels, k=2) == 0.75  # row 2: label 0 is the lowest logit
    assert m.top_k_accuracy(logits, labels, k=5) == 1.0  # k capped at the class count


def test_confusion_and_macro_f1():
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0])
    cm = m.confusion_matrix(labels, predictions, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # F1: class0 2*1/(2+2)=0.5, class1 2*2/(2+3)=0.8, class2 0 -> mean 0.4333
    assert m.macro_f1(labels, predictions, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    acc = m.per_class_accuracy(labels, predictions, 4)
    assert acc[:3].tolist() == [0.5, 1.0, 0.0] and np.isnan(acc[3])


def test_cross_entropy_with_label_smoothing_matches_formula():
    logits = np.array([[2.0, 0.0, -1.0]])
    labels = np.array([0])
    log_p = logits - np.log(np.exp(logits).sum())
    assert m.cross_entropy(logits, labels) == pytest.approx(-log_p[0, 0])
    expected = 0.9 * -log_p[0, 0] + 0.1 * -log_p[0].mean()
    assert m.cross_entropy(logits, labels, 0.1) == pytest.approx(expected)


def test_softmax_rows_sum_to_one_and_are_stable():
    p = m.softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(p.sum(-1), 1) and np.allclose(p[0], 0.5) and np.allclose(p[1], [0.25, 0.75])
