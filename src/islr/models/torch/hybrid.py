"""The seed's ``HybridModel``: an LSTM branch and a transformer branch, features concatenated."""

from __future__ import annotations

import torch
from torch import nn

from islr.models.registry import register_model
from islr.models.torch.lstm import LSTMEncoder
from islr.models.torch.transformer import TransformerEncoderBackbone

__all__ = ["HybridModel", "build_hybrid"]


class HybridModel(nn.Module):
    """LSTM (last valid frame) ‖ transformer (masked mean) -> concat -> Dropout -> Linear.

    The transformer branch is the ``transformer`` family's backbone with pre-norm layers and a
    final LayerNorm; ``dropout`` also sits between stacked LSTM layers.
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        lstm_hidden_dim: int = 128,
        lstm_layers: int = 1,
        d_model: int = 128,
        num_heads: int = 4,
        dim_feedforward: int = 256,
        num_layers: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.lstm = LSTMEncoder(input_dim, lstm_hidden_dim, lstm_layers, dropout)
        self.transformer = TransformerEncoderBackbone(
            input_dim, d_model, num_heads, dim_feedforward, num_layers, dropout, norm_first=True
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(lstm_hidden_dim + d_model, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of ``x`` (B, T, F) with ``mask`` (B, T)."""
        features = torch.cat([self.lstm(x, mask), self.transformer(x, mask)], dim=-1)
        return self.fc(self.dropout(features))


@register_model("hybrid", framework="torch")
def build_hybrid(input_dim: int, num_classes: int, **params) -> HybridModel:
    """Registry builder for ``hybrid``."""
    return HybridModel(input_dim, num_classes, **params)
