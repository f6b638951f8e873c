"""Keras 3 optimizers of the TensorFlow backend, mirroring ``islr.backends.torch_backend``.

Keras ships no RAdam and no Lookahead (and ``tensorflow_addons`` is gone), so both are written
here: :class:`RAdam` follows the update of ``torch.optim.RAdam`` and :class:`Lookahead` keeps the
slow weights of Zhang et al. (2019). Weight decay follows the torch backend: decoupled for
``adamw`` and ``radam_lookahead``, coupled L2 (added to the gradient after clipping, as
``torch.optim.Adam``/``SGD`` do) for ``adam`` and ``sgd``; never on biases and normalisation
weights (variables with fewer than two dimensions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from islr.config import TrainConfig  # noqa: E402
from islr.errors import ConfigError  # noqa: E402

OPTIMIZERS = ("adam", "adamw", "sgd", "radam_lookahead")
# torch's default; Keras' is 1e-7 (Keras also adds it after the bias correction, torch before).
EPSILON = 1e-8


class RAdam(keras.optimizers.Optimizer):
    """Rectified Adam (Liu et al. 2019) with the update of ``torch.optim.RAdam``.

    While the variance estimate is unreliable (``rho_t <= 5``, the first few steps) the step is
    plain momentum SGD; afterwards it is Adam scaled by the rectification term. Weight decay, when
    given, is the base class' decoupled decay (torch's ``decoupled_weight_decay=True``).
    """

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = EPSILON,
        name: str = "radam",
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        bias_1 = 1 - ops.power(beta_1, step)
        beta_2_power = ops.power(beta_2, step)
        bias_2 = 1 - beta_2_power
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2))
        m_hat = m / bias_1
        rho_inf = 2 / (1 - beta_2) - 1
        rho_t = rho_inf - 2 * step * beta_2_power / bias_2
        # max(., 0): the radicand is negative for rho_t < 4, where the plain branch is taken anyway.
        radicand = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        rect = ops.sqrt(ops.maximum(radicand, 0.0))
        adaptive = m_hat * rect * ops.sqrt(bias_2) / (ops.sqrt(v) + self.epsilon)
        self.assign_sub(variable, lr * ops.where(rho_t > 5, adaptive, m_hat))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Lookahead:
    """Slow weights of Lookahead (Zhang et al. 2019) around any optimizer.

    After every ``k``-th applied optimizer step the slow weights move ``alpha`` of the way to the
    fast (model) weights and the fast weights restart from them. The step count is the inner
    optimizer's ``iterations`` (which a loss-scale optimizer does not advance on a skipped step,
    like torch's GradScaler skipping ``Lookahead.step``), so only the slow weights are extra state.
    """

    def __init__(self, variables: list[Any], k: int = 5, alpha: float = 0.5):
        self.k, self.alpha = k, alpha
        self.fast = list(variables)
        # ONLY_FIRST_REPLICA: assignable from a replica context under MirroredStrategy.
        self.slow = [
            tf.Variable(
                tf.identity(v.value if hasattr(v, "value") else v), trainable=False, name=f"slow_{i}",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            for i, v in enumerate(self.fast)
        ]

    def updates(self, iterations: Any, applied: Any) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """New (slow, value) and (fast, value) pairs for this step (unchanged unless it syncs).

        Computed with ``where`` rather than ``cond`` so the same graph works in a replica context
        (where branches that assign mirrored model variables are not allowed).
        """
        sync = tf.logical_and(applied, tf.equal(tf.math.floormod(iterations, self.k), 0))
        slow_pairs, fast_pairs = [], []
        for fast, slow in zip(self.fast, self.slow, strict=True):
            value = tf.convert_to_tensor(fast)
            moved = slow + self.alpha * (value - slow)
            new_slow = tf.where(sync, moved, slow)
            slow_pairs.append((slow, new_slow))
            fast_pairs.append((fast, tf.where(sync, new_slow, value)))
        return slow_pairs, fast_pairs


@dataclass
class OptimizerSpec:
    """A built optimizer plus what the train step must do around it."""

    optimizer: keras.optimizers.Optimizer
    """The optimizer whose ``apply`` the step calls (possibly a LossScaleOptimizer)."""
    inner: keras.optimizers.Optimizer
    """The optimizer holding the learning rate and ``iterations``."""
    l2: float
    """Coupled L2 coefficient added to gradients of decayed variables (adam, sgd)."""
    decayed: list[bool]
    """Per trainable variable: does weight decay apply (ndim > 1)?"""
    lookahead: Lookahead | None


def build_optimizer(variables: list[Any], train: TrainConfig, loss_scaling: bool = False) -> OptimizerSpec:
    """Adam, AdamW, SGD (momentum 0.9, Nesterov) or RAdam + Lookahead, built on ``variables``.

    Call inside the distribution strategy's scope. ``loss_scaling`` wraps the optimizer in Keras'
    dynamic ``LossScaleOptimizer`` (for ``mixed_float16``).
    """
    decayed = [len(v.shape) > 1 for v in variables]
    no_decay = [v for v, d in zip(variables, decayed, strict=True) if not d]
    wd = float(train.weight_decay)
    l2 = 0.0
    if train.optimizer == "adam":
        inner = keras.optimizers.Adam(learning_rate=train.lr, epsilon=EPSILON)
        l2 = wd
    elif train.optimizer == "sgd":
        inner = keras.optimizers.SGD(learning_rate=train.lr, momentum=0.9, nesterov=True)
        l2 = wd
    elif train.optimizer == "adamw":
        inner = keras.optimizers.AdamW(learning_rate=train.lr, weight_decay=wd or None, epsilon=EPSILON)
    elif train.optimizer == "radam_lookahead":
        inner = RAdam(learning_rate=train.lr, weight_decay=wd or None)
    else:
        raise ConfigError(f"unknown optimizer {train.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if inner.weight_decay is not None and no_decay:
        inner.exclude_from_weight_decay(var_list=no_decay)
    optimizer = keras.optimizers.LossScaleOptimizer(inner) if loss_scaling else inner
    optimizer.build(variables)
    lookahead = Lookahead(variables) if train.optimizer == "radam_lookahead" else None
    return OptimizerSpec(optimizer, inner, l2, decayed, lookahead)
