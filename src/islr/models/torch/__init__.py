"""PyTorch model zoo: importing this package registers every family with the model registry.

Each family module defines ``nn.Module`` classes mapping ``forward(x, mask)`` with ``x``
(B, T, F) float32 and ``mask`` (B, T) bool to logits (B, classes), and registers a builder
``fn(input_dim, num_classes, **params)`` under the name used in ``configs/models/<name>.yaml``.
"""

from __future__ import annotations

from islr.models.torch import (  # noqa: F401  (imported for their registrations)
    cnn_transfer,
    conv1d_transformer,
    ensemble,
    hybrid,
    lstm,
    transformer,
    yet_another_transformer,
)
from islr.models.torch.layers import get_dropout, set_dropout

__all__ = ["get_dropout", "set_dropout"]
