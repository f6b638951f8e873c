"""Predict signs from raw landmarks with the exact preprocessing a run was trained with.

:class:`RunPredictor` loads a run directory (either framework, through its backend);
:mod:`islr.inference.exported` adds ONNX and TFLite files and :func:`~islr.inference.exported.load_predictor`
picks the right one. Every predictor takes raw ``(frames, 543, 3)`` landmarks, applies
:func:`islr.data.preprocess.preprocess` with the saved :class:`~islr.config.PreprocessConfig`, and
returns logits. :func:`predict_files` runs a predictor over parquet files, skipping bad ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from islr.config import ExperimentConfig, PreprocessConfig
from islr.data.preprocess import feature_dim, featurize, prepare, preprocess
from islr.data.tta import check_tta, mirror_prepared
from islr.errors import DataError, ModelError
from islr.metrics import softmax
from islr.run_dir import RunDir

#: Sequences per forward pass when many files are predicted at once.
BATCH_SIZE = 64


@dataclass
class Prediction:
    """Top-k signs of one input."""

    source: str
    signs: list[str]
    probabilities: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.source, "top": [{"sign": s, "probability": round(p, 6)} for s, p in zip(self.signs, self.probabilities, strict=True)]}


def batch_features(features: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Zero-pad feature sequences into ``{"x": (B, T, F), "mask": (B, T)}``."""
    longest = max(len(f) for f in features)
    x = np.zeros((len(features), longest, features[0].shape[-1]), np.float32)
    mask = np.zeros((len(features), longest), bool)
    for i, f in enumerate(features):
        x[i, : len(f)] = f
        mask[i, : len(f)] = True
    return {"x": x, "mask": mask}


def top_k_of(logits: np.ndarray, sign_names: Sequence[str], k: int = 5, source: str = "") -> Prediction:
    """The ``k`` most probable signs of one logit vector ``(classes,)`` (softmax probabilities)."""
    p = softmax(np.asarray(logits, dtype=np.float64)[None])[0]
    order = np.argsort(-p, kind="stable")[: max(1, k)]
    return Prediction(source, [sign_names[i] for i in order], [float(p[i]) for i in order])


class BasePredictor:
    """Shared preprocessing and top-k logic; subclasses implement :meth:`logits_from_features`.

    With ``tta="mirror"`` (:meth:`set_tta`) the logits are the mean of those of the sequence and
    of its mirror (:mod:`islr.data.tta`).
    """

    cfg: ExperimentConfig
    sign_names: list[str]
    tta: str = "none"

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The preprocessing the model was trained with."""
        return self.cfg.preprocess

    @property
    def num_classes(self) -> int:
        return len(self.sign_names)

    def set_tta(self, mode: str) -> BasePredictor:
        """Choose test-time augmentation: ``none`` or ``mirror``; returns the predictor."""
        self.tta = check_tta(mode)
        return self

    def features(self, raw: np.ndarray) -> np.ndarray:
        return preprocess(raw, self.preprocess_config)

    def pass_features(self, raw: np.ndarray) -> list[np.ndarray]:
        """Feature sequences of every TTA pass of one raw sequence: ``[plain]`` or ``[plain, mirror]``."""
        if self.tta != "mirror":
            return [self.features(raw)]
        cfg = self.preprocess_config
        prepared = prepare(raw, cfg)  # mirrored before featurize, as the training augmentation does
        return [featurize(prepared, cfg), featurize(mirror_prepared(prepared, cfg), cfg)]

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def logits_from_passes(self, passes: list[dict[str, np.ndarray]]) -> np.ndarray:
        """The mean logits over the batches of the TTA passes (one batch: plain logits)."""
        if len(passes) == 1:
            return np.asarray(self.logits_from_features(passes[0]), np.float32)
        return np.mean([np.asarray(self.logits_from_features(b), np.float32) for b in passes], axis=0)

    def _logits_of(self, raws: Sequence[np.ndarray]) -> np.ndarray:
        per_raw = [self.pass_features(r) for r in raws]
        passes = [batch_features([f[k] for f in per_raw]) for k in range(len(per_raw[0]))]
        return self.logits_from_passes(passes)

    def logits(self, raw: np.ndarray) -> np.ndarray:
        """Logits ``(classes,)`` of one raw ``(frames, 543, 3)`` sequence (TTA included)."""
        return self._logits_of([raw])[0]

    def logits_batch(self, raws: Sequence[np.ndarray], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Logits ``(n, classes)`` of several raw sequences, ``batch_size`` at a time (zero-padded)."""
        out = [np.zeros((0, self.num_classes), np.float32)]
        for start in range(0, len(raws), batch_size):
            out.append(np.asarray(self._logits_of(raws[start : start + batch_size]), np.float32))
        return np.concatenate(out)

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(classes,)`` of one raw sequence."""
        return softmax(np.asarray(self.logits(raw), np.float64)[None])[0]

    def top_k(self, raw: np.ndarray, k: int = 5, source: str = "") -> Prediction:
        return top_k_of(self.logits(raw), self.sign_names, k, source)


class RunPredictor(BasePredictor):
    """A trained run directory (best checkpoint by default), in its own framework."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best"):
        from islr.backends import get_backend

        run = RunDir(run_dir)
        self.cfg = run.load_config()
        self.sign_map = run.load_sign_map()
        self.sign_names = [s for s, _ in sorted(self.sign_map.items(), key=lambda kv: kv[1])]
        self.backend = get_backend(self.cfg.train.framework)
        self.backend.setup(self.cfg, feature_dim(self.cfg.preprocess), len(self.sign_map), 1)
        if not any(run.checkpoints.glob(f"{checkpoint}.*")):
            raise ModelError(f"{run.path}: no {checkpoint!r} checkpoint in {run.checkpoints}")
        self.backend.load_checkpoint(run.checkpoints / checkpoint)

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.backend.predict_logits([batch])


def parquet_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand inputs: a folder means every ``*.parquet`` under it (sorted); files are kept as given.

    A folder without parquet files is kept as is, so the caller reports it like any bad input.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        found = sorted(path.rglob("*.parquet")) if path.is_dir() else []
        files += found or [path]
    return files


def predict_files(
    predictor: BasePredictor, paths: Iterable[str | Path], k: int = 5, batch_size: int = BATCH_SIZE
) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Top-k predictions for parquet files; unreadable files are skipped.

    Returns ``(predictions, skipped)`` with ``skipped`` as ``(path, reason)`` pairs, both in input order.
    """
    from islr.data.kaggle import read_landmarks

    predictions: list[Prediction] = []
    skipped: list[tuple[str, str]] = []
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        logits = predictor.logits_batch([raw for _, raw in pending], batch_size)
        predictions.extend(top_k_of(row, predictor.sign_names, k, name) for (name, _), row in zip(pending, logits, strict=True))
        pending.clear()

    for path in paths:
        path = Path(path)
        try:
            if path.is_dir():
                raise DataError(path, "folder without *.parquet files")
            raw = read_landmarks(path)
        except DataError as exc:
            skipped.append((str(path), exc.reason))
            continue
        pending.append((str(path), raw))
        if len(pending) >= batch_size:
            flush()
    flush()
    return predictions, skipped
