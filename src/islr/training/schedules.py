"""Learning-rate schedules as pure functions of training progress (identical in both frameworks)."""

from __future__ import annotations

import math

from islr.config import TrainConfig, allowed_values
from islr.errors import ConfigError

SCHEDULES = allowed_values(TrainConfig, "schedule")


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """LR at ``progress`` epochs into training (fractional: epoch + batch / batches_per_epoch).

    - ``constant``: ``lr``.
    - ``exponential``: the seed's decay, ``lr * gamma ** floor(progress)`` (stepped per epoch).
    - ``cosine``: linear warm-up over ``warmup_epochs`` then half a cosine from ``lr`` down to
      ``lr * min_lr_ratio`` at the last epoch.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "exponential":
        return cfg.lr * cfg.gamma ** math.floor(progress)
    if cfg.schedule == "cosine":
        if cfg.warmup_epochs > 0 and progress < cfg.warmup_epochs:
            return cfg.lr * (progress + 1e-8) / cfg.warmup_epochs
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
        t = min(max((progress - cfg.warmup_epochs) / span, 0.0), 1.0)
        floor = cfg.lr * cfg.min_lr_ratio
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))
    raise ConfigError(f"unknown schedule {cfg.schedule!r}; choose one of {SCHEDULES}")
