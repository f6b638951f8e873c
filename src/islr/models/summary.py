"""Framework-dispatching helpers about models that the CLI needs (imports frameworks lazily)."""

from __future__ import annotations

from typing import Any

from islr.models.registry import create_model, normalize_framework


def count_parameters(name: str, framework: str, input_dim: int, num_classes: int, params: dict[str, Any] | None = None) -> int:
    """Trainable parameters of model ``name`` built from its shipped config."""
    framework = normalize_framework(framework)
    model = create_model(name, framework, input_dim, num_classes, params)
    if framework == "torch":
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    import numpy as np

    # Keras builders return built models (weights created), so the weights can be counted directly.
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
