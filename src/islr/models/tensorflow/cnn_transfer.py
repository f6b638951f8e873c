"""The seed's ``CVTransferLearningModel``: a 2D CNN over a (frames, landmarks, coords) image.

Features are laid out landmark-major, ``F = landmarks * coords`` with feature ``l * coords + c``,
so ``x`` (B, T, F) becomes a channels-last image (B, T, landmarks, coords), one channel per
coordinate (the torch twin uses the channels-first (B, coords, T, landmarks) of the same values).

``arch="resnet_small"`` is built here and is padding invariant: no stride along time, the mask is
re-applied after every layer that mixes frames (padded frames stay exactly zero, the same as the
convolution's own zero padding), then a mean over landmarks and a masked mean over time. Padding
is explicit and symmetric (torch's ``padding=1``) so a strided convolution sees the same
landmarks as in torch. BatchNorm counts every frame, as ``nn.BatchNorm2d`` in the twin.

``"keras:<Application>"`` builds a ``keras.applications`` network (``weights=None``) behind a 1x1
convolution mapping the coordinates onto 3 channels. Weights come only from the local file
``pretrained_weights`` (never downloaded). Those networks stride in time: not padding invariant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras import ops

from islr.errors import ConfigError, ModelError
from islr.models.registry import register_model
from islr.models.tensorflow.layers import (
    BatchNorm,
    CompositeLayer,
    Dropout,
    SequenceClassifier,
    masked_mean,
    materialize,
)

__all__ = ["CVTransferLearningModel", "ResNetSmall", "ResidualBlock2D", "build_cnn_transfer"]


class ConvBN(CompositeLayer):
    """Conv2D without bias (BatchNorm follows) + BatchNorm, symmetric zero padding ``k // 2``."""

    def __init__(self, filters: int, kernel: int, stride: tuple[int, int], **kwargs: Any):
        super().__init__(**kwargs)
        self.pad = kernel // 2
        self.conv = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid",
                                        use_bias=False, name="conv")
        self.norm = BatchNorm(name="norm")

    def call(self, x: Any, training: bool = False) -> Any:
        if self.pad:
            p = self.pad
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        return self.norm(self.conv(x), training=training)


class ResidualBlock2D(CompositeLayer):
    """Two 3x3 conv+BN with a residual; stride (1, 2) halves landmarks, never frames.

    The skip is a 1x1 conv+BN when the width changes, else every second landmark (the
    parameter-free equivalent of a strided identity).
    """

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int] = (1, 2), **kwargs: Any):
        super().__init__(**kwargs)
        self.conv1 = ConvBN(c_out, 3, stride, name="conv1")
        self.conv2 = ConvBN(c_out, 3, (1, 1), name="conv2")
        self.project = ConvBN(c_out, 1, stride, name="project") if c_in != c_out else None
        self.stride = stride

    def call(self, x: Any, mask4: Any, training: bool = False) -> Any:
        h = ops.relu(self.conv1(x, training=training)) * mask4
        h = self.conv2(h, training=training)
        if self.project is not None:
            skip = self.project(x, training=training)
        else:
            skip = x[:, :: self.stride[0], :: self.stride[1], :]
        return ops.relu(h + skip) * mask4


class ResNetSmall(keras.Model):
    """Stem conv+BN+ReLU, one residual block per width; ``(image, mask)`` -> (B, widths[-1])."""

    def __init__(self, coords: int, widths: list[int], **kwargs: Any):
        super().__init__(**kwargs)
        if not widths or any(int(w) < 1 for w in widths):
            raise ConfigError(
                f"cnn_transfer: widths must be a non-empty list of positive ints, got {widths}"
            )
        widths = [int(w) for w in widths]
        self.stem = ConvBN(widths[0], 3, (1, 1), name="stem")
        self.blocks = [
            ResidualBlock2D(a, b, name=f"block_{i}")
            for i, (a, b) in enumerate(zip([widths[0]] + widths[:-1], widths))
        ]
        self.num_features = widths[-1]

    def build(self, input_shape: Any = None) -> None:
        """Sub-layers build themselves when first called (see CompositeLayer)."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        image, mask = inputs
        mask4 = ops.reshape(ops.cast(mask, image.dtype), (*ops.shape(mask), 1, 1))
        h = ops.relu(self.stem(image * mask4, training=training)) * mask4
        for block in self.blocks:
            h = block(h, mask4=mask4, training=training)
        return masked_mean(ops.mean(h, axis=2), mask)  # mean over landmarks, then over frames


class KerasApplicationBackbone(keras.Model):
    """A ``keras.applications`` network (no top, average pooled) on the masked landmark image."""

    MIN_SIZE = 32  # frames and landmarks the network needs (five stride-2 stages)

    def __init__(self, arch: str, **kwargs: Any):
        super().__init__(**kwargs)
        name = arch.partition(":")[2]
        factory = getattr(keras.applications, name, None)
        if not name or not callable(factory):
            raise ConfigError(f"cnn_transfer: keras.applications has no network {name!r}")
        # The applications expect 3 channels; a 1x1 convolution maps the coordinates onto them.
        self.adapter = keras.layers.Conv2D(3, 1, name="adapter")
        try:
            self.net = factory(include_top=False, weights=None, input_shape=(None, None, 3),
                               pooling="avg")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cnn_transfer: cannot build {arch!r} on landmark images ({exc})") from None
        self.num_features = int(self.net.output_shape[-1])

    def build(self, input_shape: Any = None) -> None:
        """Sub-layers build themselves when first called (see CompositeLayer)."""

    def call(self, inputs: Any, training: bool = False) -> Any:
        image, mask = inputs
        mask4 = ops.reshape(ops.cast(mask, image.dtype), (*ops.shape(mask), 1, 1))
        image = image * mask4
        # The applications halve both axes five times: below 32 frames or landmarks a feature map
        # becomes empty and its average pool undefined (NaN or garbage). Zero frames/landmarks are
        # appended up to 32, the same zeros as masked frames.
        shape = ops.shape(image)
        extra_t = ops.maximum(self.MIN_SIZE - shape[1], 0)
        extra_l = ops.maximum(self.MIN_SIZE - shape[2], 0)
        image = ops.pad(image, [[0, 0], [0, extra_t], [0, extra_l], [0, 0]])
        return self.net(self.adapter(image), training=training)


def load_local_weights(model: keras.Model, path: str | Path) -> None:
    """Load local Keras weights (``.weights.h5``) into ``model``; never downloads anything."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: pretrained_weights file not found (weights are never downloaded)")
    try:
        model.load_weights(str(path), skip_mismatch=True)
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path}: cannot load pretrained weights ({exc})") from None


class CVTransferLearningModel(SequenceClassifier):
    """Landmark image -> CNN backbone -> Dropout -> Dense head."""

    def __init__(self, input_dim: int, num_classes: int, arch: str = "resnet_small",
                 coords: int = 2, widths: list[int] | tuple[int, ...] = (32, 64, 128),
                 dropout: float = 0.2, pretrained_weights: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        if coords < 1 or input_dim % coords:
            raise ConfigError(
                f"cnn_transfer: input_dim {input_dim} is not a multiple of coords {coords}"
            )
        self.input_dim = input_dim
        self.num_classes = num_classes
        self.coords = coords
        if arch == "resnet_small":
            self.backbone = ResNetSmall(coords, list(widths), name="backbone")
        elif arch.startswith("keras:"):
            self.backbone = KerasApplicationBackbone(arch, name="backbone")
        elif arch.startswith(("timm:", "torchvision:")):
            raise ConfigError(
                f"cnn_transfer arch {arch!r} is a PyTorch network; with TensorFlow use "
                "'resnet_small' or 'keras:<Application>'"
            )
        else:
            raise ConfigError(
                f"cnn_transfer: unknown arch {arch!r}; use 'resnet_small' or 'keras:<Application>'"
            )
        self.pretrained_weights = pretrained_weights
        self.dropout = Dropout(dropout, name="dropout")
        self.output_layer = keras.layers.Dense(num_classes, name="output_layer")

    def to_image(self, x: Any) -> Any:
        """(B, T, landmarks*coords) -> (B, T, landmarks, coords)."""
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.input_dim // self.coords, self.coords))

    def classify(self, x: Any, mask: Any, training: bool = False) -> Any:
        features = self.backbone([self.to_image(x), mask], training=training)
        return self.output_layer(self.dropout(features, training=training))


@register_model("cnn_transfer", framework="tensorflow")
def build_cnn_transfer(input_dim: int, num_classes: int, **params: Any) -> CVTransferLearningModel:
    """Registry builder for ``cnn_transfer``; loads ``pretrained_weights`` into the backbone."""
    model = CVTransferLearningModel(input_dim, num_classes, **params)
    # Keras applications downsample in time too: build them on a few frames.
    materialize(model, input_dim, frames=1 if isinstance(model.backbone, ResNetSmall) else 32)
    if model.pretrained_weights:
        load_local_weights(model.backbone, model.pretrained_weights)
    return model
