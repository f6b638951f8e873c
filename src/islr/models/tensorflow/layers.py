"""Pieces shared by the Keras 3 (TensorFlow backend) model families.

Every model maps ``[x, mask]`` -- ``x`` (B, T, F) float32 and ``mask`` (B, T) bool (True = real
frame) -- to logits (B, classes). The helpers here keep that mapping independent of how many padded
frames follow the real ones (masked pooling, key masks safe for empty sequences, prefix masks for
recurrent layers) and keep graphs export-friendly: shapes are dynamic in B and T, and no Python
branch depends on a tensor value.

Dropout: :class:`Dropout` is a ``keras.layers.Dropout`` whose rate lives in a variable. Keras'
own Dropout reads ``self.rate`` as a Python float while a ``tf.function`` is traced, so a rate
changed after the training step was compiled never reaches it (measured: rate 0.1 -> 0.5 still
dropped 9% in the compiled function). :func:`set_dropout` changes the rate of every Dropout layer;
:class:`LateDropout` and :class:`StochasticDepth` are separate classes it leaves alone.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import keras
from keras import ops

from islr.errors import ConfigError

__all__ = [
    "BatchNorm",
    "CompositeLayer",
    "Dropout",
    "LateDropout",
    "LayerNorm",
    "MaskedBatchNormalization",
    "MaskedLayer",
    "MultiHeadSelfAttention",
    "ProbabilityPredictor",
    "SequenceClassifier",
    "StochasticDepth",
    "get_dropout",
    "iter_layers",
    "last_valid_index",
    "masked_mean",
    "materialize",
    "prefix_mask",
    "safe_mask",
    "set_dropout",
    "sinusoidal_positions",
    "split_inputs",
]

# The torch twins use torch's defaults; the same epsilons keep transferred weights equivalent.
LAYER_NORM_EPSILON = 1e-5
BATCH_NORM_EPSILON = 1e-5
# Added to the scores of hidden keys: exp() of it underflows to exactly 0 in float32.
_MASKED_SCORE = -1e9


# ----------------------------------------------------------------------------- mask helpers
def split_inputs(inputs: Any) -> tuple[Any, Any]:
    """``(x, mask)`` from ``[x, mask]``, ``{"x", "mask"}`` or ``x`` alone (every frame real)."""
    if isinstance(inputs, dict):
        x, mask = inputs["x"], inputs.get("mask")
    elif isinstance(inputs, (list, tuple)):
        if len(inputs) != 2:
            raise ConfigError(f"a model takes [x, mask]; got {len(inputs)} inputs")
        x, mask = inputs
    else:
        x, mask = inputs, None
    x = ops.convert_to_tensor(x)
    if mask is None:
        shape = ops.shape(x)
        mask = ops.ones((shape[0], shape[1]), dtype="bool")
    return x, ops.cast(mask, "bool")


def safe_mask(mask: Any) -> Any:
    """``mask`` (B, T) with frame 0 marked real in rows that have no real frame.

    Attention over keys that are all hidden has no defined weights; an empty sequence attends to
    (and pools) its first, zero frame instead, exactly like the torch twin.
    """
    mask = ops.cast(mask, "bool")
    empty = ops.logical_not(ops.any(mask, axis=1, keepdims=True))
    first = ops.expand_dims(ops.equal(ops.arange(ops.shape(mask)[1]), 0), 0)
    return ops.logical_or(mask, ops.logical_and(empty, first))


def last_valid_index(mask: Any) -> Any:
    """Index (B,) of the last real frame of each row (0 for a row without real frames)."""
    steps = ops.arange(1, ops.shape(mask)[1] + 1, dtype="int32")
    last = ops.max(ops.cast(mask, "int32") * ops.expand_dims(steps, 0), axis=1)
    return ops.maximum(last, 1) - 1


def prefix_mask(mask: Any) -> Any:
    """True for every frame up to each row's last real frame (at least frame 0).

    Recurrent layers run over this prefix, which is what torch's ``pack_padded_sequence`` with
    ``last_valid_index + 1`` lengths does: masked frames inside a sequence are still processed.
    """
    steps = ops.expand_dims(ops.arange(ops.shape(mask)[1], dtype="int32"), 0)
    return ops.less_equal(steps, ops.expand_dims(last_valid_index(mask), 1))


def masked_mean(x: Any, mask: Any) -> Any:
    """Mean of ``x`` (B, T, C) over the real frames of ``mask`` (B, T) -> (B, C)."""
    weights = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    total = ops.sum(x * weights, axis=1)
    return total / ops.maximum(ops.sum(weights, axis=1), 1.0)


def sinusoidal_positions(length: Any, dim: int, dtype: str = "float32") -> Any:
    """The fixed sine/cosine table (length, dim): even channels sin, odd channels cos.

    ``length`` may be a dynamic scalar tensor. Same values as the torch twin.
    """
    position = ops.expand_dims(ops.cast(ops.arange(length), "float32"), 1)
    half = ops.cast(ops.arange(0, dim, 2), "float32")
    angle = position * ops.exp(half * (-math.log(10000.0) / dim))  # (T, ceil(dim / 2))
    # Interleave sin/cos: (T, ceil, 2) -> (T, 2 * ceil), then drop the extra cos of an odd dim.
    table = ops.reshape(ops.stack([ops.sin(angle), ops.cos(angle)], axis=-1), (-1, 2 * ((dim + 1) // 2)))
    return ops.cast(table[:, :dim], dtype)


# ----------------------------------------------------------------------------- base layers
class CompositeLayer(keras.layers.Layer):
    """A layer made of sub-layers, which build themselves when first called.

    Without a ``build`` of its own, Keras 3 would trace ``call`` symbolically before the first
    eager call just to build the sub-layers (measured: 0.7 of 0.8 s to build a small transformer).
    """

    def build(self, input_shape: Any = None) -> None:
        """Nothing to create here: every weight belongs to a sub-layer."""


class MaskedLayer(CompositeLayer):
    """A layer taking the frame mask as an explicit ``mask`` argument.

    Keras treats a ``mask=`` argument as its own masking metadata: it warns for layers that do not
    "support masking" and attaches masks to outputs of those that do. The zoo passes masks
    explicitly everywhere, so these layers accept one and attach none to their output.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        return None


# ----------------------------------------------------------------------------- dropout family
def _check_rate(rate: float, what: str) -> float:
    if not 0.0 <= float(rate) <= 1.0:
        raise ConfigError(f"{what} must be in [0, 1], got {rate}")
    return float(rate)


def _drop(inputs: Any, rate: Any, noise_shape: Sequence[Any], seed: Any) -> Any:
    """Inverted dropout of ``inputs`` with a (possibly variable) ``rate``; rate 1 gives zeros."""
    rate = ops.cast(rate, inputs.dtype)
    noise = keras.random.uniform(noise_shape, seed=seed, dtype=inputs.dtype)
    keep = ops.cast(ops.greater_equal(noise, rate), inputs.dtype)  # uniform < 1: rate 1 keeps none
    return inputs * keep / ops.maximum(1.0 - rate, 1e-7)


class Dropout(keras.layers.Dropout):
    """``keras.layers.Dropout`` whose rate is read from a variable at run time.

    Setting ``layer.rate`` updates the variable, so the change reaches training steps that were
    already compiled with ``tf.function``. The variable is deliberately untracked: it is a training
    hyper-parameter, not a model weight (it is neither counted nor saved with the weights).
    """

    def __init__(self, rate: float, noise_shape: Sequence[int | None] | None = None,
                 seed: int | None = None, **kwargs: Any):
        # keras.layers.Dropout.__init__ skips its seed generator for rate 0 and stores a float;
        # the layer state is set up here instead.
        keras.layers.Layer.__init__(self, **kwargs)
        rate = _check_rate(rate, "dropout")
        # object.__setattr__: kept out of Keras' weight tracking on purpose (see class docstring).
        object.__setattr__(
            self, "_rate_variable",
            keras.Variable(rate, dtype="float32", trainable=False, name="dropout_rate"),
        )
        object.__setattr__(self, "_rate_value", rate)
        self.seed = seed
        self.noise_shape = self._validate_noise_shape(noise_shape)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self._build_at_init()

    @property
    def rate(self) -> float:
        """The current dropout rate."""
        return self._rate_value

    @rate.setter
    def rate(self, value: float) -> None:
        value = _check_rate(value, "dropout")
        object.__setattr__(self, "_rate_value", value)
        self._rate_variable.assign(value)

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training:
            return inputs
        shape = ops.shape(inputs)
        noise_shape = shape if self.noise_shape is None else tuple(
            shape[i] if d is None else d for i, d in enumerate(self.noise_shape)
        )
        return _drop(inputs, self._rate_variable, noise_shape, self.seed_generator)


class StochasticDepth(keras.layers.Layer):
    """Per-sample stochastic depth: drops a whole residual branch of a sample in training.

    Noise shape (B, 1, ..., 1); kept branches are scaled by ``1 / (1 - rate)``. Not a Dropout, so
    dynamic dropout leaves its rate alone.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.rate == 0.0:
            return inputs
        noise_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        return _drop(inputs, self.rate, noise_shape, self.seed_generator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate}


class LateDropout(keras.layers.Layer):
    """Dropout that switches on after ``start_step`` training forward passes.

    The step counter is a non-trainable int64 weight (saved with the weights, so a resumed run
    continues counting). Both branches are computed and selected with ``where``: no Python branch on
    a tensor. Not a Dropout, so dynamic dropout leaves it alone.
    """

    def __init__(self, rate: float, start_step: int = 0, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"late_dropout must be in [0, 1), got {rate}")
        if int(start_step) < 0:
            raise ConfigError(f"late_dropout_start must be >= 0, got {start_step}")
        self.rate = float(rate)
        self.start_step = int(start_step)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any) -> None:
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False, name="step",
            aggregation="only_first_replica",
        )

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.rate == 0.0:
            return inputs
        dropped = _drop(inputs, self.rate, ops.shape(inputs), self.seed_generator)
        out = ops.where(ops.greater_equal(self.step, self.start_step), dropped, inputs)
        self.step.assign_add(ops.ones((), dtype="int64"))
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "start_step": self.start_step}


def iter_layers(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer inside ``model`` (itself included), each once."""
    return iter(model._flatten_layers(include_self=True, recursive=True))


def set_dropout(model: keras.layers.Layer, rate: float) -> int:
    """Set the rate of every ``keras.layers.Dropout`` in ``model``; returns how many changed.

    :class:`LateDropout` and :class:`StochasticDepth` keep their rates. A plain Keras Dropout (from
    a foreign model, e.g. a Keras application) is changed too, but its new rate only reaches
    functions traced afterwards; a warning says so.
    """
    rate = _check_rate(rate, "dropout rate")
    changed = 0
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.Dropout):
            if not isinstance(layer, Dropout):
                warnings.warn(
                    f"{layer.name} is a plain keras Dropout: compiled functions keep its old rate",
                    stacklevel=2,
                )
            layer.rate = rate
            changed += 1
    return changed


def get_dropout(model: keras.layers.Layer) -> list[float]:
    """The rate of every ``keras.layers.Dropout`` in ``model``, in layer order (empty when none)."""
    return [float(layer.rate) for layer in iter_layers(model)
            if isinstance(layer, keras.layers.Dropout)]


# ----------------------------------------------------------------------------- normalisation
def LayerNorm(**kwargs: Any) -> keras.layers.LayerNormalization:  # noqa: N802 - a layer factory
    """LayerNormalization with torch's epsilon (1e-5)."""
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, **kwargs)


class MaskedBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization whose ``mask`` only selects the frames of the batch statistics.

    Keras 3 BatchNormalization already computes masked moments; this subclass only stops it from
    attaching the mask to its output (see :class:`MaskedLayer`). Parameters: 2C trainable, 2C
    moving statistics.
    """

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None


def BatchNorm(momentum: float = 0.9, **kwargs: Any) -> MaskedBatchNormalization:  # noqa: N802
    """BatchNormalization with torch's epsilon; ``momentum`` in Keras terms (0.9 = torch 0.1).

    Called with ``mask=`` its batch statistics count real frames only (the torch twin's
    MaskedBatchNorm1d does the same).
    """
    return MaskedBatchNormalization(momentum=momentum, epsilon=BATCH_NORM_EPSILON, **kwargs)


# ----------------------------------------------------------------------------- attention
class MultiHeadSelfAttention(MaskedLayer):
    """Self-attention: qkv Dense(3*dim), masked softmax, attention Dropout, Dense(dim).

    Keys at padded frames get no weight; ``causal`` also hides later frames from each query. The
    qkv features are laid out (3, heads, head_dim) like the torch twin. ``scale`` defaults to
    ``head_dim ** -0.5``. With ``use_bias`` it has ``4 dim^2 + 4 dim`` parameters, the count of
    torch's ``nn.MultiheadAttention``.
    """

    def __init__(self, dim: int, num_heads: int, attn_dropout: float = 0.0, causal: bool = False,
                 scale: float | None = None, use_bias: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if dim % num_heads:
            raise ConfigError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = float(scale) if scale is not None else self.head_dim**-0.5
        self.causal = causal
        self.qkv = keras.layers.Dense(3 * dim, use_bias=use_bias, name="qkv")
        self.attn_drop = Dropout(attn_dropout, name="attn_drop")
        self.proj = keras.layers.Dense(dim, use_bias=use_bias, name="proj")

    def call(self, x: Any, mask: Any, training: bool = False) -> Any:
        shape = ops.shape(x)
        batch, length = shape[0], shape[1]
        qkv = ops.reshape(self.qkv(x), (batch, length, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, B, H, T, head_dim)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * self.scale  # (B, H, T, T)
        # expand_dims, not [:, None, None, :]: TFLite has no bool StridedSlice with new axes.
        allowed = ops.expand_dims(ops.expand_dims(safe_mask(mask), 1), 1)  # (B, 1, 1, T) keys
        if self.causal:
            steps = ops.arange(length)
            allowed = ops.logical_and(allowed, ops.expand_dims(steps, 1) >= ops.expand_dims(steps, 0))
        scores = ops.where(allowed, scores, ops.cast(_MASKED_SCORE, scores.dtype))
        weights = self.attn_drop(ops.softmax(scores, axis=-1), training=training)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        return self.proj(ops.reshape(out, (batch, length, self.dim)))


# ----------------------------------------------------------------------------- models
class SequenceClassifier(keras.Model):
    """Base of the zoo's models: ``call([x, mask], training)`` -> ``classify(x, mask, training)``.

    Only Keras' own ``name``/``dtype``/``trainable`` keywords reach ``keras.Model``; any other
    unknown parameter is a ``TypeError`` (the registry reports it as a ConfigError), as in torch.
    """

    _KERAS_KEYWORDS = frozenset({"name", "dtype", "trainable"})

    def __new__(cls, *args: Any, **kwargs: Any) -> SequenceClassifier:
        instance = super().__new__(cls, *args, **kwargs)
        # Remember the constructor arguments for get_config (Keras' automatic config gives None
        # for subclassed models); a bad argument is left for __init__ to report.
        try:
            bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        except TypeError:
            config = None
        else:
            bound.apply_defaults()
            config = {k: v for k, v in list(bound.arguments.items())[1:] if k != "kwargs"}
            config.update(bound.arguments.get("kwargs", {}))
        object.__setattr__(instance, "_constructor_config", config)
        return instance

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (input_dim, num_classes, the YAML parameters, name)."""
        return {**self._constructor_config, "name": self.name}

    def __init__(self, **kwargs: Any):
        unknown = sorted(set(kwargs) - self._KERAS_KEYWORDS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected parameters {unknown}")
        super().__init__(**kwargs)

    def build(self, input_shape: Any = None) -> None:
        """Sub-layers build themselves when first called (see :class:`CompositeLayer`)."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        x, mask = split_inputs(inputs)
        return self.classify(x, mask, training=bool(training))

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        """Logits (B, classes) of ``x`` (B, T, F) with ``mask`` (B, T) bool."""
        raise NotImplementedError


def materialize(model: keras.Model, input_dim: int, frames: int = 2) -> keras.Model:
    """Create ``model``'s weights by one inference call on zeros (1, frames, input_dim)."""
    model([ops.zeros((1, frames, input_dim)), ops.ones((1, frames), dtype="bool")], training=False)
    return model


class ProbabilityPredictor(keras.Model):
    """Inference wrapper: class probabilities (B, classes) from a classifier, always inference mode.

    Being a Keras model it can be exported as is (a graph that ends in softmax).
    """

    def __init__(self, model: keras.Model, **kwargs: Any):
        super().__init__(**kwargs)
        self.classifier = model

    def build(self, input_shape: Any = None) -> None:
        """The wrapped classifier is built already or builds when called."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        return ops.softmax(self.classifier(inputs, training=False), axis=-1)

    def top_class(self, x: Any, mask: Any) -> tuple[Any, Any]:
        """Top class index (B,) and its probability (B,), as numpy arrays."""
        probs = ops.convert_to_numpy(self([x, mask]))
        return probs.argmax(axis=-1), probs.max(axis=-1)
