"""Kaggle ISLR 1st-place family: causal depthwise Conv1D blocks with ECA + transformer blocks.

Reference configuration (input_dim 708, 250 classes, shipped YAML): 1,830,040 trainable
parameters, the same as the Keras twin. ``bn_momentum`` is given in Keras terms (weight of the
old statistics) and converted to torch's ``1 - bn_momentum``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.torch.layers import LateDropout, MaskedBatchNorm1d, StochasticDrop, masked_mean
from islr.models.torch.yet_another_transformer import TransformerBlock

__all__ = [
    "Conv1DBlock",
    "Conv1DTransformer",
    "ECA",
    "CausalDepthwiseConv1d",
    "build_conv1d_transformer",
]


class CausalDepthwiseConv1d(nn.Module):
    """Depthwise Conv1d over (B, T, C), no bias, left padding ``kernel_size - 1``.

    Frame t sees frames t-k+1..t only, so frames appended after the sequence never reach it.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.pad = kernel_size - 1
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x.transpose(1, 2), (self.pad, 0))
        return self.conv(h).transpose(1, 2)


class ECA(nn.Module):
    """Efficient channel attention: masked time average -> Conv1d(1, 1, 5) over channels -> gate."""

    def __init__(self, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(x, mask).unsqueeze(1)  # (B, 1, C)
        gate = torch.sigmoid(self.conv(pooled))  # (B, 1, C)
        return x * gate


class Conv1DBlock(nn.Module):
    """Linear+swish expand, causal depthwise conv, BN, ECA, Linear project, stochastic drop, residual."""

    def __init__(
        self,
        dim: int,
        kernel_size: int = 17,
        drop_rate: float = 0.2,
        expand: int = 2,
        bn_momentum: float = 0.05,
    ):
        super().__init__()
        hidden = dim * expand
        self.expand = nn.Linear(dim, hidden)
        self.act = nn.SiLU()
        self.dwconv = CausalDepthwiseConv1d(hidden, kernel_size)
        self.norm = MaskedBatchNorm1d(hidden, momentum=bn_momentum)
        self.eca = ECA()
        self.project = nn.Linear(hidden, dim)
        self.drop = StochasticDrop(drop_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(x.dtype).unsqueeze(-1)
        h = self.act(self.expand(x)) * weights  # padded frames are zero before the conv
        h = self.norm(self.dwconv(h), mask)
        h = self.eca(h, mask)
        return x + self.drop(self.project(h))


class Conv1DTransformer(nn.Module):
    """Stem Linear+BN, ``num_stages`` x [conv blocks, transformer block], top Linear, masked
    average pool, late dropout, Linear head."""

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        dim: int = 192,
        kernel_size: int = 17,
        num_stages: int = 2,
        conv_per_stage: int = 3,
        conv_expand: int = 2,
        transformer_expand: int = 2,
        num_heads: int = 4,
        drop_rate: float = 0.2,
        attn_dropout: float = 0.2,
        late_dropout: float = 0.8,
        late_dropout_start: int = 0,
        bn_momentum: float = 0.95,
    ):
        super().__init__()
        if not 0.0 <= bn_momentum < 1.0:
            raise ConfigError(f"bn_momentum (Keras terms) must be in [0, 1), got {bn_momentum}")
        if kernel_size < 1:
            raise ConfigError(f"kernel_size must be >= 1, got {kernel_size}")
        momentum = 1.0 - bn_momentum
        self.stem = nn.Linear(input_dim, dim, bias=False)
        self.stem_norm = MaskedBatchNorm1d(dim, momentum=momentum)
        blocks: list[nn.Module] = []
        for _ in range(num_stages):
            blocks.extend(
                Conv1DBlock(dim, kernel_size, drop_rate, conv_expand, momentum)
                for _ in range(conv_per_stage)
            )
            blocks.append(
                TransformerBlock(
                    dim,
                    num_heads,
                    transformer_expand,
                    attn_dropout,
                    drop_rate,
                    causal=False,
                    scale=dim**-0.5,  # as in the 1st-place solution (not head_dim ** -0.5)
                    bn_momentum=momentum,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.top = nn.Linear(dim, 2 * dim)
        self.late_dropout = LateDropout(late_dropout, late_dropout_start)
        self.classifier = nn.Linear(2 * dim, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of ``x`` (B, T, F) with ``mask`` (B, T)."""
        h = self.stem_norm(self.stem(x), mask)
        for block in self.blocks:
            h = block(h, mask)
        pooled = masked_mean(self.top(h), mask)
        return self.classifier(self.late_dropout(pooled))


@register_model("conv1d_transformer", framework="torch")
def build_conv1d_transformer(input_dim: int, num_classes: int, **params) -> Conv1DTransformer:
    """Registry builder for ``conv1d_transformer``."""
    return Conv1DTransformer(input_dim, num_classes, **params)
