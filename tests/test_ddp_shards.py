"""Distributed training shards each global batch: two gloo processes train what one process does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from islr.config import save_config
from islr.data.augment import Augmenter
from islr.data.dataset import BatchLoader
from test_loader import toy_loader
from torchrun_helper import failure, torchrun


def test_shards_of_a_batch_are_the_batch_built_whole() -> None:
    whole = toy_loader()
    whole.set_epoch(1)
    order = whole.order()
    for b in range(len(whole)):
        full = whole.batch_of(b, order[b * 8 : (b + 1) * 8], pad=False)
        rows = np.split(full["features"], np.cumsum(full["lengths"])[:-1])
        for rank in range(3):
            part = BatchLoader(whole.dataset, 8, shuffle=True, seed=3, shard=(rank, 3))
            part.set_epoch(1)
            got = part.batch_of(b, order[b * 8 : (b + 1) * 8], pad=False)
            assert int(got["global_size"]) == len(full["y"])
            np.testing.assert_array_equal(got["y"], full["y"][rank::3])
            for row, want in zip(np.split(got["features"], np.cumsum(got["lengths"])[:-1]), rows[rank::3],
                                 strict=True):
                np.testing.assert_array_equal(row, want)


def test_augmenting_part_of_a_batch_gives_that_part_of_the_whole() -> None:
    augmenter: Augmenter = toy_loader().dataset.augmenter
    rng = np.random.default_rng(0)
    seqs = [rng.uniform(0.2, 0.8, (5 + i, 42, 2)).astype(np.float32) for i in range(7)]
    whole = augmenter.apply_batch(seqs, np.random.default_rng(5))
    part = augmenter.apply_batch([seqs[1], seqs[4]], np.random.default_rng(5), positions=[1, 4], total=7)
    for got, want in zip(part, [whole[1], whole[4]], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(synth_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    # SGD: Adam's first steps move a parameter by about lr * sign(gradient) even where the gradient
    # is float noise (summing the shards in another order changes it in the 7th digit), which
    # would compare the noise, not the sharding.
    # 72 training sequences in batches of 71: shards of 36 and 35, then of 1 and none (a process
    # with an empty shard still takes its step).
    overrides = {"train.epochs": 4, "train.batch_size": 71, "train.optimizer": "sgd", "train.lr": 0.05, "augment.mirror": 0.5, "augment.rotate": 0.5,
                 "augment.time_resample": 0.5, "model.params": {"d_model": 16, "num_heads": 2,
                 "dim_feedforward": 32, "num_layers": 1, "dropout": 0.0}}
    config = tmp_path / "ddp.yaml"
    save_config(tiny_config(synth_dir, tmp_path / "cache", **overrides), config)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    base = ["-m", "islr", "train", "--config", str(config), "--no-progress"]
    one = subprocess.run([sys.executable, *base, "--run-dir", str(tmp_path / "one")], capture_output=True,
                         text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    logs = tmp_path / "logs"
    two = torchrun([*base, "--run-dir", str(tmp_path / "two")], logs)
    assert two.returncode == 0, failure(two, logs)
    a = load_file(str(tmp_path / "one" / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoints" / "last.safetensors"))
    weights = [k for k in a if "model" in k and a[k].dtype.kind == "f"]
    assert weights and a.keys() == b.keys()
    differ = max(float(np.abs(a[k] - b[k]).max()) for k in weights)
    assert differ < 1e-5, f"largest weight difference {differ}"
    history = (tmp_path / "two" / "history.json").read_text()
    assert "NaN" not in history and "Infinity" not in history
    # Each process scored half the validation set; the gathered logits give one process's numbers
    # (logits out of order would pair with the wrong labels).
    import json

    one_history, two_history = (json.loads((tmp_path / r / "history.json").read_text()) for r in ("one", "two"))
    for a_row, b_row in zip(one_history, two_history, strict=True):
        for key in ("val_loss", "val_accuracy", "val_top5"):
            assert abs(a_row[key] - b_row[key]) < 1e-5, (key, a_row[key], b_row[key])
