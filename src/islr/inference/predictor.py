"""Predict signs from raw landmarks with the exact preprocessing a run was trained with.

:class:`RunPredictor` loads a run directory (either framework, through its backend). Every
predictor takes raw ``(frames, 543, 3)`` landmarks, applies :func:`islr.data.preprocess.preprocess`
with the run's saved :class:`~islr.config.PreprocessConfig`, and returns logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from islr.config import ExperimentConfig
from islr.data.preprocess import feature_dim, preprocess
from islr.errors import ModelError
from islr.training.metrics import softmax
from islr.training.run_dir import RunDir


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


class BasePredictor:
    """Shared top-k logic; subclasses implement :meth:`logits_from_features`."""

    cfg: ExperimentConfig
    sign_names: list[str]

    def features(self, raw: np.ndarray) -> np.ndarray:
        return preprocess(raw, self.cfg.preprocess)

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def logits(self, raw: np.ndarray) -> np.ndarray:
        """Logits ``(classes,)`` of one raw ``(frames, 543, 3)`` sequence."""
        return self.logits_from_features(batch_features([self.features(raw)]))[0]

    def top_k(self, raw: np.ndarray, k: int = 5, source: str = "") -> Prediction:
        p = softmax(self.logits(raw)[None])[0]
        order = np.argsort(-p)[:k]
        return Prediction(source, [self.sign_names[i] for i in order], [float(p[i]) for i in order])


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
        candidates = sorted(run.checkpoints.glob(f"{checkpoint}.*"))
        if not candidates:
            raise ModelError(f"{run.path}: no {checkpoint!r} checkpoint in {run.checkpoints}")
        self.backend.load_checkpoint(run.checkpoints / checkpoint)

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.backend.predict_logits([batch])
