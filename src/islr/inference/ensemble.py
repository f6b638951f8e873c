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
from islr.run_dir import RunDir, read_json_file

ENSEMBLE_FILE = "ensemble.json"
#: Sub-folder of a self-contained ensemble that holds its copied members.
MEMBERS_DIR = "members"


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble run directory."""
    return (Path(path) / ENSEMBLE_FILE).exists()


def write_ensemble(out_dir: str | Path, members: Sequence[str | Path], copy_members: bool = False,
                   checkpoint: str | None = None, names: Sequence[str] | None = None) -> Path:
    """Create an ensemble run directory over ``members`` (checked for matching preprocessing and signs).

    By default the members are referenced by relative paths. ``copy_members`` copies them into
    ``out_dir/members/<name>`` (config, sign map, history and checkpoints), so the directory is
    self-contained and keeps working when moved; with ``checkpoint`` (``last``) only that
    checkpoint is copied, under both names ``best`` and ``last``, so every verb's default loads it.
    """
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
    if copy_members:
        names = list(names) if names is not None else [f"{i:02d}-{r.path.name}" for i, r in enumerate(runs)]
        if len(set(names)) != len(runs):
            raise ModelError(f"member names must be unique, got {names}")
        listed = [f"{MEMBERS_DIR}/{_copy_member(r, out / MEMBERS_DIR / n, checkpoint).name}" for r, n in zip(runs, names, strict=True)]
    else:
        listed = ["../" + str(Path(r.path).resolve().relative_to(out.resolve().parent)) for r in runs]
    (out / ENSEMBLE_FILE).write_text(json.dumps({"members": listed, "combine": "mean_logits"}, indent=2))
    shutil.copyfile(runs[0].config_path, out / "config.yaml")
    shutil.copyfile(runs[0].path / "sign_map.json", out / "sign_map.json")
    return out


def _copy_member(run: RunDir, dest: Path, checkpoint: str | None) -> Path:
    """Copy what a predictor needs of ``run`` to ``dest`` (replacing an earlier copy)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "sign_map.json", "history.json", "split.json"):
        if (run.path / name).exists():
            shutil.copyfile(run.path / name, dest / name)
    files = sorted(run.checkpoints.glob(f"{checkpoint}.*" if checkpoint else "*"))
    if not files:
        raise ModelError(f"{run.path}: no {checkpoint or 'checkpoint'} files in {run.checkpoints}")
    for file in files:
        if checkpoint:  # the chosen checkpoint under both names
            suffix = file.name[len(checkpoint):]
            for tag in ("best", "last"):
                shutil.copyfile(file, dest / "checkpoints" / f"{tag}{suffix}")
        else:
            shutil.copyfile(file, dest / "checkpoints" / file.name)
    return dest


def member_dirs(path: str | Path) -> list[Path]:
    """Member run directories of an ensemble, resolved relative to it."""
    file = Path(path) / ENSEMBLE_FILE
    data = read_json_file(file)
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
        raise ModelError(f"{file}: expected {{\"members\": [run directory, ...]}}")
    return [(Path(path) / m).resolve() for m in members]


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
