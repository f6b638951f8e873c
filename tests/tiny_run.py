"""A tiny trained torch run for the inference tests, trained once per test session.

Use it from a test module through a fixture::

    @pytest.fixture(scope="module")
    def run_dir(synth_dir, tmp_path_factory):
        return tiny_torch_run(synth_dir, tmp_path_factory)
"""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_config

_RUNS: dict[Path, Path] = {}


def tiny_torch_run(synth_dir: Path, tmp_path_factory) -> Path:
    """Train (once per synthetic folder) a 1-epoch transformer on the synthetic data; its run dir."""
    if synth_dir not in _RUNS:
        import torch

        torch.set_num_threads(1)
        from islr.training.pipeline import train

        root = tmp_path_factory.mktemp("tiny_run")
        cfg = tiny_config(synth_dir, root / "cache", **{"train.epochs": 1})
        train(cfg, root / "run")
        _RUNS[synth_dir] = root / "run"
    return _RUNS[synth_dir]


class StopAfter:
    """A training callback that stops after ``epochs`` epochs, as a killed run would (its
    ``last`` checkpoint is then resumed)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        if epoch + 1 >= self.epochs:
            trainer.should_stop = True
