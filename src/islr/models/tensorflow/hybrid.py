"""The seed's ``HybridModel``: an LSTM branch and a transformer branch, features concatenated."""

from __future__ import annotations

from typing import Any

import keras

from islr.models.registry import register_model
from islr.models.tensorflow.layers import Dropout, SequenceClassifier, materialize
from islr.models.tensorflow.lstm import LSTMEncoder
from islr.models.tensorflow.transformer import TransformerEncoderBackbone

__all__ = ["HybridModel", "build_hybrid"]


class HybridModel(SequenceClassifier):
    """LSTM (last valid frame) ‖ transformer (masked mean) -> concat -> Dropout -> Dense.

    The transformer branch is the ``transformer`` family's backbone (sinusoidal positions, pre-norm
    layers, final LayerNorm); ``dropout`` also sits between stacked LSTM layers.
    """

    def __init__(self, input_dim: int, num_classes: int, lstm_hidden_dim: int = 128,
                 lstm_layers: int = 1, d_model: int = 128, num_heads: int = 4,
                 dim_feedforward: int = 256, num_layers: int = 2, dropout: float = 0.1,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.lstm = LSTMEncoder(lstm_hidden_dim, lstm_layers, dropout, name="lstm")
        self.transformer = TransformerEncoderBackbone(
            d_model, num_heads, dim_feedforward, num_layers, dropout, norm_first=True,
            name="transformer",
        )
        self.dropout = Dropout(dropout, name="dropout")
        self.fc = keras.layers.Dense(num_classes, name="fc")

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        features = keras.ops.concatenate(
            [self.lstm(x, mask=mask, training=training),
             self.transformer(x, mask=mask, training=training)],
            axis=-1,
        )
        return self.fc(self.dropout(features, training=training))


@register_model("hybrid", framework="tensorflow")
def build_hybrid(input_dim: int, num_classes: int, **params: Any) -> HybridModel:
    """Registry builder for ``hybrid`` (configs/models/hybrid.yaml)."""
    return materialize(HybridModel(input_dim, num_classes, **params), input_dim)
