"""The run directory: resolved config, sign map, metrics history, checkpoints, TensorBoard events."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from islr.config import ExperimentConfig, load_config, save_config
from islr.errors import ConfigError
from islr.fileio import atomic_path, atomic_write_text


class RunDir:
    """Paths and small files of one training run.

    Layout::

        config.yaml       resolved ExperimentConfig (loadable by ``islr train --config``)
        sign_map.json     sign -> class index used by this run
        split.json        which participants/sequences were train/valid/test
        history.json/.csv metrics per epoch
        checkpoints/      best.* and last.* (framework-specific files)
        tensorboard/      event files
        metrics.json      written by ``islr evaluate``
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def create(self) -> RunDir:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self

    def save_config(self, cfg: ExperimentConfig) -> None:
        save_config(cfg, self.config_path)

    def load_config(self) -> ExperimentConfig:
        if not self.config_path.exists():
            raise ConfigError(f"{self.path}: not a run directory (no config.yaml)")
        return load_config(self.config_path)

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_text(self.path / name, json.dumps(data, indent=2, default=float))

    def read_json(self, name: str) -> Any:
        path = self.path / name
        if not path.exists():
            raise ConfigError(f"{self.path}: missing {name}")
        return _parse_json(path)

    def save_sign_map(self, sign_map: dict[str, int]) -> None:
        self.write_json("sign_map.json", sign_map)

    def load_sign_map(self) -> dict[str, int]:
        data = self.read_json("sign_map.json")
        if not isinstance(data, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            raise ConfigError(f"{self.path / 'sign_map.json'}: expected a JSON object of sign -> class index")
        return {str(k): int(v) for k, v in data.items()}

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        self.write_json("history.json", rows)
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys]
        with atomic_path(self.path / "history.csv") as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    def read_history(self) -> list[dict[str, Any]]:
        path = self.path / "history.json"
        rows = _parse_json(path) if path.exists() else []
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ConfigError(f"{path}: expected a JSON list of per-epoch objects")
        return rows

    def checkpoint(self, tag: str, suffix: str) -> Path:
        return self.checkpoints / f"{tag}{suffix}"


def _parse_json(path: Path) -> Any:
    """JSON of a run file; anything else (binary, broken) is a ConfigError naming the file."""
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None


def read_json_file(path: str | Path) -> Any:
    """Parse a JSON file of a run or ensemble; a broken or binary file is a ConfigError naming it."""
    return _parse_json(Path(path))
