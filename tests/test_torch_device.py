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


def test_awp_step_never_waits_for_the_device(synth_dir, tmp_path, monkeypatch):
    """AWP decides on the device: no tensor is turned into a Python bool or number (on a GPU each
    such read waits for every queued kernel), and a zero gradient still moves nothing."""
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.awp_lambda": 0.5, "train.epochs": 1})
    backend = TorchBackend()
    backend.setup(cfg, 12, 3, steps_per_epoch=1)
    x, mask, y = torch.randn(4, 6, 12), torch.ones(4, 6, dtype=torch.bool), torch.tensor([0, 1, 2, 0])
    backend.loss_fn(backend.net(x, mask), y).backward()
    params = [p for p in backend.model.parameters() if p.grad is not None and p.ndim > 1]
    params[0].grad.zero_()  # a parameter without gradient: AWP must leave it as it is
    before = [p.detach().clone() for p in params]

    def no_host_read(self, *args):
        raise AssertionError("a device value was read on the host")

    for name in ("__bool__", "__float__", "__int__", "item"):
        monkeypatch.setattr(torch.Tensor, name, no_host_read)
    backend._adversarial_step(x, mask, y)  # noqa: SLF001
    monkeypatch.undo()
    for p, old in zip(params, before, strict=True):  # weights restored after the extra gradient
        torch.testing.assert_close(p.detach(), old, rtol=0, atol=1e-6)
