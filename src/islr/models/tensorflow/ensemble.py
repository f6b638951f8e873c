"""Ensembles: members built through the registry, logits averaged.

Each member is ``{"name": <registered model>, "params": {...}}``; the member's shipped YAML
defaults are merged under its ``params`` by :func:`islr.models.registry.create_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from islr.models.registry import create_members, register_model
from islr.models.tensorflow.layers import SequenceClassifier, materialize

__all__ = [
    "HybridEnsembleModel",
    "LogitAverageEnsemble",
    "TransformerEnsemble",
    "YetAnotherEnsemble",
    "build_members",
]


def build_members(members: Sequence[dict[str, Any]], input_dim: int, num_classes: int) -> list[keras.Model]:
    """Build each ``{"name", "params"}`` member for tensorflow through the registry (checked there)."""
    return create_members(members, "tensorflow", input_dim, num_classes)


class LogitAverageEnsemble(SequenceClassifier):
    """Mean of the members' logits (B, num_classes)."""

    def __init__(self, input_dim: int, num_classes: int, members: Sequence[dict[str, Any]],
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.models = build_members(members, input_dim, num_classes)

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        logits = [m([x, mask], training=training) for m in self.models]
        return keras.ops.mean(keras.ops.stack(logits, axis=0), axis=0)


class TransformerEnsemble(LogitAverageEnsemble):
    """The seed's ``TransformerEnsemble`` (members: ``transformer`` variants by default)."""


class HybridEnsembleModel(LogitAverageEnsemble):
    """The seed's ``HybridEnsembleModel`` (members: ``hybrid`` variants by default)."""


class YetAnotherEnsemble(LogitAverageEnsemble):
    """The seed's ``YetAnotherEnsemble`` (members: ``yet_another_transformer`` variants)."""


@register_model("transformer_ensemble", framework="tensorflow")
def build_transformer_ensemble(input_dim: int, num_classes: int, members) -> TransformerEnsemble:
    """Registry builder for ``transformer_ensemble``."""
    return materialize(TransformerEnsemble(input_dim, num_classes, members), input_dim)


@register_model("hybrid_ensemble", framework="tensorflow")
def build_hybrid_ensemble(input_dim: int, num_classes: int, members) -> HybridEnsembleModel:
    """Registry builder for ``hybrid_ensemble``."""
    return materialize(HybridEnsembleModel(input_dim, num_classes, members), input_dim)


@register_model("yet_another_ensemble", framework="tensorflow")
def build_yet_another_ensemble(input_dim: int, num_classes: int, members) -> YetAnotherEnsemble:
    """Registry builder for ``yet_another_ensemble``."""
    return materialize(YetAnotherEnsemble(input_dim, num_classes, members), input_dim)
