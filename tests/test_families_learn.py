"""Every model family learns the synthetic task: clearly better than chance on unseen signers.

Small widths keep the suite fast; the task (6 signs, 5 signers, participant split) is the shared
``synth_dir`` fixture, trained through the real pipeline (cache, augmentation-free loader, trainer).
"""

from __future__ import annotations

import pytest

from conftest import tiny_config

_T = {"d_model": 32, "num_heads": 2, "dim_feedforward": 64, "num_layers": 1}
_Y = {"dim": 32, "num_heads": 2, "expansion_factor": 2, "num_blocks": 1, "drop_rate": 0.0, "attn_dropout": 0.0}
_H = {"lstm_hidden_dim": 32, "d_model": 32, "num_heads": 2, "dim_feedforward": 64, "num_layers": 1}
FAMILIES = {
    "lstm": {"hidden_dim": 48, "num_layers": 1},
    "transformer": _T,
    "yet_another_transformer": _Y,
    "hybrid": _H,
    "cnn_transfer": {"widths": [16, 32]},
    "conv1d_transformer": {"dim": 32, "kernel_size": 5, "num_stages": 1, "conv_per_stage": 2, "num_heads": 2,
                           "drop_rate": 0.0, "late_dropout": 0.0},
    "transformer_ensemble": {"members": [{"name": "transformer", "params": _T}] * 2},
    "hybrid_ensemble": {"members": [{"name": "hybrid", "params": _H}] * 2},
    "yet_another_ensemble": {"members": [{"name": "yet_another_transformer", "params": _Y}] * 2},
}
CHANCE = 1 / 6


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_beats_chance_on_unseen_signers(name, framework, synth_dir, tmp_path):
    from islr.training.pipeline import train

    cfg = tiny_config(synth_dir, tmp_path / "cache", framework, **{"model.name": name, "model.params": FAMILIES[name],
                                                        "train.epochs": 12, "train.early_stopping": False})
    if name == "conv1d_transformer":  # its own inputs: the 1st place's landmarks, lags, variable length
        cfg.preprocess.landmarks, cfg.preprocess.motion, cfg.preprocess.length_mode = "kaggle118", True, "variable"
    result = train(cfg, tmp_path / "run")
    best = max(r["val_accuracy"] for r in result.history)
    assert best >= 2.5 * CHANCE, (name, [round(r["val_accuracy"], 3) for r in result.history])
