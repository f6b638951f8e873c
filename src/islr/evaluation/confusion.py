"""Confusion summaries that stay readable with hundreds of signs (numpy and matplotlib only).

- :func:`sign_rows`: per-sign recall (accuracy), precision, F1, support and the most common wrong
  prediction, from a confusion matrix;
- :func:`pair_classes`: the signs of the largest off-diagonal cells, for a labelled sub-matrix;
- :func:`confusion_png`: one PNG of a confusion matrix. Up to ``LABELLED_MAX`` signs it is the
  whole matrix with labels and counts; beyond, a small heat map of the whole matrix without tick
  labels beside the labelled sub-matrix of the most-confused signs (250 labels on one axis
  cannot be read at any page size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LABELLED_MAX = 30
"""Largest number of signs drawn as one labelled matrix."""
SUBMATRIX_SIGNS = 25
"""Signs in the labelled sub-matrix of a larger matrix."""


@dataclass(frozen=True)
class SignRow:
    """One sign's scores; ``recall`` is the sign's accuracy (NaN without samples)."""

    sign: str
    support: int
    correct: int
    recall: float
    precision: float
    """Share of the predictions of this sign that were right (NaN when never predicted)."""
    f1: float
    confused_with: str
    """The most common wrong prediction for this sign's samples ('' when none)."""
    confused_count: int


def sign_rows(cm: np.ndarray, names: list[str]) -> list[SignRow]:
    """One :class:`SignRow` per class of ``cm[true, predicted]``, in class order."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    recall = np.divide(tp, support, out=np.full(len(tp), np.nan), where=support > 0)
    precision = np.divide(tp, predicted, out=np.full(len(tp), np.nan), where=predicted > 0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.full(len(tp), np.nan), where=denom > 0)
    off = cm - np.diag(tp)
    wrong = off.argmax(axis=1)
    rows = []
    for i, name in enumerate(names):
        count = int(off[i, wrong[i]])
        rows.append(SignRow(name, int(support[i]), int(tp[i]), float(recall[i]), float(precision[i]), float(f1[i]),
                            names[wrong[i]] if count else "", count))
    return rows


def pair_classes(cm: np.ndarray, k: int = SUBMATRIX_SIGNS) -> list[int]:
    """Up to ``k`` classes taken from the largest off-diagonal cells, largest first.

    Both signs of each pair are added in turn, so the sub-matrix of these classes holds the
    biggest confusions themselves (not just the signs with the most samples).
    """
    off = np.asarray(cm) - np.diag(np.diag(cm))
    chosen: list[int] = []
    for index in np.argsort(-off, axis=None, kind="stable"):
        t, p = np.unravel_index(index, off.shape)
        if off[t, p] == 0 or len(chosen) >= k:
            break
        for c in (int(t), int(p)):
            if c not in chosen and len(chosen) < k:
                chosen.append(c)
    return chosen


def draw_matrix(ax: Any, cm: np.ndarray, names: list[str], classes: list[int], title: str) -> Any:
    """Row-normalised matrix of ``classes`` with labels and non-zero counts written in the cells."""
    sub = cm[np.ix_(classes, classes)]
    rows = np.maximum(cm[classes].sum(axis=1, keepdims=True), 1)
    share = sub / rows
    n = len(classes)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = [names[i] for i in classes]
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            if sub[i, j]:
                ax.text(j, i, str(sub[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return image


def draw_overview(ax: Any, cm: np.ndarray) -> Any:
    """The whole row-normalised matrix as a heat map, no tick labels (square-root colour scale)."""
    from matplotlib.colors import PowerNorm

    rows = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(cm / rows, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"predicted (all {len(cm)} signs, index order)", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.set_title("Whole matrix (colour: share of the true sign, square-root scale)", fontsize=10)
    return image


def confusion_png(cm: np.ndarray, names: list[str], labelled_max: int = LABELLED_MAX,
                  k: int = SUBMATRIX_SIGNS) -> bytes:
    """A readable confusion-matrix PNG for any number of signs (see the module docstring)."""
    from islr.viz.htmlpage import figure_png, pyplot

    plt = pyplot()
    cm = np.asarray(cm, dtype=np.int64)
    n = len(cm)
    if n <= labelled_max:
        return submatrix_png(cm, names, list(range(n)), "Confusion matrix (colour: share of the true sign)")
    classes = pair_classes(cm, k)
    side = max(4.5, 0.42 * len(classes) + 2.2)
    fig, axes = plt.subplots(1, 2, figsize=(side + 8, side), gridspec_kw={"width_ratios": [0.75, 1]})
    draw_overview(axes[0], cm)
    if classes:
        image = draw_matrix(axes[1], cm, names, classes, f"The {len(classes)} most-confused signs (from the largest pairs)")
        fig.colorbar(image, ax=axes[1], fraction=0.046, pad=0.04)
    else:
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.tight_layout()
    return figure_png(fig)


def overview_png(cm: np.ndarray) -> bytes:
    """Only the whole-matrix heat map (for pages that show the sub-matrix separately)."""
    from islr.viz.htmlpage import figure_png, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6))
    image = draw_overview(ax, np.asarray(cm, dtype=np.int64))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return figure_png(fig)


def submatrix_png(cm: np.ndarray, names: list[str], classes: list[int], title: str) -> bytes:
    """Only the labelled matrix of ``classes``."""
    from islr.viz.htmlpage import figure_png, pyplot

    plt = pyplot()
    size = max(4.5, 0.42 * len(classes) + 2.2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = draw_matrix(ax, np.asarray(cm, dtype=np.int64), names, classes, title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return figure_png(fig)

