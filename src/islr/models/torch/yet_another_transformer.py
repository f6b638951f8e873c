"""The seed's "yet another transformer": own self-attention, batch-norm blocks, stochastic drop."""

from __future__ import annotations

import torch
from torch import nn

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.torch.layers import MaskedBatchNorm1d, StochasticDrop, masked_mean, safe_mask

__all__ = [
    "MultiHeadSelfAttention",
    "TransformerBlock",
    "YetAnotherTransformer",
    "YetAnotherTransformerClassifier",
    "build_yet_another_transformer",
]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention: qkv Linear(dim, 3*dim, no bias), masked softmax, Linear(dim, dim, no bias).

    Keys at padded frames get no weight; ``causal`` also hides later frames from each query.
    ``scale`` defaults to ``head_dim ** -0.5``; the Kaggle 1st-place block passes ``dim ** -0.5``.
    Attention dropout is an ordinary ``nn.Dropout``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attn_dropout: float = 0.0,
        causal: bool = False,
        scale: float | None = None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = scale if scale is not None else self.head_dim**-0.5
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_drop = nn.Dropout(attn_dropout)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, T, head_dim)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        allowed = safe_mask(mask)[:, None, None, :]  # (B, 1, 1, T) over keys
        if self.causal:
            allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        # The dtype's lowest value instead of -inf: exp() gives exactly 0, never NaN.
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(b, t, c)
        return self.proj(out)


class TransformerBlock(nn.Module):
    """BN -> self-attention -> drop -> residual; BN -> Linear+swish -> Linear -> drop -> residual.

    ``drop_rate`` is per-sample stochastic depth (:class:`StochasticDrop`). ``bn_momentum`` is in
    torch terms (weight of the new batch).
    """

    def __init__(
        self,
        dim: int = 192,
        num_heads: int = 4,
        expansion_factor: int = 4,
        attn_dropout: float = 0.2,
        drop_rate: float = 0.2,
        causal: bool = False,
        scale: float | None = None,
        bn_momentum: float = 0.1,
    ):
        super().__init__()
        self.norm1 = MaskedBatchNorm1d(dim, momentum=bn_momentum)
        self.attn = MultiHeadSelfAttention(dim, num_heads, attn_dropout, causal, scale)
        self.drop1 = StochasticDrop(drop_rate)
        self.norm2 = MaskedBatchNorm1d(dim, momentum=bn_momentum)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, dim * expansion_factor, bias=False),
            nn.SiLU(),
            nn.Linear(dim * expansion_factor, dim, bias=False),
        )
        self.drop2 = StochasticDrop(drop_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attn(self.norm1(x, mask), mask))
        return x + self.drop2(self.feed_forward(self.norm2(x, mask)))


class YetAnotherTransformer(nn.Module):
    """Backbone: Linear(input_dim, dim, no bias) + BN stem, ``num_blocks`` blocks, masked mean."""

    def __init__(
        self,
        input_dim: int,
        dim: int = 192,
        num_heads: int = 4,
        expansion_factor: int = 4,
        num_blocks: int = 2,
        attn_dropout: float = 0.2,
        drop_rate: float = 0.2,
        causal: bool = False,
    ):
        super().__init__()
        self.stem = nn.Linear(input_dim, dim, bias=False)
        self.stem_norm = MaskedBatchNorm1d(dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, expansion_factor, attn_dropout, drop_rate, causal)
            for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, dim)."""
        h = self.stem_norm(self.stem(x), mask)
        for block in self.blocks:
            h = block(h, mask)
        return masked_mean(h, mask)


class YetAnotherTransformerClassifier(nn.Module):
    """:class:`YetAnotherTransformer` backbone followed by a Linear head."""

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        dim: int = 192,
        num_heads: int = 4,
        expansion_factor: int = 4,
        num_blocks: int = 2,
        attn_dropout: float = 0.2,
        drop_rate: float = 0.2,
        causal: bool = False,
    ):
        super().__init__()
        self.transformer = YetAnotherTransformer(
            input_dim, dim, num_heads, expansion_factor, num_blocks, attn_dropout, drop_rate, causal
        )
        self.output_layer = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of ``x`` (B, T, F) with ``mask`` (B, T)."""
        return self.output_layer(self.transformer(x, mask))


@register_model("yet_another_transformer", framework="torch")
def build_yet_another_transformer(
    input_dim: int, num_classes: int, **params
) -> YetAnotherTransformerClassifier:
    """Registry builder for ``yet_another_transformer``."""
    return YetAnotherTransformerClassifier(input_dim, num_classes, **params)
