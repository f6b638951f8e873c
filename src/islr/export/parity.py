"""Parity of an exported model with the eager model it came from, on raw landmark sequences.

Both sides get the same raw ``(frames, 543, 3)`` arrays: the reference (a
:class:`~islr.inference.predictor.RunPredictor`) applies the numpy preprocessing and runs the
eager model; the candidate is the exported file run through its own predictor (numpy
preprocessing + ONNX Runtime / LiteRT, or the preprocessing inside a Kaggle graph). Logits are
compared one sequence at a time, so batching and padding play no part.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islr.data.kaggle import read_landmarks, read_train_csv
from islr.errors import DataError
from islr.inference.predictor import BasePredictor, parquet_inputs

#: Largest accepted absolute difference of a logit between the export and the eager model.
DEFAULT_ATOL = 1e-4


@dataclass
class ParityResult:
    """How closely an export's logits follow the eager model's."""

    n: int
    max_abs_diff: float
    top1_agree: int
    atol: float = DEFAULT_ATOL
    worst: str = ""
    """The sequence with the largest difference."""
    sources: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every logit within ``atol`` (a NaN anywhere fails) and the same top-1 everywhere."""
        return self.n > 0 and bool(self.max_abs_diff <= self.atol) and self.top1_agree == self.n

    def as_dict(self) -> dict[str, object]:
        return {"sequences": self.n, "max_abs_diff": self.max_abs_diff, "top1_agree": self.top1_agree,
                "atol": self.atol, "worst": self.worst, "passed": self.passed}

    def __str__(self) -> str:
        verdict = "OK" if self.passed else "FAILED"
        return (f"parity on {self.n} sequences: max |logit difference| {self.max_abs_diff:.2e} "
                f"(limit {self.atol:.0e}), same top-1 {self.top1_agree}/{self.n}: {verdict}")


def compare_logits(reference: np.ndarray, candidate: np.ndarray, sources: Sequence[str] = (),
                   atol: float = DEFAULT_ATOL) -> ParityResult:
    """Compare two ``(n, classes)`` logit arrays row by row (NaN or a shape mismatch counts as infinite)."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    names = list(sources) or [str(i) for i in range(len(reference))]
    if reference.shape != candidate.shape:
        return ParityResult(len(reference), float("inf"), 0, atol, f"shapes {reference.shape} != {candidate.shape}", names)
    if not len(reference):
        return ParityResult(0, 0.0, 0, atol, "", names)
    diff = np.abs(reference - candidate).max(axis=1)
    diff = np.where(np.isfinite(diff), diff, np.inf)  # NaN never passes
    top1 = int((reference.argmax(axis=1) == candidate.argmax(axis=1)).sum())
    worst = int(np.argmax(diff))
    return ParityResult(len(reference), float(diff.max()), top1, atol, names[worst], names)


def check_parity(reference: BasePredictor, candidate: BasePredictor, raws: Sequence[np.ndarray],
                 sources: Sequence[str] = (), atol: float = DEFAULT_ATOL) -> ParityResult:
    """Logits of ``candidate`` vs ``reference`` on each raw sequence (one at a time)."""
    ref = np.stack([np.asarray(reference.logits(r), np.float32) for r in raws]) if len(raws) else np.zeros((0, 0))
    out = np.stack([np.asarray(candidate.logits(r), np.float32) for r in raws]) if len(raws) else np.zeros((0, 0))
    return compare_logits(ref, out, sources, atol)


def load_raws(paths: Sequence[str | Path], limit: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Read parquet files (folders are searched for ``*.parquet``), skipping unreadable ones.

    Returns ``(raws, sources)``; at most ``limit`` sequences. :class:`DataError` if none is readable.
    """
    raws: list[np.ndarray] = []
    sources: list[str] = []
    files = parquet_inputs(paths)
    for path in files:
        if limit is not None and len(raws) >= limit:
            break
        try:
            raws.append(read_landmarks(path))
        except DataError:
            continue
        sources.append(str(path))
    if not raws:
        raise DataError(", ".join(str(p) for p in paths) or None, "no readable parquet file to check parity on")
    return raws, sources


def dataset_raws(data_dir: str | Path, limit: int) -> tuple[list[np.ndarray], list[str]]:
    """The first ``limit`` readable sequences listed in a Kaggle-layout folder's train.csv."""
    samples = read_train_csv(data_dir)
    return load_raws([s.path for s in samples], limit)


def synthetic_raws(count: int = 6, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """A few sequences of the synthetic signer (:mod:`islr.data.synthetic`), made in a temporary folder."""
    from islr.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        per_sign = max(1, (count + 1) // 2)
        generate(tmp, signs=2, participants=1, per_sign=per_sign, seed=seed, min_frames=8, max_frames=40)
        raws, sources = dataset_raws(tmp, count)
    return raws, [f"synthetic:{Path(s).name}" for s in sources]


__all__ = ["DEFAULT_ATOL", "ParityResult", "check_parity", "compare_logits", "dataset_raws", "load_raws", "synthetic_raws"]
