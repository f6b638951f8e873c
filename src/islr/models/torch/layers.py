"""Pieces shared by the PyTorch model families.

Every sequence model maps ``x`` (B, T, F) float32 and ``mask`` (B, T) bool (True = real frame)
to logits. The helpers here keep that mapping independent of how many padded frames follow the
real ones: masked pooling, masked batch statistics, key masks safe for empty sequences, and the
last valid frame of a recurrent network.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from islr.errors import ConfigError

__all__ = [
    "LateDropout",
    "MaskedBatchNorm1d",
    "ProbabilityPredictor",
    "StochasticDrop",
    "get_dropout",
    "last_valid_index",
    "masked_mean",
    "pack_by_mask",
    "safe_mask",
    "set_dropout",
    "sinusoidal_positions",
]


def safe_mask(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` with frame 0 marked real in rows that have no real frame.

    Attention over keys that are all masked gives NaN; an empty sequence therefore attends to its
    first (zero) frame instead. Rows with at least one real frame are returned unchanged.
    """
    mask = mask.bool()
    empty = ~mask.any(dim=1, keepdim=True)
    first = torch.zeros_like(mask)
    first[:, 0] = True
    return mask | (empty & first)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, C) over the real frames of ``mask`` (B, T) -> (B, C)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    total = (x * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp_min(1.0)
    return total / count


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The fixed sine/cosine table (length, dim) of "Attention is all you need" (no parameters).

    Even channels hold ``sin(t / 10000^(2i/dim))``, odd channels the cosine of the same angle.
    """
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    half = torch.arange(0, dim, 2, device=device, dtype=torch.float32)
    angle = position * torch.exp(half * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return table.to(dtype)


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index (B,) of the last real frame of each row (0 for a row without real frames)."""
    steps = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return (mask.long() * steps).amax(dim=1).clamp_min(1) - 1


def pack_by_mask(x: torch.Tensor, mask: torch.Tensor) -> PackedSequence:
    """Pack ``x`` (B, T, F) up to each row's last real frame, for ``nn.LSTM``.

    Frames before the last real one are kept even when masked (they are zeros), so the packed
    length is ``last_valid_index + 1``; an empty row keeps one frame.

    ``pack_padded_sequence`` needs its lengths as a CPU int64 tensor (the packing layout is
    computed on the host), so a mask on a GPU costs one small device-to-host copy (a sync) per
    forward: B integers, once for all stacked layers. The model contract is ``(x, mask)`` only,
    so the lengths cannot come pre-computed from the host batch; ``LSTMEncoder.use_packing =
    False`` runs the padded sequence instead (same outputs, no sync, work on padded frames).
    """
    lengths = (last_valid_index(mask) + 1).cpu()
    return pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)


class StochasticDrop(nn.Module):
    """Per-sample stochastic depth: drops a whole residual branch of a sample in training.

    The kept branches are scaled by ``1 / (1 - rate)`` (a dropout with noise shape (B, 1, 1)).
    It is its own class, not ``nn.Dropout``, so dynamic dropout leaves its rate alone.
    """

    def __init__(self, rate: float):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        noise = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * noise / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class LateDropout(nn.Module):
    """Dropout that switches on after ``start_step`` training forward passes.

    The step counter is a non-trainable buffer (saved in checkpoints). Both branches are computed
    and selected with ``torch.where`` so control flow never depends on a tensor value. Its own
    class, so dynamic dropout leaves it alone.
    """

    def __init__(self, rate: float, start_step: int = 0):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"late_dropout must be in [0, 1), got {rate}")
        if start_step < 0:
            raise ConfigError(f"late_dropout_start must be >= 0, got {start_step}")
        self.rate = float(rate)
        self.start_step = int(start_step)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        dropped = F.dropout(x, self.rate, training=True)
        out = torch.where(self.step >= self.start_step, dropped, x)
        self.step.add_(1)
        return out

    def extra_repr(self) -> str:
        return f"rate={self.rate}, start_step={self.start_step}"


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the channels of (B, T, C) whose batch statistics count real frames only.

    Keras 3 BatchNormalization uses the mask for its batch statistics; this keeps torch equal.
    Eval mode uses the running statistics, like ``nn.BatchNorm1d``. Parameters and buffers have
    the ``nn.BatchNorm1d`` names. Without a mask every frame counts.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        # Statistics, running buffers and the normalisation are float32 whatever autocast hands
        # in (bf16/fp16 sums over B*T frames lose precision, and the float32 running buffers
        # cannot be lerped towards a bf16 value); the result goes back in the input's dtype.
        dtype = x.dtype
        x = x.float()
        if not (self.training or self.running_mean is None):
            return F.batch_norm(
                x.transpose(1, 2),
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                False,
                0.0,
                self.eps,
            ).transpose(1, 2).to(dtype)
        if mask is None:
            weights = torch.ones(x.shape[:2], device=x.device, dtype=x.dtype)
        else:
            weights = mask.to(x.dtype)
        weights = weights.unsqueeze(-1)
        count = weights.sum(dim=(0, 1))
        n = count.clamp_min(1.0)
        mean = (x * weights).sum(dim=(0, 1)) / n
        var = (((x - mean) ** 2) * weights).sum(dim=(0, 1)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # cumulative moving average, as nn.BatchNorm1d
                    momentum = 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1.0).clamp_min(1.0)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight.float() + self.bias.float()
        return out.to(dtype)


class ProbabilityPredictor(nn.Module):
    """Inference wrapper: class probabilities from a classifier's logits (always eval mode)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def train(self, mode: bool = True) -> ProbabilityPredictor:
        """A predictor never trains: the wrapped model stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities (B, classes)."""
        return torch.softmax(self.model(x, mask), dim=-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top class index (B,) and its probability (B,)."""
        probs = self.forward(x, mask)
        confidence, index = probs.max(dim=-1)
        return index, confidence


def set_dropout(model: nn.Module, rate: float) -> int:
    """Set ``p`` of every ``nn.Dropout`` in ``model`` to ``rate``; returns how many changed.

    Only ordinary dropout layers are touched (the dynamic-dropout contract): ``LateDropout``,
    ``StochasticDrop`` and the float ``dropout`` attribute inside ``nn.MultiheadAttention`` keep
    their rates.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"dropout rate must be in [0, 1], got {rate}")
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = float(rate)
            changed += 1
    return changed


def get_dropout(model: nn.Module) -> list[float]:
    """The rate of every ``nn.Dropout`` in ``model``, in module order (empty when none)."""
    return [float(m.p) for m in model.modules() if isinstance(m, nn.Dropout)]
