"""The seed's ``CVTransferLearningModel``: a 2D CNN over a (coords, frames, landmarks) image.

Features are laid out landmark-major, ``F = landmarks * coords`` with feature ``l * coords + c``
(the flattening of a (frames, landmarks, coords) array), so ``x`` (B, T, F) becomes an image
(B, coords, T, landmarks) with one channel per coordinate.

``arch="resnet_small"`` is built here and is padding invariant: no stride along time, the mask is
re-applied after every layer that mixes frames (padded frames stay exactly zero, the same as the
convolution's own zero padding), then a mean over landmarks and a masked mean over time.
``"timm:<name>"`` and ``"torchvision:<name>"`` build those libraries' networks with
``weights=None`` when the library is installed; weights come only from the local file
``pretrained_weights``. Those networks may stride in time, so they are not padding invariant.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

from islr.errors import ConfigError, ModelError
from islr.models.registry import register_model
from islr.models.torch.layers import masked_mean

__all__ = ["CVTransferLearningModel", "ResidualBlock2d", "ResNetSmall", "build_cnn_transfer"]


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: tuple[int, int]) -> nn.Sequential:
    """Conv2d without bias (BatchNorm follows) + BatchNorm2d."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out))


class ResidualBlock2d(nn.Module):
    """Two 3x3 conv+BN with a residual; stride (1, 2) halves landmarks, never frames.

    The skip is a 1x1 conv+BN when the width changes, else every second landmark (the
    parameter-free equivalent of a strided identity).
    """

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int] = (1, 2)):
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, 3, stride)
        self.conv2 = _conv_bn(c_out, c_out, 3, (1, 1))
        self.project = _conv_bn(c_in, c_out, 1, stride) if c_in != c_out else None
        self.stride = stride
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, mask4: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv1(x)) * mask4
        h = self.conv2(h)
        skip = (
            self.project(x)
            if self.project is not None
            else x[:, :, :: self.stride[0], :: self.stride[1]]
        )
        return self.act(h + skip) * mask4


class ResNetSmall(nn.Module):
    """Stem conv+BN+ReLU, one residual block per width; output (B, widths[-1])."""

    def __init__(self, coords: int, widths: list[int]):
        super().__init__()
        if not widths or any(int(w) < 1 for w in widths):
            raise ConfigError(
                f"cnn_transfer: widths must be a non-empty list of positive ints, got {widths}"
            )
        widths = [int(w) for w in widths]
        self.stem = _conv_bn(coords, widths[0], 3, (1, 1))
        self.act = nn.ReLU()
        self.blocks = nn.ModuleList(
            ResidualBlock2d(a, b) for a, b in zip([widths[0]] + widths[:-1], widths)
        )
        self.num_features = widths[-1]

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask4 = mask.to(image.dtype)[:, None, :, None]
        h = self.act(self.stem(image * mask4)) * mask4
        for block in self.blocks:
            h = block(h, mask4)
        per_frame = h.mean(dim=3).transpose(1, 2)  # (B, T, C): mean over landmarks
        return masked_mean(per_frame, mask)


def _require(package: str, arch: str):
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"cnn_transfer arch {arch!r} needs the {package} package, which is not installed "
            f"(pip install {package}), or use arch 'resnet_small'"
        )
    return importlib.import_module(package)


def _replace_last_linear(model: nn.Module) -> int:
    """Swap the last ``nn.Linear`` of ``model`` for ``nn.Identity``; returns its in_features."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ModelError("cnn_transfer: the network has no Linear classifier to replace")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    in_features = getattr(parent, child).in_features
    setattr(parent, child, nn.Identity())
    return in_features


class _ExternalBackbone(nn.Module):
    """A timm/torchvision network used as a feature extractor on the masked landmark image."""

    def __init__(self, arch: str, coords: int):
        super().__init__()
        library, _, name = arch.partition(":")
        if not name:
            raise ConfigError(f"cnn_transfer arch {arch!r}: expected '{library}:<model name>'")
        if library == "timm":
            timm = _require("timm", arch)
            self.adapter = nn.Identity()
            self.net = timm.create_model(name, pretrained=False, in_chans=coords, num_classes=0)
            self.num_features = int(self.net.num_features)
        else:
            _require("torchvision", arch)
            models = importlib.import_module("torchvision.models")
            if not hasattr(models, name):
                raise ConfigError(f"cnn_transfer: torchvision has no model {name!r}")
            # torchvision networks take 3 channels; a 1x1 conv maps the coordinates onto them.
            self.adapter = nn.Conv2d(coords, 3, kernel_size=1)
            self.net = getattr(models, name)(weights=None)
            self.num_features = _replace_last_linear(self.net)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask4 = mask.to(image.dtype)[:, None, :, None]
        return self.net(self.adapter(image * mask4)).flatten(1)


def load_local_weights(module: nn.Module, path: str | Path) -> None:
    """Load a local state dict into ``module`` (keys of other shapes, e.g. a head, are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"{path}: pretrained_weights file not found (weights are never downloaded)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ModelError(f"{path}: no tensor matches the network's parameter names and shapes")
    module.load_state_dict(usable, strict=False)


class CVTransferLearningModel(nn.Module):
    """Landmark image -> CNN backbone -> Dropout -> Linear head."""

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        arch: str = "resnet_small",
        coords: int = 2,
        widths: list[int] | tuple[int, ...] = (32, 64, 128),
        dropout: float = 0.2,
        pretrained_weights: str = "",
    ):
        super().__init__()
        if coords < 1 or input_dim % coords:
            raise ConfigError(
                f"cnn_transfer: input_dim {input_dim} is not a multiple of coords {coords}"
            )
        self.coords = coords
        if arch == "resnet_small":
            self.backbone: nn.Module = ResNetSmall(coords, list(widths))
        elif arch.startswith(("timm:", "torchvision:")):
            self.backbone = _ExternalBackbone(arch, coords)
        else:
            raise ConfigError(
                f"cnn_transfer: unknown arch {arch!r}; use 'resnet_small', 'timm:<name>' "
                "or 'torchvision:<name>'"
            )
        if pretrained_weights:
            load_local_weights(self.backbone, pretrained_weights)
        self.dropout = nn.Dropout(dropout)
        self.output_layer = nn.Linear(self.backbone.num_features, num_classes)

    def to_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, landmarks*coords) -> (B, coords, T, landmarks)."""
        b, t, f = x.shape
        return x.reshape(b, t, f // self.coords, self.coords).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of ``x`` (B, T, F) with ``mask`` (B, T)."""
        features = self.backbone(self.to_image(x), mask)
        return self.output_layer(self.dropout(features))


@register_model("cnn_transfer", framework="torch")
def build_cnn_transfer(input_dim: int, num_classes: int, **params) -> CVTransferLearningModel:
    """Registry builder for ``cnn_transfer``."""
    return CVTransferLearningModel(input_dim, num_classes, **params)
