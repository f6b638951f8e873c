"""Distributed training ends together and every process validates the same model.

Two gloo processes under torchrun (and, for TensorFlow, two TF_CONFIG workers on localhost). (1) A callback asks only rank 1 to stop after the first epoch
(as early stopping would if the ranks' validation numbers differed): both must stop there; before,
rank 1 left and rank 0 waited for it in the next step's all-reduce. (2) ``conv1d_transformer`` has
BatchNorm, whose running statistics each process updates from its own shard: every process must
validate with the same statistics, so early stopping and checkpoint selection see the same numbers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from islr.config import save_config
from torchrun_helper import failure, torchrun

SCRIPT = r"""
import json, os, sys
from islr.config import load_config
from islr.training.callbacks import Callback
from islr.training.pipeline import train

config, out = sys.argv[1:3]
run_dir = sys.argv[sys.argv.index("--run-dir") + 1]
tf_config = os.environ.get("TF_CONFIG")
rank = json.loads(tf_config)["task"]["index"] if tf_config else int(os.environ["RANK"])

class Record(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        with open(os.path.join(out, f"rank{rank}.jsonl"), "a") as f:
            f.write(json.dumps({"epoch": epoch, "val_loss": logs["val_loss"], "val_accuracy": logs["val_accuracy"]}) + "\n")
        if rank == 1 and epoch == 0 and os.environ.get("STOP_RANK_1") == "1":
            trainer.should_stop = True

train(load_config(config), run_dir, callbacks=(Record(),))
"""


def run_two(tmp_path: Path, config: Path, name: str, stop_rank_1: bool) -> list[list[dict]]:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    logs = tmp_path / f"{name}-logs"
    done = torchrun([str(script), str(config), str(out), "--run-dir", str(out / "run")], logs, timeout=240,
                    STOP_RANK_1="1" if stop_rank_1 else "0")
    assert done.returncode == 0, failure(done, logs)
    return [[json.loads(line) for line in (out / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]


@pytest.mark.slow
def test_ranks_stop_together_and_validate_the_same_model(synth_dir: Path, tmp_path: Path) -> None:
    overrides = {"train.epochs": 3, "train.batch_size": 16, "data.test_size": 0.0, "augment.mirror": 0.5,
                 "model.name": "conv1d_transformer",
                 "model.params": {"dim": 16, "kernel_size": 5, "num_stages": 1, "conv_per_stage": 1, "num_heads": 2,
                                  "drop_rate": 0.0, "attn_dropout": 0.0, "late_dropout": 0.0}}
    config = tmp_path / "ddp.yaml"
    save_config(tiny_config(synth_dir, tmp_path / "cache", **overrides), config)

    rank0, rank1 = run_two(tmp_path, config, "stop", stop_rank_1=True)
    assert [r["epoch"] for r in rank0] == [0] and [r["epoch"] for r in rank1] == [0]  # both stopped
    history = json.loads((tmp_path / "stop" / "run" / "history.json").read_text())
    assert len(history) == 1

    rank0, rank1 = run_two(tmp_path, config, "full", stop_rank_1=False)
    assert len(rank0) == len(rank1) == 3
    assert rank0 == rank1  # the same validation numbers, bit for bit, every epoch


@pytest.mark.slow
def test_tensorflow_workers_stop_together(synth_dir: Path, tmp_path: Path) -> None:
    from test_tf_multi_worker import run_workers

    overrides = {"train.epochs": 3, "data.test_size": 0.0,
                 "model.params": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "num_layers": 1}}
    config = tmp_path / "tf.yaml"
    save_config(tiny_config(synth_dir, tmp_path / "cache", framework="tensorflow", **overrides), config)
    script = tmp_path / "tf_script.py"
    script.write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="", STOP_RANK_1="1")
    runs = [tmp_path / "rank0", tmp_path / "rank1"]
    for rank, (code, err) in enumerate(run_workers([sys.executable, str(script), str(config), str(tmp_path)], env,
                                                   runs, timeout=240)):
        assert code == 0, f"worker {rank}: {err[-3000:]}"
    records = [[json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [r["epoch"] for r in records[0]] == [0] and records[0] == records[1]
    assert len(json.loads((runs[0] / "history.json").read_text())) == 1
