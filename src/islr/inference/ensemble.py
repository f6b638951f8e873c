"""Ensemble runs: several trained runs (e.g. seeds) whose logits are averaged.

An ensemble run directory holds ``ensemble.json`` (``{"members": [relative run dirs]}``) plus the
first member's ``config.yaml`` and ``sign_map.json``, so it opens wherever a run directory does
(``islr evaluate``, ``islr predict``). Members must share preprocessing and sign map.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from islr.config import to_dict
from islr.errors import ModelError
from islr.inference.predictor import BasePredictor, RunPredictor
from islr.training.run_dir import RunDir

ENSEMBLE_FILE = "ensemble.json"


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble run directory."""
    return (Path(path) / ENSEMBLE_FILE).exists()


def write_ensemble(out_dir: str | Path, members: Sequence[str | Path]) -> Path:
    """Create an ensemble run directory over ``members`` (checked for matching preprocessing and signs)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = [RunDir(m) for m in members]
    if not runs:
        raise ModelError("an ensemble needs at least one member run")
    first_cfg, first_map = runs[0].load_config(), runs[0].load_sign_map()
    for run in runs[1:]:
        if to_dict(run.load_config().preprocess) != to_dict(first_cfg.preprocess):
            raise ModelError(f"{run.path}: preprocessing differs from {runs[0].path}; cannot ensemble")
        if run.load_sign_map() != first_map:
            raise ModelError(f"{run.path}: sign map differs from {runs[0].path}; cannot ensemble")
    relative = [str(Path(r.path).resolve().relative_to(out.resolve().parent)) for r in runs]
    (out / ENSEMBLE_FILE).write_text(json.dumps({"members": [f"../{r}" for r in relative], "combine": "mean_logits"}, indent=2))
    shutil.copyfile(runs[0].config_path, out / "config.yaml")
    shutil.copyfile(runs[0].path / "sign_map.json", out / "sign_map.json")
    return out


def member_dirs(path: str | Path) -> list[Path]:
    """Member run directories of an ensemble, resolved relative to it."""
    data = json.loads((Path(path) / ENSEMBLE_FILE).read_text())
    return [(Path(path) / m).resolve() for m in data["members"]]


class _MeanBackend:
    """Looks like a backend to callers that only predict: the mean of the members' logits."""

    def __init__(self, members: list[RunPredictor]):
        self.members = members

    def predict_logits(self, batches: Iterable[dict[str, np.ndarray]]) -> np.ndarray:
        batches = list(batches)
        return np.mean([m.backend.predict_logits(batches) for m in self.members], axis=0)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(m.backend.num_parameters(trainable_only) for m in self.members)


class EnsemblePredictor(BasePredictor):
    """Averages the logits of an ensemble run's members (same preprocessing for all)."""

    def __init__(self, path: str | Path, checkpoint: str = "best"):
        self.members = [RunPredictor(m, checkpoint) for m in member_dirs(path)]
        first = self.members[0]
        self.cfg, self.sign_map, self.sign_names = first.cfg, first.sign_map, first.sign_names
        self.backend: Any = _MeanBackend(self.members)

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.backend.predict_logits([batch])


def open_run(path: str | Path, checkpoint: str = "best") -> BasePredictor:
    """A predictor for a run directory or an ensemble run directory."""
    return EnsemblePredictor(path, checkpoint) if is_ensemble(path) else RunPredictor(path, checkpoint)
