"""Stacked LSTM classifier (the seed's ``LSTMClassifier``): output at the last valid frame."""

from __future__ import annotations

import torch
from torch import nn

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.torch.layers import ProbabilityPredictor, last_valid_index, pack_by_mask

__all__ = ["LSTMClassifier", "LSTMEncoder", "LSTMPredictor", "build_lstm", "keras_like_lstm"]


def _exporting() -> bool:
    """True while tracing, compiling or exporting, where PackedSequence is not supported."""
    return bool(
        torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
    )


def keras_like_lstm(input_size: int, hidden_size: int) -> nn.LSTM:
    """One ``nn.LSTM`` layer with the trainable parameters of a Keras ``LSTM``.

    torch adds two bias vectors (``b_ih + b_hh``) where Keras has one; ``b_hh`` is fixed at zero
    and frozen so both frameworks train the same function with the same parameter count
    (4H(F+H) + 4H). As in Keras (``unit_forget_bias``), the forget-gate bias starts at 1.
    """
    lstm = nn.LSTM(input_size, hidden_size, num_layers=1, batch_first=True)
    with torch.no_grad():
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0.zero_()
        lstm.bias_ih_l0[hidden_size : 2 * hidden_size] = 1.0  # torch gate order: i, f, g, o
    lstm.bias_hh_l0.requires_grad_(False)
    return lstm


class LSTMEncoder(nn.Module):
    """Stacked one-layer LSTMs with ``nn.Dropout`` between them -> (B, hidden) at the last frame.

    Layers are separate modules, so the between-layer dropout is an ordinary ``nn.Dropout``
    (dynamic dropout can change it) instead of ``nn.LSTM``'s float ``dropout``. Sequences are
    packed up to their last real frame; while tracing/exporting the padded sequence runs instead
    and the output is gathered at the last real frame (the same values: an LSTM is causal).
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, dropout: float):
        super().__init__()
        if num_layers < 1 or hidden_dim < 1:
            raise ConfigError(
                f"LSTM needs num_layers >= 1 and hidden_dim >= 1, got {num_layers}, {hidden_dim}"
            )
        sizes = [input_dim] + [hidden_dim] * num_layers
        self.layers = nn.ModuleList(keras_like_lstm(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.between = nn.ModuleList(nn.Dropout(dropout) for _ in range(num_layers - 1))
        self.hidden_dim = hidden_dim
        self.use_packing = True

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.use_packing and not _exporting():
            return self._forward_packed(x, mask)
        return self._forward_padded(x, mask)

    def _forward_packed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        seq = pack_by_mask(x, mask)
        h_last = None
        for i, layer in enumerate(self.layers):
            if i > 0:
                seq = seq._replace(data=self.between[i - 1](seq.data))
            seq, (h_n, _) = layer(seq)
            h_last = h_n[-1]
        # h_n comes back in the original batch order (PackedSequence keeps unsorted_indices).
        return h_last

    def _forward_padded(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = x
        for i, layer in enumerate(self.layers):
            if i > 0:
                out = self.between[i - 1](out)
            out, _ = layer(out)
        index = last_valid_index(mask).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        return out.gather(1, index).squeeze(1)


class LSTMClassifier(nn.Module):
    """Stacked LSTM -> output at the last valid frame -> Dropout -> Linear(num_classes)."""

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden_dim: int = 128,
        num_layers: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.encoder = LSTMEncoder(input_dim, hidden_dim, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.output_layer = nn.Linear(hidden_dim, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of ``x`` (B, T, F) with ``mask`` (B, T)."""
        return self.output_layer(self.dropout(self.encoder(x, mask)))


class LSTMPredictor(ProbabilityPredictor):
    """Inference wrapper around an :class:`LSTMClassifier`: probabilities and top class."""

    def __init__(self, model: LSTMClassifier):
        super().__init__(model)


@register_model("lstm", framework="torch")
def build_lstm(input_dim: int, num_classes: int, **params) -> LSTMClassifier:
    """Registry builder for ``lstm`` (parameters from configs/models/lstm.yaml)."""
    return LSTMClassifier(input_dim, num_classes, **params)
