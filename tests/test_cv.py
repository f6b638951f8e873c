"""Participant-grouped cross-validation with seed ensembles, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_config  # noqa: E402
from islr.evaluation.cv import cross_validate  # noqa: E402


def test_cv_folds_seeds_ensemble_and_resume(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, tmp_path / "cache", **{"train.epochs": 2, "data.test_size": 0.0})
    result = cross_validate(cfg, tmp_path / "cv", folds=3, seeds=2)
    assert [r["fold"] for r in result.rows] == [0, 1, 2]
    seen = [p for r in result.rows for p in r["participants"]]
    assert len(seen) == len(set(seen)) == 5  # every signer validates exactly once
    assert sum(r["n"] for r in result.rows) == 6 * 5 * 4
    for row in result.rows:
        assert 0.0 <= row["ensemble_accuracy"] <= 1.0
        splits = [json.loads((tmp_path / "cv" / f"fold{row['fold']}" / f"seed{s}" / "split.json").read_text()) for s in (0, 1)]
        assert splits[0]["valid"] == splits[1]["valid"]  # seeds share the fold (data.split_seed)
        assert not set(splits[0]["train"]["participants"]) & set(row["participants"])
    means = [r["val_accuracy"] for r in result.rows]
    assert result.summary["val_accuracy"]["mean"] == pytest.approx(np.mean(means))
    assert "| mean |" in (tmp_path / "cv" / "cv_summary.md").read_text()

    # The ensemble averages its members' logits.
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.inference.ensemble import EnsemblePredictor
    from islr.inference.predictor import RunPredictor

    raw = read_landmarks(read_train_csv(synth_dir)[0].path)
    ens = EnsemblePredictor(tmp_path / "cv" / "fold0" / "ensemble")
    members = [RunPredictor(tmp_path / "cv" / "fold0" / f"seed{s}").logits(raw) for s in (0, 1)]
    np.testing.assert_allclose(ens.logits(raw), np.mean(members, axis=0), atol=1e-5)

    # A second call finds every member finished and trains nothing (resume of a killed CV).
    stamp = {p: p.stat().st_mtime for p in (tmp_path / "cv").rglob("last.safetensors")}
    again = cross_validate(cfg, tmp_path / "cv", folds=3, seeds=2)
    assert {p: p.stat().st_mtime for p in stamp} == stamp
    assert again.summary["val_accuracy"] == result.summary["val_accuracy"]

    # The ensemble exports as one graph (ONNX directly; Kaggle TFLite through the Keras twin)
    # with the same logits as the averaged members.
    from islr.export.run import export_run

    raws = [read_landmarks(s.path) for s in read_train_csv(synth_dir)[:4]]
    for fmt, name in (("onnx", "ens.onnx"), ("kaggle", "ens.tflite")):
        made = export_run(tmp_path / "cv" / "fold0" / "ensemble", fmt, tmp_path / name, raws=raws)
        assert made.parity is not None and made.parity.passed, made.summary()
