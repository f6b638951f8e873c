"""Kaggle ISLR 1st-place family: causal depthwise Conv1D blocks with ECA + transformer blocks.

Reference configuration (input_dim 708, 250 classes, shipped YAML): 1,830,040 trainable
parameters (the torch twin's count) and 1,836,569 weights in all (BatchNorm moving statistics and
the LateDropout step counter). ``bn_momentum`` is in Keras terms (weight of the old statistics).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.tensorflow.layers import (
    BatchNorm,
    CompositeLayer,
    LateDropout,
    MaskedLayer,
    SequenceClassifier,
    StochasticDepth,
    masked_mean,
    materialize,
)
from islr.models.tensorflow.yet_another_transformer import TransformerBlock

__all__ = [
    "ECA",
    "CausalDepthwiseConv1D",
    "Conv1DBlock",
    "Conv1DTransformer",
    "build_conv1d_transformer",
]


class CausalDepthwiseConv1D(CompositeLayer):
    """Depthwise Conv1D over (B, T, C), no bias, left padding ``kernel_size - 1``.

    Frame t sees frames t-k+1..t only, so frames appended after the sequence never reach it.
    """

    def __init__(self, kernel_size: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.pad = kernel_size - 1
        self.conv = keras.layers.DepthwiseConv1D(kernel_size, padding="valid", use_bias=False,
                                                 name="conv")

    def call(self, x: Any) -> Any:
        return self.conv(ops.pad(x, [[0, 0], [self.pad, 0], [0, 0]]))


class ECA(MaskedLayer):
    """Efficient channel attention: masked time average -> Conv1D(1, 5) over channels -> gate."""

    def __init__(self, kernel_size: int = 5, **kwargs: Any):
        super().__init__(**kwargs)
        # "same" with an odd kernel pads (k - 1) / 2 on both sides, like torch's padding=k//2.
        self.conv = keras.layers.Conv1D(1, kernel_size, padding="same", use_bias=False, name="conv")

    def call(self, x: Any, mask: Any) -> Any:
        pooled = ops.expand_dims(masked_mean(x, mask), -1)  # (B, C, 1): channels as a sequence
        gate = ops.sigmoid(self.conv(pooled))  # (B, C, 1)
        return x * ops.transpose(gate, (0, 2, 1))


class Conv1DBlock(MaskedLayer):
    """Dense+swish expand, causal depthwise conv, BN, ECA, Dense project, stochastic drop, residual."""

    def __init__(self, dim: int, kernel_size: int = 17, drop_rate: float = 0.2, expand: int = 2,
                 bn_momentum: float = 0.95, **kwargs: Any):
        super().__init__(**kwargs)
        self.expand = keras.layers.Dense(dim * expand, activation="swish", name="expand")
        self.dwconv = CausalDepthwiseConv1D(kernel_size, name="dwconv")
        self.norm = BatchNorm(bn_momentum, name="norm")
        self.eca = ECA(name="eca")
        self.project = keras.layers.Dense(dim, name="project")
        self.drop = StochasticDepth(drop_rate, name="drop")

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        h = self.expand(x) * ops.expand_dims(ops.cast(mask, x.dtype), -1)  # zero padded frames
        h = self.norm(self.dwconv(h), training=training, mask=mask)
        h = self.eca(h, mask=mask)
        return x + self.drop(self.project(h), training=training)


class Conv1DTransformer(SequenceClassifier):
    """Stem Dense+BN, ``num_stages`` x [conv blocks, transformer block], top Dense, masked
    average pool, late dropout, Dense head."""

    def __init__(self, input_dim: int, num_classes: int, dim: int = 192, kernel_size: int = 17,
                 num_stages: int = 2, conv_per_stage: int = 3, conv_expand: int = 2,
                 transformer_expand: int = 2, num_heads: int = 4, drop_rate: float = 0.2,
                 attn_dropout: float = 0.2, late_dropout: float = 0.8, late_dropout_start: int = 0,
                 bn_momentum: float = 0.95, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= bn_momentum < 1.0:
            raise ConfigError(f"bn_momentum (Keras terms) must be in [0, 1), got {bn_momentum}")
        if kernel_size < 1:
            raise ConfigError(f"kernel_size must be >= 1, got {kernel_size}")
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.stem = keras.layers.Dense(dim, use_bias=False, name="stem")
        self.stem_norm = BatchNorm(bn_momentum, name="stem_norm")
        self.blocks = []
        for stage in range(num_stages):
            for i in range(conv_per_stage):
                self.blocks.append(Conv1DBlock(dim, kernel_size, drop_rate, conv_expand,
                                               bn_momentum, name=f"conv_{stage}_{i}"))
            self.blocks.append(TransformerBlock(
                dim, num_heads, transformer_expand, attn_dropout, drop_rate, causal=False,
                scale=dim**-0.5,  # as in the 1st-place solution (not head_dim ** -0.5)
                bn_momentum=bn_momentum, name=f"transformer_{stage}",
            ))
        self.top = keras.layers.Dense(2 * dim, name="top")
        self.late_dropout = LateDropout(late_dropout, late_dropout_start, name="late_dropout")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        h = self.stem_norm(self.stem(x), training=training, mask=mask)
        for block in self.blocks:
            h = block(h, mask=mask, training=training)
        pooled = masked_mean(self.top(h), mask)
        return self.classifier(self.late_dropout(pooled, training=training))


@register_model("conv1d_transformer", framework="tensorflow")
def build_conv1d_transformer(input_dim: int, num_classes: int, **params: Any) -> Conv1DTransformer:
    """Registry builder for ``conv1d_transformer`` (configs/models/conv1d_transformer.yaml)."""
    return materialize(Conv1DTransformer(input_dim, num_classes, **params), input_dim)
