"""The seed's "yet another transformer": own self-attention, batch-norm blocks, stochastic drop."""

from __future__ import annotations

from typing import Any

import keras

from islr.models.registry import register_model
from islr.models.tensorflow.layers import (
    BatchNorm,
    MaskedLayer,
    MultiHeadSelfAttention,
    SequenceClassifier,
    StochasticDepth,
    masked_mean,
    materialize,
)

__all__ = [
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "YetAnotherTransformer",
    "YetAnotherTransformerClassifier",
    "build_yet_another_transformer",
]


class TransformerBlock(MaskedLayer):
    """BN -> self-attention -> drop -> residual; BN -> Dense+swish -> Dense -> drop -> residual.

    Attention and feed-forward have no biases. ``drop_rate`` is per-sample stochastic depth
    (:class:`StochasticDepth`); ``attn_dropout`` an ordinary :class:`Dropout` on the attention
    weights. ``bn_momentum`` is in Keras terms (0.9 = torch's default 0.1). Batch statistics count
    real frames only.
    """

    def __init__(self, dim: int = 192, num_heads: int = 4, expansion_factor: int = 4,
                 attn_dropout: float = 0.2, drop_rate: float = 0.2, causal: bool = False,
                 scale: float | None = None, bn_momentum: float = 0.9, **kwargs: Any):
        super().__init__(**kwargs)
        self.norm1 = BatchNorm(bn_momentum, name="norm1")
        self.attn = MultiHeadSelfAttention(dim, num_heads, attn_dropout, causal, scale, name="attn")
        self.drop1 = StochasticDepth(drop_rate, name="drop1")
        self.norm2 = BatchNorm(bn_momentum, name="norm2")
        self.expand = keras.layers.Dense(dim * expansion_factor, use_bias=False, activation="swish",
                                         name="expand")
        self.project = keras.layers.Dense(dim, use_bias=False, name="project")
        self.drop2 = StochasticDepth(drop_rate, name="drop2")

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        h = self.norm1(x, training=training, mask=mask)
        x = x + self.drop1(self.attn(h, mask=mask, training=training), training=training)
        h = self.project(self.expand(self.norm2(x, training=training, mask=mask)))
        return x + self.drop2(h, training=training)


class YetAnotherTransformer(MaskedLayer):
    """Backbone: Dense(dim, no bias) + BN stem, ``num_blocks`` blocks, masked mean -> (B, dim)."""

    def __init__(self, dim: int = 192, num_heads: int = 4, expansion_factor: int = 4,
                 num_blocks: int = 2, attn_dropout: float = 0.2, drop_rate: float = 0.2,
                 causal: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.stem = keras.layers.Dense(dim, use_bias=False, name="stem")
        self.stem_norm = BatchNorm(name="stem_norm")
        self.blocks = [
            TransformerBlock(dim, num_heads, expansion_factor, attn_dropout, drop_rate, causal,
                             name=f"block_{i}")
            for i in range(num_blocks)
        ]

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        h = self.stem_norm(self.stem(x), training=training, mask=mask)
        for block in self.blocks:
            h = block(h, mask=mask, training=training)
        return masked_mean(h, mask)


class YetAnotherTransformerClassifier(SequenceClassifier):
    """:class:`YetAnotherTransformer` backbone followed by a Dense head."""

    def __init__(self, input_dim: int, num_classes: int, dim: int = 192, num_heads: int = 4,
                 expansion_factor: int = 4, num_blocks: int = 2, attn_dropout: float = 0.2,
                 drop_rate: float = 0.2, causal: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.transformer = YetAnotherTransformer(
            dim, num_heads, expansion_factor, num_blocks, attn_dropout, drop_rate, causal,
            name="transformer",
        )
        self.output_layer = keras.layers.Dense(num_classes, name="output_layer")

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        return self.output_layer(self.transformer(x, mask=mask, training=training))


@register_model("yet_another_transformer", framework="tensorflow")
def build_yet_another_transformer(input_dim: int, num_classes: int,
                                  **params: Any) -> YetAnotherTransformerClassifier:
    """Registry builder for ``yet_another_transformer``."""
    return materialize(YetAnotherTransformerClassifier(input_dim, num_classes, **params), input_dim)
