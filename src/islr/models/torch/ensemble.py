"""Ensembles: members built through the registry, logits averaged.

Each member is ``{"name": <registered model>, "params": {...}}``; the member's shipped YAML
defaults are merged under its ``params`` by :func:`islr.models.registry.create_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from islr.models.registry import create_members, register_model

__all__ = [
    "HybridEnsembleModel",
    "LogitAverageEnsemble",
    "TransformerEnsemble",
    "YetAnotherEnsemble",
    "build_members",
]


def build_members(members: Sequence[dict[str, Any]], input_dim: int, num_classes: int) -> list[nn.Module]:
    """Build each ``{"name", "params"}`` member for torch through the registry (checked there)."""
    return create_members(members, "torch", input_dim, num_classes)


class LogitAverageEnsemble(nn.Module):
    """Mean of the members' logits (B, num_classes)."""

    def __init__(self, input_dim: int, num_classes: int, members: Sequence[dict[str, Any]]):
        super().__init__()
        self.models = nn.ModuleList(build_members(members, input_dim, num_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Average of every member's logits for ``x`` (B, T, F) with ``mask`` (B, T)."""
        return torch.stack([m(x, mask) for m in self.models]).mean(dim=0)


class TransformerEnsemble(LogitAverageEnsemble):
    """The seed's ``TransformerEnsemble`` (members: ``transformer`` variants by default)."""


class HybridEnsembleModel(LogitAverageEnsemble):
    """The seed's ``HybridEnsembleModel`` (members: ``hybrid`` variants by default)."""


class YetAnotherEnsemble(LogitAverageEnsemble):
    """The seed's ``YetAnotherEnsemble`` (members: ``yet_another_transformer`` variants)."""


@register_model("transformer_ensemble", framework="torch")
def build_transformer_ensemble(input_dim: int, num_classes: int, members) -> TransformerEnsemble:
    """Registry builder for ``transformer_ensemble``."""
    return TransformerEnsemble(input_dim, num_classes, members)


@register_model("hybrid_ensemble", framework="torch")
def build_hybrid_ensemble(input_dim: int, num_classes: int, members) -> HybridEnsembleModel:
    """Registry builder for ``hybrid_ensemble``."""
    return HybridEnsembleModel(input_dim, num_classes, members)


@register_model("yet_another_ensemble", framework="torch")
def build_yet_another_ensemble(input_dim: int, num_classes: int, members) -> YetAnotherEnsemble:
    """Registry builder for ``yet_another_ensemble``."""
    return YetAnotherEnsemble(input_dim, num_classes, members)
