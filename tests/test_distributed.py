"""`torchrun --nproc_per_node=2 -m islr train` runs DistributedDataParallel (gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_torchrun_two_processes_write_one_run(synth_dir, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")  # installed with torch, next to this python
    assert torchrun.exists(), f"{torchrun} not found: torch is not installed in this environment"
    run = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "islr", "train", "--data-dir", str(synth_dir),
           "--model", "transformer", "--epochs", "2", "--run-dir", str(run), "--cache-dir", str(tmp_path / "cache"),
           "--no-progress", "--model.params.d_model", "32", "--model.params.num_layers", "1",
           "--model.params.dim_feedforward", "32", "--model.params.num_heads", "2", "--train.tensorboard", "false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("run: ") == 1  # only the first process reports
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and all(r["loss"] > 0 for r in history)
    assert (run / "checkpoints" / "best.safetensors").exists()
