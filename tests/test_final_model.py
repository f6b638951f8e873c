"""A final model from every signer (no validation split) and CV folds exported as one ensemble."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import tiny_config
from islr.cli import main as islr


def test_training_without_validation_or_test_keeps_the_last_epoch(synth_dir, tmp_path):
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.inference.predictor import RunPredictor
    from islr.training.pipeline import describe, train

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"data.valid_size": 0, "data.test_size": 0, "train.epochs": 3,
                                                       "train.early_stopping": True, "train.patience": 1})
    result = train(cfg, tmp_path / "run")
    assert [r["epoch"] for r in result.history] == [0, 1, 2]  # fixed epochs: nothing to stop on
    assert not any(k.startswith("val_") for r in result.history for k in r)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["valid"]["sequence_ids"] == split["test"]["sequence_ids"] == []
    assert len(split["train"]["sequence_ids"]) == len(read_train_csv(synth_dir))
    assert result.test_metrics == {}
    assert "no validation split" in describe(result) and "nan" not in describe(result)
    raw = read_landmarks(read_train_csv(synth_dir)[0].path)
    np.testing.assert_array_equal(RunPredictor(tmp_path / "run", "best").logits(raw),
                                  RunPredictor(tmp_path / "run", "last").logits(raw))  # the model is the last epoch


def test_cv_export_writes_one_self_contained_ensemble(synth_dir, tmp_path, capsys):
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.evaluation.cv import cross_validate
    from islr.inference.ensemble import EnsemblePredictor, member_dirs
    from islr.inference.predictor import RunPredictor

    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 1, "data.test_size": 0.0})
    result = cross_validate(cfg, tmp_path / "cv", folds=2, tta="none", export_dir=tmp_path / "final")
    assert result.summary["export_dir"] == str(tmp_path / "final")
    moved = tmp_path / "elsewhere" / "final-moved"
    moved.parent.mkdir()
    shutil.move(tmp_path / "final", moved)  # self-contained: works after a move
    assert [p.name for p in member_dirs(moved)] == ["fold0-seed0", "fold1-seed0"]
    assert all(p.is_relative_to(moved) for p in member_dirs(moved))

    samples = read_train_csv(synth_dir)
    raw = read_landmarks(samples[0].path)
    folds = [RunPredictor(tmp_path / "cv" / f"fold{k}" / "seed0", "last").logits(raw) for k in (0, 1)]
    np.testing.assert_allclose(EnsemblePredictor(moved).logits(raw), np.mean(folds, axis=0), atol=1e-5)

    capsys.readouterr()
    assert islr(["predict", str(moved), str(samples[0].path), "--top-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"][0]["sign"] in {s.sign for s in samples}
    assert islr(["evaluate", str(moved), "--data-dir", str(synth_dir), "--split", "all", "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == len(samples)
    assert islr(["export", str(moved), "--format", "onnx", "--out", str(tmp_path / "final.onnx"),
                 "--check-dir", str(synth_dir), "--check-count", "3"]) == 0
    capsys.readouterr()
    # A folder that holds something else is refused before any training.
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    from islr.errors import ConfigError

    with pytest.raises(ConfigError, match="busy"):
        cross_validate(cfg, tmp_path / "cv", folds=2, export_dir=tmp_path / "busy")
