"""LR schedules at hand-computed points."""

import math

import pytest

from islr.config import TrainConfig
from islr.training.schedules import learning_rate


def test_exponential_is_the_seeds_per_epoch_decay():
    cfg = TrainConfig(lr=0.1, schedule="exponential", gamma=0.5)
    assert [learning_rate(cfg, p) for p in (0, 0.9, 1, 2.5)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_cosine_with_warmup():
    cfg = TrainConfig(lr=1.0, schedule="cosine", warmup_epochs=2, epochs=12, min_lr_ratio=0.0)
    assert learning_rate(cfg, 1.0) == pytest.approx(0.5)
    assert learning_rate(cfg, 2.0) == pytest.approx(1.0)
    assert learning_rate(cfg, 7.0) == pytest.approx(0.5)  # half way through the cosine
    assert learning_rate(cfg, 12.0) == pytest.approx(0.0, abs=1e-12)
    cfg.min_lr_ratio = 0.1
    assert learning_rate(cfg, 12.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 7.0) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))


def test_constant():
    assert learning_rate(TrainConfig(lr=0.3, schedule="constant"), 9.0) == 0.3
