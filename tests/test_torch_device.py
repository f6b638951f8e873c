"""The torch backend names the device it chose, and trains through torch.compile."""

from __future__ import annotations

import torch

from conftest import tiny_config
from islr.backends.torch_backend import TorchBackend, describe_device
from islr.training.pipeline import train

torch.set_num_threads(1)


def test_auto_device_is_named_never_silent(synth_dir, tmp_path, capsys):
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.device": "auto", "train.epochs": 1})
    backend = TorchBackend()
    backend.setup(cfg, 12, 3, steps_per_epoch=1)
    assert backend.device_info.startswith(f"torch: device {describe_device(backend.device)} (train.device=auto")
    if backend.device.type == "cpu" and not torch.cuda.is_available():
        assert "cpu (no CUDA or MPS device found)" in backend.device_info
    train(cfg, tmp_path / "run")  # training prints it
    assert backend.device_info in capsys.readouterr().err


def test_compiled_training_matches_eager(synth_dir, tmp_path, monkeypatch):
    # TorchDynamo traces the model; its "eager" backend skips Inductor's C++ code generation
    # (over a minute on 2 cores), which is torch's to test, not ours.
    original = torch.compile
    calls = []

    def compile_eagerly(model, **kwargs):
        calls.append(kwargs)
        return original(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    overrides = {"train.epochs": 1, "train.limit_batches": 2, "train.batch_size": 8, "model.params": {
        "d_model": 16, "num_heads": 2, "dim_feedforward": 32, "num_layers": 1, "dropout": 0.0}}
    eager = train(tiny_config(synth_dir, tmp_path / "cache", **overrides), tmp_path / "eager")
    compiled = train(tiny_config(synth_dir, tmp_path / "cache", **overrides, **{"train.compile": True}),
                     tmp_path / "compiled")
    assert calls == [{"dynamic": False}]  # fixed length: one static shape
    assert abs(compiled.history[0]["loss"] - eager.history[0]["loss"]) < 1e-4
    assert abs(compiled.history[0]["val_loss"] - eager.history[0]["val_loss"]) < 1e-4
