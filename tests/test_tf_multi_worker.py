"""Several machines with TensorFlow: two workers on localhost (TF_CONFIG, MultiWorkerMirroredStrategy)
train what one process does, and only rank 0 writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from islr.backends.tf_cluster import Cluster, cluster_from_env
from islr.config import save_config
from islr.errors import ConfigError


def tf_config(addresses: list[str], index: int, kind: str = "worker", chief: list[str] | None = None) -> str:
    cluster = {"worker": addresses, **({"chief": chief} if chief else {})}
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


def test_tf_config_gives_rank_and_world_size() -> None:
    two = ["localhost:1", "localhost:2"]
    assert cluster_from_env({}) is None
    assert cluster_from_env({"TF_CONFIG": tf_config(two[:1], 0)}) is None  # one task: one machine
    assert cluster_from_env({"TF_CONFIG": tf_config(two, 1)}) == Cluster(1, 2, tuple(two))
    # A chief is rank 0, the workers follow it.
    assert cluster_from_env({"TF_CONFIG": tf_config(two, 0, chief=["c:1"])}).rank == 1
    assert cluster_from_env({"TF_CONFIG": tf_config(two, 0, "chief", chief=["c:1"])}).rank == 0
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        cluster_from_env({"TF_CONFIG": "{worker"})
    with pytest.raises(ConfigError, match="task .* is not one of the cluster's 0 chief and 2 worker"):
        cluster_from_env({"TF_CONFIG": tf_config(two, 2)})
    with pytest.raises(ConfigError, match=r"\['ps'\] are not supported"):
        cluster_from_env({"TF_CONFIG": json.dumps({"cluster": {"worker": two, "ps": ["p:1"]},
                                                   "task": {"type": "worker", "index": 0}})})


def test_worker_devices_follow_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from islr.backends import get_backend
    from islr.backends.tensorflow_backend import _check_worker_devices

    cpu, gpus = ["/job:worker/replica:0/task:0/device:CPU:0"], ["/job:worker/task:0/device:GPU:0"]
    for name, devices in (("auto", cpu), ("cpu", cpu), ("auto", gpus), ("cuda", gpus)):
        _check_worker_devices(name, devices)
    for name, devices in (("cpu", gpus), ("cuda", cpu), ("cuda:1", gpus)):
        with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES"):
            _check_worker_devices(name, devices)
    # Checked before the strategy starts (this test process keeps its ordinary runtime).
    monkeypatch.setenv("TF_CONFIG", tf_config(["localhost:1", "localhost:2"], 0))
    with pytest.raises(ConfigError, match="no device list"):
        get_backend("tensorflow", devices=cpu)


def test_a_started_runtime_is_a_config_error() -> None:
    """MultiWorkerMirroredStrategy configures collectives at start-up: too late, the user is told so."""
    script = ("import tensorflow as tf; tf.constant(1.0) + 1\n"
              "from islr.backends import get_backend\n"
              "from islr.errors import ConfigError\n"
              "try:\n    get_backend('tensorflow')\nexcept ConfigError as exc:\n    print(exc)\n")
    env = {**os.environ, "TF_CONFIG": tf_config(["localhost:1", "localhost:2"], 0), "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "must be created before TensorFlow runs anything" in done.stdout
    assert "Collective ops must be configured at program startup" in done.stdout


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(command: list[str], env: dict[str, str], run_dirs: list[Path], timeout: float) -> list[tuple[int, str]]:
    """Start one ``islr train`` per worker with its TF_CONFIG; their exit codes and stderr."""
    addresses = [f"localhost:{port}" for port in free_ports(len(run_dirs))]
    procs = [
        subprocess.Popen([*command, "--run-dir", str(run_dir)], env={**env, "TF_CONFIG": tf_config(addresses, i)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i, run_dir in enumerate(run_dirs)
    ]
    results = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            results.append((proc.returncode, err))
    finally:
        for proc in procs:  # a worker left waiting for a dead peer must not outlive the test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.slow
def test_two_tf_workers_match_one_process(synth_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    # 72 training sequences in batches of 71: shards of 36 and 35, then of 1 and none (the worker
    # with the empty shard still joins the step's all-reduce). SGD, not Adam: Adam's first steps
    # move a weight by about lr * sign(gradient) even where the gradient is float noise (the
    # all-reduce sums in another order), which would compare the noise, not the sharding.
    # Clipping every step and AWP in the second epoch: both must see the global gradient.
    overrides = {"train.epochs": 2, "train.batch_size": 71, "train.optimizer": "sgd", "train.lr": 0.05,
                 "train.grad_clip": 0.5, "train.awp_start_epoch": 1, "train.awp_lambda": 0.5,
                 "augment.mirror": 0.5, "augment.rotate": 0.5,
                 "model.params": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "num_layers": 1,
                                  "dropout": 0.0}}
    config = tmp_path / "multi_worker.yaml"
    save_config(tiny_config(synth_dir, tmp_path / "cache", framework="tensorflow", **overrides), config)
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "islr", "train", "--config", str(config), "--no-progress"]
    one = subprocess.run([*command, "--run-dir", str(tmp_path / "one")], capture_output=True, text=True,
                         timeout=240, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    # Each worker gets its own run directory, as on separate machines: only rank 0 may write one.
    workers = [tmp_path / "rank0", tmp_path / "rank1"]
    for rank, (code, err) in enumerate(run_workers(command, env, workers, timeout=240)):
        assert code == 0, f"worker {rank}: {err[-3000:]}"
    assert not workers[1].exists()
    files = {p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file()}
    assert {p.relative_to(workers[0]) for p in workers[0].rglob("*") if p.is_file()} == files
    assert Path("checkpoints/last.safetensors") in files and Path("test_metrics.json") in files

    a = load_file(str(tmp_path / "one" / "checkpoints" / "last.safetensors"))
    b = load_file(str(workers[0] / "checkpoints" / "last.safetensors"))
    weights = [k for k in a if k.startswith("/state/model/") and a[k].dtype.kind == "f"]
    assert weights and a.keys() == b.keys()
    differ = max(float(np.abs(a[k] - b[k]).max()) for k in weights)
    assert differ < 1e-5, f"largest weight difference {differ}"
    # Loss and accuracy are those of the global batches, not of rank 0's shards.
    single, multi = (json.loads((d / "history.json").read_text()) for d in (tmp_path / "one", workers[0]))
    assert len(single) == len(multi) == 2
    for row_one, row_two in zip(single, multi, strict=True):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert row_two[key] == pytest.approx(row_one[key], abs=1e-5), key
