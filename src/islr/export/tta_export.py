"""Mirror test-time augmentation inside exported graphs (``islr export --tta mirror``).

Features graphs (ONNX, TFLite) take ``x`` of width ``2F``: the features of the sequence, then
the features of its mirror (the prepared landmarks mirrored before featurize, computed by the
predictor in numpy, :mod:`islr.data.tta`); the graph runs the model on both halves with the
same mask and averages the logits. The Kaggle graph takes raw frames, so it prepares them,
mirrors the prepared points in the graph (:func:`tf_mirror`, the permutation of
:func:`islr.data.tta.mirror_map`) and featurizes both.

Frameworks are imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from islr.config import PreprocessConfig
from islr.data.tta import mirror_map


def torch_feature_tta(model: Any, input_dim: int) -> Any:
    """A torch module ``(x (B, T, 2F), mask) -> mean of model(x[..., :F]) and model(x[..., F:])``."""
    from torch import nn

    class MirrorTTA(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: Any, mask: Any) -> Any:
            return (self.inner(x[..., :input_dim], mask) + self.inner(x[..., input_dim:], mask)) * 0.5

    return MirrorTTA(model).eval()


def keras_feature_tta(model: Any, input_dim: int) -> Any:
    """The Keras counterpart of :func:`torch_feature_tta` (for TFLite features exports)."""
    import keras

    class MirrorTTA(keras.Model):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def call(self, inputs: Any, training: bool = False) -> Any:
            x, mask = inputs
            plain = self.inner([x[..., :input_dim], mask], training=training)
            mirror = self.inner([x[..., input_dim:], mask], training=training)
            return (plain + mirror) * 0.5

    return MirrorTTA(model)


def tf_mirror(x: Any, cfg: PreprocessConfig) -> Any:
    """Mirror a prepared ``(L, P, C)`` tensor in the graph: the point swap, then ``x -> 1 - x``."""
    import tensorflow as tf

    perm, x_pos = mirror_map(cfg)
    y = tf.gather(x, perm.astype(np.int32), axis=1)
    if x_pos is None:
        return y
    width = len(cfg.coords)
    scale = np.ones(width, np.float32)
    shift = np.zeros(width, np.float32)
    scale[x_pos], shift[x_pos] = -1.0, 1.0  # NaN stays NaN
    return y * tf.constant(scale) + tf.constant(shift)


__all__ = ["keras_feature_tta", "tf_mirror", "torch_feature_tta"]
