"""Mirror test-time augmentation: one definition in predictors, datasets and exported graphs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from islr.config import AugmentConfig, PreprocessConfig
from islr.data.augment import Augmenter
from islr.data.dataset import LandmarkDataset
from islr.data.preprocess import featurize, prepare
from islr.data.synthetic import generate
from islr.data.tta import mirror_prepared, mirror_raw, mirrored_features
from islr.errors import ConfigError

CONFIGS = [
    PreprocessConfig(),
    PreprocessConfig(landmarks="kaggle118", motion=True, length_mode="variable"),
    PreprocessConfig(landmarks="hands", normalization="seed_normalize", coords=("x", "y", "z")),
]


@pytest.fixture(scope="module")
def raws(tmp_path_factory) -> list[np.ndarray]:
    from islr.data.kaggle import read_landmarks, read_train_csv

    out = tmp_path_factory.mktemp("tta_synth")
    generate(out, signs=3, participants=2, per_sign=1, seed=3, min_frames=8, max_frames=20)
    return [read_landmarks(s.path) for s in read_train_csv(out)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["seed96", "kaggle118-motion", "hands-minmax"])
def test_mirror_is_the_training_augmentation_and_commutes_with_prepare(cfg, raws):
    augmenter = Augmenter.for_preprocess(dataclasses.replace(AugmentConfig(), mirror=1.0), cfg)
    for raw in raws:
        prepared = prepare(raw, cfg)
        mirrored = mirror_prepared(prepared, cfg)
        np.testing.assert_array_equal(mirrored, augmenter.mirror(prepared))
        np.testing.assert_allclose(mirror_prepared(mirrored, cfg), prepared, atol=1e-6)  # twice: no flip
        # Raw-frame mirroring (for graphs that take raw frames) gives the same prepared points.
        np.testing.assert_allclose(prepare(mirror_raw(raw), cfg), mirrored, atol=1e-6)
        np.testing.assert_allclose(mirrored_features(raw, cfg), featurize(mirrored, cfg), atol=0)


def test_dataset_mirror_view_matches_the_predictor_definition(raws):
    cfg = CONFIGS[0]
    ds = LandmarkDataset([prepare(r, cfg) for r in raws], np.zeros(len(raws), np.int64), cfg)
    view = ds.mirror_view()
    for i, raw in enumerate(raws):
        np.testing.assert_array_equal(view[i][0], mirrored_features(raw, cfg))
        np.testing.assert_array_equal(ds[i][0], featurize(prepare(raw, cfg), cfg))
    with pytest.raises(ConfigError, match="--tta"):
        from islr.data.tta import check_tta

        check_tta("flip")


@pytest.fixture(scope="module")
def run_dir(synth_dir, tmp_path_factory):
    from tiny_run import tiny_torch_run

    return tiny_torch_run(synth_dir, tmp_path_factory)


def test_predictor_tta_is_the_mean_of_plain_and_mirrored_logits(run_dir, raws):
    from islr.inference.ensemble import write_ensemble
    from islr.inference.predictor import RunPredictor

    plain = RunPredictor(run_dir)
    tta = RunPredictor(run_dir).set_tta("mirror")
    expected = [(plain.logits(r) + plain.logits(mirror_raw(r))) / 2 for r in raws]
    np.testing.assert_allclose(tta.logits_batch(raws), np.stack(expected), atol=1e-5)
    np.testing.assert_allclose(tta.logits(raws[0]), expected[0], atol=1e-5)
    assert not np.allclose(tta.logits(raws[0]), plain.logits(raws[0]), atol=1e-4)  # the mirror pass matters
    from islr.inference.ensemble import EnsemblePredictor

    ens = EnsemblePredictor(write_ensemble(run_dir.parent / "ens", [run_dir])).set_tta("mirror")
    np.testing.assert_allclose(ens.logits(raws[0]), expected[0], atol=1e-5)


@pytest.mark.parametrize("fmt,name", [("onnx", "tta.onnx"), ("kaggle", "tta.tflite"), ("tflite", "tta_f.tflite")])
def test_exported_graph_computes_mirror_tta_like_the_eager_model(fmt, name, run_dir, raws, tmp_path):
    from islr.export.run import export_run
    from islr.inference.exported import load_predictor
    from islr.inference.predictor import RunPredictor

    made = export_run(run_dir, fmt, tmp_path / name, raws=raws, tta="mirror")
    assert made.parity is not None and made.parity.passed, made.summary()
    exported = load_predictor(tmp_path / name)
    assert exported.tta == exported.info.tta == "mirror"
    eager = RunPredictor(run_dir).set_tta("mirror")
    for raw in raws:
        np.testing.assert_allclose(exported.logits(raw), eager.logits(raw), atol=1e-4)
    if fmt != "kaggle":  # a features graph with TTA inside still gives the plain logits on request
        exported.set_tta("none")
        np.testing.assert_allclose(exported.logits(raws[0]), RunPredictor(run_dir).logits(raws[0]), atol=1e-4)
    else:
        from islr.errors import ModelError

        with pytest.raises(ModelError, match="inside this graph"):
            exported.set_tta("none")


def test_cli_predict_and_evaluate_take_tta(run_dir, synth_dir, tmp_path, capsys):
    import json

    from islr.cli import main as islr
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.inference.predictor import RunPredictor

    sample = read_train_csv(synth_dir)[0]
    assert islr(["predict", str(run_dir), str(sample.path), "--tta", "mirror", "--top-k", "1"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"][0]
    expected = RunPredictor(run_dir).set_tta("mirror").top_k(read_landmarks(sample.path), 1)
    assert top["sign"] == expected.signs[0]
    assert top["probability"] == pytest.approx(expected.probabilities[0], abs=1e-5)
    assert islr(["evaluate", str(run_dir), "--split", "valid", "--tta", "mirror", "--out", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["tta"] == "mirror" and 0.0 <= metrics["accuracy"] <= 1.0
