"""The framework-free trainer driving the torch backend: learning, early stopping, resume,
dynamic dropout and augmentation, checkpoints, TensorBoard events, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_config  # noqa: E402
from islr.training.pipeline import train  # noqa: E402

torch.set_num_threads(1)


def test_learns_synthetic_task_and_writes_run_dir(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 6, "train.tensorboard": True})
    result = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 6
    assert history[-1]["loss"] < history[0]["loss"]
    # 6 signs: chance is 1/6; unseen signers of a learnable task must do clearly better.
    assert history[-1]["val_accuracy"] > 0.5
    assert result.test_metrics["accuracy"] > 0.5
    assert {"config.yaml", "sign_map.json", "split.json", "history.csv", "test_metrics.json"} <= {p.name for p in run.iterdir()}
    assert (run / "checkpoints" / "best.safetensors").exists() and (run / "checkpoints" / "last.safetensors").exists()
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
    split = json.loads((run / "split.json").read_text())
    assert not set(split["train"]["participants"]) & set(split["valid"]["participants"])
    assert not set(split["train"]["participants"]) & set(split["test"]["participants"])


def test_checkpoint_carries_config_and_sign_map(synth_dir, tmp_path):
    from islr.checkpoint_format import read_checkpoint

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 1})
    train(cfg, tmp_path / "run")
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors", "torch")
    assert ckpt.extra["config"]["model"]["name"] == "transformer"
    assert ckpt.extra["sign_map"] == json.loads((synth_dir / "sign_to_prediction_index_map.json").read_text())


def test_resume_gives_the_same_result_as_an_uninterrupted_run(synth_dir, tmp_path):
    overrides = {"train.epochs": 3, "augment.mirror": 0.5, "augment.rotate": 0.5, "model.params": {
        "d_model": 32, "num_heads": 2, "dim_feedforward": 64, "num_layers": 1, "dropout": 0.3}}
    straight = train(tiny_config(synth_dir, tmp_path / "cache", **overrides), tmp_path / "a")
    # "Kill" after 2 epochs: train 2, then resume the same run dir to 3 epochs.
    first = dict(overrides, **{"train.epochs": 2})
    cfg2 = tiny_config(synth_dir, tmp_path / "cache", **first)
    cfg2.train.epochs = 3  # the schedule must know the full length, as in a killed run
    from islr.training import pipeline
    from tiny_run import StopAfter

    pipeline.train(cfg2, tmp_path / "b", callbacks=(StopAfter(2),))
    resumed = pipeline.train(cfg2, tmp_path / "b", resume=True)
    a = [round(r["loss"], 6) for r in straight.history]
    b = [round(r["loss"], 6) for r in resumed.history]
    assert a == b
    from islr.checkpoint_format import read_checkpoint

    wa = read_checkpoint(tmp_path / "a" / "checkpoints" / "last").state["model"]
    wb = read_checkpoint(tmp_path / "b" / "checkpoints" / "last").state["model"]
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], atol=1e-6, err_msg=key)


def test_early_stopping_stops_when_the_metric_stalls(synth_dir, tmp_path):
    # lr 0 -> nothing improves after the first epoch -> stop after 1 + patience epochs.
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 20, "train.lr": 0.0, "train.patience": 2,
                                                        "train.monitor": "val_loss", "train.mode": "min",
                                                        "train.early_stopping": True})
    result = train(cfg, tmp_path / "run")
    assert len(result.history) == 3


def test_dynamic_dropout_and_augmentation_change_over_epochs(synth_dir, tmp_path):
    from islr.models.torch import get_dropout

    seen = {}

    class Spy:
        def on_epoch_end(self, trainer, epoch, logs):
            seen[epoch] = (sorted(set(get_dropout(trainer.backend.model))), trainer.augmenter.probabilities["mirror"])

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{
        "train.epochs": 4, "train.dynamic_dropout": True, "train.dropout_init": 0.1, "train.dropout_rate": 2.0,
        "train.dropout_interval": 2, "train.dropout_max": 0.3, "train.dynamic_augmentation": True,
        "train.aug_rate": 2.0, "train.aug_interval": 1, "train.aug_max": 0.35, "augment.mirror": 0.1})
    train(cfg, tmp_path / "run", callbacks=(Spy(),))
    # Spy runs after the built-in callbacks: dropout 0.1 -> x2 after epochs 2 and 4 (capped at 0.3).
    assert seen[0][0] == [0.1] and seen[1][0] == [pytest.approx(0.2)] and seen[3][0] == [pytest.approx(0.3)]
    assert [round(seen[e][1], 4) for e in range(4)] == [0.2, 0.35, 0.35, 0.35]


def test_evaluate_writes_metrics_and_matches_training_numbers(synth_dir, tmp_path):
    from islr.evaluation.evaluate import evaluate_run

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 3})
    result = train(cfg, tmp_path / "run")
    ev = evaluate_run(tmp_path / "run", split="test")
    assert ev.metrics["accuracy"] == pytest.approx(result.test_metrics["accuracy"])
    assert ev.metrics["n"] == result.test_metrics["n"]
    for name in ("metrics.json", "per_sign_accuracy.csv", "confusion_matrix.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    # Another dataset with --split all: every sequence is scored with the run's sign map.
    ev_all = evaluate_run(tmp_path / "run", data_dir=str(synth_dir), split="all", out_dir=tmp_path / "other")
    assert ev_all.metrics["n"] == 6 * 5 * 4
    assert np.isfinite(ev_all.logits).all()


@pytest.mark.parametrize("select_best", [True, False])
def test_select_best_off_makes_the_last_epoch_the_model(synth_dir, tmp_path, select_best):
    from islr.checkpoint_format import read_checkpoint

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{
        "train.epochs": 4, "train.early_stopping": False, "train.select_best": select_best, "train.lr": 3e-2})
    train(cfg, tmp_path / "run")
    best = read_checkpoint(tmp_path / "run" / "checkpoints" / "best.safetensors", "torch").extra
    last = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors", "torch").extra
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    if select_best:
        scores = [row["val_accuracy"] for row in history]
        assert best["epoch"] == int(np.argmax(scores))  # the first epoch with the top score
    else:
        assert best["epoch"] == last["epoch"] == 3
