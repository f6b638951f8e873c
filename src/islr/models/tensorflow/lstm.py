"""Stacked LSTM classifier (the seed's ``LSTMClassifier``): output at the last valid frame."""

from __future__ import annotations

from typing import Any

import keras

from islr.errors import ConfigError
from islr.models.registry import register_model
from islr.models.tensorflow.layers import (
    Dropout,
    MaskedLayer,
    ProbabilityPredictor,
    SequenceClassifier,
    materialize,
    prefix_mask,
)

__all__ = ["LSTMClassifier", "LSTMEncoder", "LSTMPredictor", "build_lstm"]


class LSTMEncoder(MaskedLayer):
    """Stacked ``keras.layers.LSTM`` with :class:`Dropout` between them -> (B, hidden).

    The LSTMs run over the frames up to each row's last real one (a prefix mask: Keras carries the
    state through masked steps), so the last output is the output at the last valid frame and
    padding appended at the end changes nothing. Each LSTM has ``4H(F + H) + 4H`` parameters (one
    bias vector; the torch twin freezes its second bias at zero to match).
    """

    def __init__(self, hidden_dim: int, num_layers: int, dropout: float, **kwargs: Any):
        super().__init__(**kwargs)
        if num_layers < 1 or hidden_dim < 1:
            raise ConfigError(
                f"LSTM needs num_layers >= 1 and hidden_dim >= 1, got {num_layers}, {hidden_dim}"
            )
        self.lstms = [
            keras.layers.LSTM(hidden_dim, return_sequences=i < num_layers - 1, name=f"lstm_{i}")
            for i in range(num_layers)
        ]
        self.between = [Dropout(dropout, name=f"dropout_{i}") for i in range(num_layers - 1)]
        self.hidden_dim = hidden_dim

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        steps = prefix_mask(mask)
        out = x
        for i, lstm in enumerate(self.lstms):
            if i > 0:
                out = self.between[i - 1](out, training=training)
            out = lstm(out, mask=steps, training=training)
        return out


class LSTMClassifier(SequenceClassifier):
    """Stacked LSTM -> output at the last valid frame -> Dropout -> Dense(num_classes)."""

    def __init__(self, input_dim: int, num_classes: int, hidden_dim: int = 128,
                 num_layers: int = 2, dropout: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.encoder = LSTMEncoder(hidden_dim, num_layers, dropout, name="encoder")
        self.dropout = Dropout(dropout, name="dropout")
        self.output_layer = keras.layers.Dense(num_classes, name="output_layer")

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        features = self.encoder(x, mask=mask, training=training)
        return self.output_layer(self.dropout(features, training=training))


class LSTMPredictor(ProbabilityPredictor):
    """Inference wrapper around an :class:`LSTMClassifier`: probabilities and top class."""


@register_model("lstm", framework="tensorflow")
def build_lstm(input_dim: int, num_classes: int, **params: Any) -> LSTMClassifier:
    """Registry builder for ``lstm`` (parameters from configs/models/lstm.yaml)."""
    return materialize(LSTMClassifier(input_dim, num_classes, **params), input_dim)
