"""Transformer encoder classifier (the seed's ``TransformerSequenceClassifier``)."""

from __future__ import annotations

from typing import Any

import keras

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.tensorflow.layers import (
    Dropout,
    LayerNorm,
    MaskedLayer,
    MultiHeadSelfAttention,
    ProbabilityPredictor,
    SequenceClassifier,
    masked_mean,
    materialize,
    safe_mask,
    sinusoidal_positions,
)

__all__ = [
    "TransformerEncoderBackbone",
    "TransformerEncoderLayer",
    "TransformerPredictor",
    "TransformerSequenceClassifier",
    "build_transformer",
]


class TransformerEncoderLayer(MaskedLayer):
    """The Keras twin of ``torch.nn.TransformerEncoderLayer`` (ReLU, dropout everywhere torch has it).

    Pre-norm (``norm_first``): ``x + drop1(attn(ln1(x)))`` then ``x + drop2(ff(ln2(x)))``;
    post-norm: ``ln1(x + drop1(attn(x)))`` then ``ln2(x + drop2(ff(x)))``, with
    ``ff = Dense(dim_feedforward, relu) -> Dropout -> Dense(d_model)``. The attention has biases
    (``4 d^2 + 4 d`` parameters, as torch's ``nn.MultiheadAttention``).
    """

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float,
                 norm_first: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.norm_first = norm_first
        self.self_attn = MultiHeadSelfAttention(
            d_model, num_heads, attn_dropout=dropout, use_bias=True, name="self_attn"
        )
        # Sub-layers in torch's registration order, so the weights line up one to one.
        self.linear1 = keras.layers.Dense(dim_feedforward, activation="relu", name="linear1")
        self.dropout = Dropout(dropout, name="dropout")
        self.linear2 = keras.layers.Dense(d_model, name="linear2")
        self.norm1 = LayerNorm(name="norm1")
        self.norm2 = LayerNorm(name="norm2")
        self.dropout1 = Dropout(dropout, name="dropout1")
        self.dropout2 = Dropout(dropout, name="dropout2")

    def _attention(self, x: Any, mask: Any, training: bool) -> Any:
        return self.dropout1(self.self_attn(x, mask=mask, training=training), training=training)

    def _feed_forward(self, x: Any, training: bool) -> Any:
        hidden = self.dropout(self.linear1(x), training=training)
        return self.dropout2(self.linear2(hidden), training=training)

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        if self.norm_first:
            x = x + self._attention(self.norm1(x), mask, training)
            return x + self._feed_forward(self.norm2(x), training)
        x = self.norm1(x + self._attention(x, mask, training))
        return self.norm2(x + self._feed_forward(x, training))


class TransformerEncoderBackbone(MaskedLayer):
    """Dense embedding + sinusoidal positions + encoder layers (+ final LayerNorm) + masked mean.

    With ``norm_first`` (pre-norm) a final LayerNorm follows the last layer, as torch's
    ``nn.TransformerEncoder(norm=...)`` in the twin. Output (B, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, num_layers: int,
                 dropout: float, norm_first: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        self.d_model = d_model
        self.embedding = keras.layers.Dense(d_model, name="embedding")
        self.encoder_layers = [
            TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, norm_first,
                                    name=f"layer_{i}")
            for i in range(num_layers)
        ]
        self.norm = LayerNorm(name="norm") if norm_first else None

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        mask = safe_mask(mask)
        h = self.embedding(x)
        h = h + sinusoidal_positions(keras.ops.shape(h)[1], self.d_model, h.dtype)
        for layer in self.encoder_layers:
            h = layer(h, mask=mask, training=training)
        if self.norm is not None:
            h = self.norm(h)
        return masked_mean(h, mask)


class TransformerSequenceClassifier(SequenceClassifier):
    """Embedding, positions, pre-norm encoder layers, masked mean pooling, Dropout, Dense head."""

    def __init__(self, input_dim: int, num_classes: int, d_model: int = 192, num_heads: int = 8,
                 dim_feedforward: int = 512, num_layers: int = 3, dropout: float = 0.1,
                 norm_first: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.transformer = TransformerEncoderBackbone(
            d_model, num_heads, dim_feedforward, num_layers, dropout, norm_first, name="transformer"
        )
        self.dropout = Dropout(dropout, name="dropout")
        self.output_layer = keras.layers.Dense(num_classes, name="output_layer")

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        features = self.transformer(x, mask=mask, training=training)
        return self.output_layer(self.dropout(features, training=training))


class TransformerPredictor(ProbabilityPredictor):
    """Inference wrapper around a :class:`TransformerSequenceClassifier`."""


@register_model("transformer", framework="tensorflow")
def build_transformer(input_dim: int, num_classes: int, **params: Any) -> TransformerSequenceClassifier:
    """Registry builder for ``transformer`` (configs/models/transformer.yaml)."""
    return materialize(TransformerSequenceClassifier(input_dim, num_classes, **params), input_dim)
