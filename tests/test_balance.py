"""Class imbalance: balanced epoch sampling and class-weighted losses in both frameworks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from islr.config import PreprocessConfig
from islr.data.balance import class_weights, sample_probabilities
from islr.data.dataset import BatchLoader, LandmarkDataset
from islr.errors import ConfigError

PRE = PreprocessConfig(landmarks="hands", normalization="none", length_mode="variable", max_len=8)


def ten_to_one(n_major: int = 1000, n_minor: int = 100) -> LandmarkDataset:
    seqs = [np.full((2, 42, 2), 0.5, np.float32)] * (n_major + n_minor)
    labels = np.array([0] * n_major + [1] * n_minor)
    return LandmarkDataset(seqs, labels, PRE)


def epoch_labels(loader: BatchLoader, epoch: int) -> np.ndarray:
    loader.set_epoch(epoch)
    return loader.dataset.labels[loader.order()]


def test_balanced_sampling_equalises_classes_on_a_ten_to_one_set():
    ds = ten_to_one()
    n = len(ds)
    uniform = BatchLoader(ds, 64, shuffle=True, seed=7)
    assert np.bincount(epoch_labels(uniform, 0)).tolist() == [1000, 100]  # a permutation: each once
    balanced = BatchLoader(ds, 64, shuffle=True, seed=7, sampling="balanced")
    for epoch in range(3):
        minor = int((epoch_labels(balanced, epoch) == 1).sum())
        # Each draw is the minority class with probability 1/2: Binomial(1100, 0.5), 5 sigma.
        assert abs(minor - n / 2) <= 5 * math.sqrt(n * 0.25), minor
    assert len(balanced) == len(uniform) == math.ceil(n / 64)  # an epoch keeps its length
    # sqrt: class mass 1000/sqrt(1000) against 100/sqrt(100).
    p_minor = 10 / (10 + math.sqrt(1000))
    sqrt = BatchLoader(ds, 64, shuffle=True, seed=7, sampling="sqrt")
    minor = int((epoch_labels(sqrt, 0) == 1).sum())
    assert abs(minor - n * p_minor) <= 5 * math.sqrt(n * p_minor * (1 - p_minor)), minor


def test_balanced_order_depends_only_on_seed_and_epoch():
    ds = ten_to_one(50, 5)
    a = BatchLoader(ds, 8, shuffle=True, seed=3, sampling="balanced")
    b = BatchLoader(ds, 8, shuffle=True, seed=3, sampling="balanced")
    a.set_epoch(0)
    a.set_epoch(4)  # a resumed loader jumps straight to epoch 4
    b.set_epoch(4)
    np.testing.assert_array_equal(a.order(), b.order())
    np.testing.assert_array_equal(a.batch(2)["y"], list(b)[2]["y"])
    b.set_epoch(5)
    assert not np.array_equal(a.order(), b.order())
    # Unshuffled loaders (validation) never resample.
    np.testing.assert_array_equal(BatchLoader(ds, 8, sampling="balanced").order(), np.arange(len(ds)))


def test_sampling_probabilities_and_class_weights_by_hand():
    labels = np.array([0, 0, 0, 1, 2, 2])
    p = sample_probabilities(labels, "balanced")
    np.testing.assert_allclose(p, [1 / 9] * 3 + [1 / 3] + [1 / 6] * 2)
    assert sample_probabilities(labels, "uniform") is None
    # n / (k * count): 6 / (3 * [3, 1, 2]); class 3 never occurs in training -> 1.
    np.testing.assert_allclose(class_weights(labels, 4, "balanced"), [2 / 3, 2, 1, 1])
    assert class_weights(labels, 4, "none") is None
    with pytest.raises(ConfigError, match="data.sampling"):
        sample_probabilities(labels, "oversample")
    with pytest.raises(ConfigError, match="train.class_weights"):
        class_weights(labels, 4, "inverse")


# Hand-computed: logits rows (2, 0), (0, 1), (1, 1); labels 0, 1, 1; weights 3/2, 3/4.
LOGITS = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
LABELS = np.array([0, 1, 1])
WEIGHTS = np.array([1.5, 0.75], np.float32)


def hand_loss_terms(smoothing: float) -> list[float]:
    """Label-smoothed cross-entropy of each row of LOGITS, written out by hand."""
    nll = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    # mean over classes of -log p: row (2, 0) gives (log(1+e^-2) + 2 + log(1+e^-2)) / 2, etc.
    uniform = [(2 * math.log(1 + math.exp(-2)) + 2) / 2, (2 * math.log(1 + math.exp(-1)) + 1) / 2, math.log(2)]
    return [(1 - smoothing) * a + smoothing * b for a, b in zip(nll, uniform, strict=True)]


def hand_loss(smoothing: float) -> float:
    per = hand_loss_terms(smoothing)
    return (1.5 * per[0] + 0.75 * per[1] + 0.75 * per[2]) / 3


def smoothed_losses(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> np.ndarray:
    """Label-smoothed cross-entropy of each row, in numpy (checked against the hand values below)."""
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return (1 - smoothing) * -log_p[np.arange(len(labels)), labels] + smoothing * -log_p.mean(-1)


def test_the_numpy_loss_is_the_hand_computed_one():
    per = smoothed_losses(LOGITS, LABELS, 0.1)
    assert per.tolist() == pytest.approx(hand_loss_terms(0.1), abs=1e-6)
    assert float((WEIGHTS[LABELS] * per).mean()) == pytest.approx(hand_loss(0.1), abs=1e-6)


def _backend(framework: str, smoothing: float):
    from islr.backends import get_backend
    from islr.config import ExperimentConfig

    cfg = ExperimentConfig()
    cfg.train.framework, cfg.train.device, cfg.train.label_smoothing = framework, "cpu", smoothing
    cfg.model.params = {"d_model": 8, "num_heads": 2, "dim_feedforward": 16, "num_layers": 1, "dropout": 0.0}
    backend = get_backend(framework)
    backend.setup(cfg, 6, 2, 1)
    return backend


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_class_weights_weight_the_training_loss_exactly(framework):
    backend = _backend(framework, 0.1)
    backend.cfg.train.lr, backend.cfg.train.schedule = 0.0, "constant"  # lr 0: the weights do not move
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(5, 4, 6)).astype(np.float32), "mask": np.ones((5, 4), bool),
             "y": np.array([0, 1, 1, 0, 1])}
    per = smoothed_losses(backend.predict_logits([batch]), batch["y"], 0.1)
    plain = backend.train_epoch([batch], 0)["loss"]
    backend.set_class_weights(WEIGHTS)
    weighted = backend.train_epoch([batch], 1)["loss"]
    assert plain == pytest.approx(float(per.mean()), abs=1e-5)
    assert weighted == pytest.approx(float((WEIGHTS[batch["y"]] * per).mean()), abs=1e-5)
    assert weighted != pytest.approx(plain, abs=1e-3)



def test_balanced_training_resumes_exactly(synth_dir, tmp_path):

    from conftest import tiny_config
    from islr.training import pipeline

    overrides = {"train.epochs": 3, "data.sampling": "balanced", "train.class_weights": "balanced",
                 "train.label_smoothing": 0.1, "augment.mirror": 0.5}
    straight = pipeline.train(tiny_config(synth_dir, tmp_path / "cache", **overrides), tmp_path / "a")

    from tiny_run import StopAfter

    cfg = tiny_config(synth_dir, tmp_path / "cache", **overrides)
    pipeline.train(cfg, tmp_path / "b", callbacks=(StopAfter(2),))
    resumed = pipeline.train(cfg, tmp_path / "b", resume=True)
    assert [round(r["loss"], 6) for r in straight.history] == [round(r["loss"], 6) for r in resumed.history]
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.inference.predictor import RunPredictor

    raws = [read_landmarks(x.path) for x in read_train_csv(synth_dir)[:4]]
    np.testing.assert_allclose(RunPredictor(tmp_path / "a", "last").logits_batch(raws),
                               RunPredictor(tmp_path / "b", "last").logits_batch(raws), atol=1e-5)
    saved = json.loads((tmp_path / "a" / "history.json").read_text())
    assert len(saved) == 3
