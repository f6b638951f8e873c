"""`torchrun --nproc_per_node=2 -m islr train` runs DistributedDataParallel (gloo on CPU)."""

from __future__ import annotations

import json

import pytest

from torchrun_helper import failure, torchrun


@pytest.mark.slow
def test_torchrun_two_processes_write_one_run(synth_dir, tmp_path):
    run = tmp_path / "run"
    cmd = ["-m", "islr", "train", "--data-dir", str(synth_dir),
           "--model", "transformer", "--epochs", "2", "--run-dir", str(run), "--cache-dir", str(tmp_path / "cache"),
           "--no-progress", "--model.params.d_model", "32", "--model.params.num_layers", "1",
           "--model.params.dim_feedforward", "32", "--model.params.num_heads", "2", "--train.tensorboard", "false"]
    logs = tmp_path / "logs"
    done = torchrun(cmd, logs)
    assert done.returncode == 0, failure(done, logs)
    assert done.stdout.count("run: ") == 1  # only the first process reports
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and all(r["loss"] > 0 for r in history)
    assert (run / "checkpoints" / "best.safetensors").exists()
