"""Transformer encoder classifier (the seed's ``TransformerSequenceClassifier``)."""

from __future__ import annotations

import torch
from torch import nn

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.torch.layers import (
    ProbabilityPredictor,
    masked_mean,
    safe_mask,
    sinusoidal_positions,
)

__all__ = [
    "TransformerEncoderBackbone",
    "TransformerPredictor",
    "TransformerSequenceClassifier",
    "build_transformer",
]


class TransformerEncoderBackbone(nn.Module):
    """Linear embedding + sinusoidal positions + ``nn.TransformerEncoder`` + masked mean pool.

    Encoder layers use ReLU (the torch default, also used by the Keras twin). With ``norm_first``
    (pre-norm) a final LayerNorm follows the last layer. Output (B, d_model).
    """

    def __init__(
        self,
        input_dim: int,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        num_layers: int,
        dropout: float,
        norm_first: bool = True,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.embedding = nn.Linear(input_dim, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=norm_first,
        )
        self.encoder = nn.TransformerEncoder(
            layer,
            num_layers=num_layers,
            norm=nn.LayerNorm(d_model) if norm_first else None,
            enable_nested_tensor=False,  # nested tensors would drop padded frames differently
        )
        self.d_model = d_model

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = safe_mask(mask)
        h = self.embedding(x)
        h = h + sinusoidal_positions(h.shape[1], self.d_model, device=h.device, dtype=h.dtype)
        h = self.encoder(h, src_key_padding_mask=~mask)
        return masked_mean(h, mask)


class TransformerSequenceClassifier(nn.Module):
    """Embedding, positions, pre-norm encoder layers, masked mean pooling, Dropout, Linear head."""

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        d_model: int = 192,
        num_heads: int = 8,
        dim_feedforward: int = 512,
        num_layers: int = 3,
        dropout: float = 0.1,
        norm_first: bool = True,
    ):
        super().__init__()
        self.transformer = TransformerEncoderBackbone(
            input_dim, d_model, num_heads, dim_feedforward, num_layers, dropout, norm_first
        )
        self.dropout = nn.Dropout(dropout)
        self.output_layer = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of ``x`` (B, T, F) with ``mask`` (B, T)."""
        return self.output_layer(self.dropout(self.transformer(x, mask)))


class TransformerPredictor(ProbabilityPredictor):
    """Inference wrapper around a :class:`TransformerSequenceClassifier`."""

    def __init__(self, model: TransformerSequenceClassifier):
        super().__init__(model)


@register_model("transformer", framework="torch")
def build_transformer(input_dim: int, num_classes: int, **params) -> TransformerSequenceClassifier:
    """Registry builder for ``transformer`` (configs/models/transformer.yaml)."""
    return TransformerSequenceClassifier(input_dim, num_classes, **params)
