"""CV where only some participants rotate, cross-domain scoring, per-class recall and mirror TTA."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_config
from islr.config import ExperimentConfig
from islr.data.datamodule import load_split_indices
from islr.errors import ConfigError


def test_only_fold_participants_rotate_and_the_rest_always_trains():
    participants = np.repeat([10, 11, 12, 13, 14, 15], 3)
    cfg = ExperimentConfig()
    cfg.data.folds, cfg.data.test_size, cfg.data.fold_participants = 3, 0.0, (11, 13, 14)
    seen = []
    for fold in range(3):
        cfg.data.fold = fold
        train, valid, test = load_split_indices(cfg, participants, np.zeros(len(participants), np.int64))
        assert len(test) == 0
        assert sorted(np.concatenate([train, valid]).tolist()) == list(range(len(participants)))
        assert len(set(participants[valid].tolist())) == 1  # one rotating signer a fold (3 of them, 3 folds)
        assert {10, 12, 15} <= set(participants[train].tolist())  # never validated on
        seen += np.unique(participants[valid]).tolist()
    assert sorted(seen) == [11, 13, 14]
    cfg.data.fold_participants = (11, 99)
    with pytest.raises(ConfigError, match=r"\[99\]"):
        load_split_indices(cfg, participants, np.zeros(len(participants), np.int64))
    cfg.data.folds, cfg.data.fold_participants = 0, (11,)
    with pytest.raises(ConfigError, match="data.folds"):
        load_split_indices(cfg, participants, np.zeros(len(participants), np.int64))


def test_cv_rotating_participants_tta_per_class_and_other_dataset(synth_dir, tmp_path):
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.data.synthetic import generate
    from islr.evaluation.cv import cross_validate
    from islr.evaluation.evaluate import evaluate_run
    from islr.inference.predictor import RunPredictor

    samples = read_train_csv(synth_dir)
    everyone = sorted({s.participant_id for s in samples})
    rotating = tuple(everyone[:2])
    other = tmp_path / "other"
    generate(other, signs=6, participants=2, per_sign=2, seed=5, min_frames=10, max_frames=24)
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 2, "data.test_size": 0.0,
                                                       "data.fold_participants": ",".join(map(str, rotating))})
    result = cross_validate(cfg, tmp_path / "cv", folds=2, eval_data_dir=other)
    assert sorted(p for r in result.rows for p in r["participants"]) == sorted(rotating)
    for row in result.rows:
        split = json.loads((tmp_path / "cv" / f"fold{row['fold']}" / "seed0" / "split.json").read_text())
        assert set(everyone) - set(rotating) <= set(split["train"]["participants"])
        assert 0.0 <= row["val_accuracy_tta"] <= 1.0 and 0.0 <= row["eval_accuracy"] <= 1.0
        assert set(row["val_per_class"]) == {s.sign for s in samples}
        present = [v for v in row["val_per_class"].values() if v is not None]
        assert row["val_macro_recall"] == pytest.approx(np.mean(present))

        # The TTA score is the accuracy of the mean of plain and mirrored logits, as the predictor computes it.
        run = tmp_path / "cv" / f"fold{row['fold']}" / "seed0"
        ids = set(split["valid"]["sequence_ids"])
        valid = [s for s in samples if s.sequence_id in ids]
        predictor = RunPredictor(run, "last").set_tta("mirror")
        labels = np.array([predictor.sign_names.index(s.sign) for s in valid])
        logits = predictor.logits_batch([read_landmarks(s.path) for s in valid])
        assert row["val_accuracy_tta"] == pytest.approx(float((logits.argmax(-1) == labels).mean()))
        # The fold run is an ordinary run: evaluate scores it on the other dataset too.
        again = evaluate_run(run, data_dir=str(other), split="all", checkpoint="last", out_dir=tmp_path / "ev")
        assert again.metrics["accuracy"] == pytest.approx(row["eval_accuracy"])
    summary = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())["summary"]
    assert summary["fold_participants"] == list(rotating)
    assert {"val_accuracy_tta", "val_macro_recall", "eval_accuracy", "eval_accuracy_tta", "val_per_class"} <= set(summary)
    table = (tmp_path / "cv" / "cv_summary.md").read_text()
    assert "val_accuracy_tta" in table and "eval_accuracy" in table
