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


def test_finish_frees_the_ddp_wrapper_before_leaving_the_group(synth_dir, tmp_path, monkeypatch):
    """DDP's reducer holds the gloo group; left alive, the interpreter's teardown destroyed it, and
    in about 1 run in 5 a process died at exit ("terminate called without an active exception",
    SIGABRT) after training had finished. ``finish`` must leave no DDP wrapper behind."""
    import gc

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from conftest import tiny_config
    from islr.backends.torch_backend import TorchBackend

    # A one-process gloo group stands in for torchrun's; the backend is told it is one of two so
    # that it takes its distributed path (setup wraps the model in DDP, finish leaves the group).
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        backend = TorchBackend()
        monkeypatch.setattr(backend, "world_size", 2)
        backend.setup(tiny_config(synth_dir, tmp_path / "cache"), 12, 3, steps_per_epoch=1)
        assert isinstance(backend.net, DistributedDataParallel)
        backend.finish()
        gc.collect()
        assert not dist.is_initialized()
        assert not [o for o in gc.get_objects() if type(o) is DistributedDataParallel]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
