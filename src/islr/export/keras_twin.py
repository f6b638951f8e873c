"""The Keras twin of a PyTorch model, with the PyTorch weights copied in.

The zoo builds every family in both frameworks from the same parameters, with sub-layers in the
same order (models/torch and models/tensorflow share file and layer names). That makes a
PyTorch -> TFLite route without litert-torch or onnx2tf: build the Keras twin, copy the weights
tensor by tensor in order, check that both give the same logits, convert the Keras model.

The copy walks the torch ``state_dict`` (minus BatchNorm's ``num_batches_tracked`` counters) and
the Keras ``model.weights`` side by side and converts each tensor by its rank:

* vectors and scalars as they are (LayerNorm/BatchNorm gamma, beta, running statistics, biases);
* matrices transposed (``nn.Linear`` weight ``(out, in)`` -> ``Dense`` kernel ``(in, out)``;
  ``nn.MultiheadAttention``'s ``in_proj_weight`` -> the fused ``qkv`` kernel; ``nn.LSTM``'s
  ``weight_ih``/``weight_hh`` -> ``kernel``/``recurrent_kernel``, same i, f, g(c), o gate order);
* ``nn.LSTM``'s two bias vectors summed into Keras' one;
* rank 3 ``Conv1d`` ``(out, in, k)`` -> ``Conv1D`` ``(k, in, out)``, depthwise ``(C, 1, k)`` ->
  ``DepthwiseConv1D`` ``(k, C, 1)``; rank 4 ``Conv2d`` ``(out, in, kh, kw)`` -> ``(kh, kw, in, out)``.

Whatever the mapping, the twin is accepted only if its logits match the PyTorch model's on random
padded batches (:data:`TWIN_ATOL`); otherwise :class:`ModelError` says the model has no usable twin.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from islr.errors import ModelError

#: Largest logit difference between the PyTorch model and its Keras twin on random inputs.
TWIN_ATOL = 1e-4
_LSTM_BIAS = re.compile(r"(.*)bias_ih(_l\d+(?:_reverse)?)$")


def torch_tensors(model: Any) -> list[tuple[str, np.ndarray]]:
    """The model's state as ``(name, array)`` in registration order, in the Keras twin's terms.

    BatchNorm's ``num_batches_tracked`` has no Keras counterpart and is dropped; an LSTM layer's
    ``bias_ih`` and ``bias_hh`` become one summed bias.
    """
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out: list[tuple[str, np.ndarray]] = []
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        match = _LSTM_BIAS.match(name)
        if match:
            partner = f"{match.group(1)}bias_hh{match.group(2)}"
            value = value + state.get(partner, 0.0)
        elif re.search(r"bias_hh_l\d+(?:_reverse)?$", name):
            continue  # folded into bias_ih above
        out.append((name, np.asarray(value)))
    return out


def convert_tensor(value: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` rearranged into ``target_shape`` by the rules of this module, or None if none fits."""
    target_shape = tuple(int(s) for s in target_shape)
    if value.ndim <= 1:
        return value.reshape(target_shape) if value.size == int(np.prod(target_shape)) and len(target_shape) <= 1 else None
    orders = {2: [(1, 0)], 3: [(2, 1, 0), (2, 0, 1)], 4: [(2, 3, 1, 0)]}.get(value.ndim, [])
    for order in orders:
        moved = np.transpose(value, order)
        if moved.shape == target_shape:
            return np.ascontiguousarray(moved)
    return None


def copy_weights(torch_model: Any, keras_model: Any) -> None:
    """Assign the PyTorch weights to the Keras twin's variables, in order (:class:`ModelError` on a mismatch)."""
    source = torch_tensors(torch_model)
    targets = list(keras_model.weights)
    if len(source) != len(targets):
        raise ModelError(f"the Keras twin has {len(targets)} weight tensors, the PyTorch model {len(source)}")
    values = []
    for (name, value), variable in zip(source, targets, strict=True):
        converted = convert_tensor(value, tuple(variable.shape))
        if converted is None:
            raise ModelError(f"PyTorch {name} {tuple(value.shape)} does not fit Keras {variable.path} {tuple(variable.shape)}")
        values.append(converted)
    for variable, value in zip(targets, values, strict=True):
        variable.assign(value.astype(np.dtype(variable.dtype)))


def twin_difference(torch_model: Any, keras_model: Any, input_dim: int, shapes: tuple[tuple[int, int], ...] = ((3, 9), (1, 32), (2, 40))) -> float:
    """Largest logit difference of the two models on random batches with a padded row (eval mode)."""
    import torch

    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, frames in shapes:
        x = rng.standard_normal((batch, frames, input_dim), dtype=np.float32)
        mask = np.ones((batch, frames), bool)
        if batch > 1:
            mask[-1, frames // 2 :] = False
            x[-1, frames // 2 :] = 0.0
        with torch.no_grad():
            expected = torch_model.eval()(torch.from_numpy(x), torch.from_numpy(mask)).float().cpu().numpy()
        got = np.asarray(keras_model([x, mask], training=False), np.float32)
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))
    return worst


def keras_twin(torch_model: Any, name: str, input_dim: int, num_classes: int, params: dict[str, Any]) -> Any:
    """A Keras model computing the same logits as ``torch_model`` (registered ``name``, same ``params``).

    Raises :class:`ModelError` when the family has no Keras twin, the weights do not map, or the
    twin's logits differ by more than :data:`TWIN_ATOL`.
    """
    from islr.models.registry import create_model, list_models

    if name not in list_models("tensorflow"):
        raise ModelError(f"{name!r} has no Keras twin in the model zoo")
    twin = create_model(name, "tensorflow", input_dim, num_classes, params)
    try:
        copy_weights(torch_model, twin)
    except ModelError as exc:
        raise ModelError(f"{name}: cannot copy the PyTorch weights into the Keras twin ({exc})") from None
    diff = twin_difference(torch_model, twin, input_dim)
    if not diff <= TWIN_ATOL:
        raise ModelError(f"{name}: the Keras twin with the copied weights differs from the PyTorch model by {diff:.2e}")
    return twin


__all__ = ["TWIN_ATOL", "convert_tensor", "copy_weights", "keras_twin", "torch_tensors", "twin_difference"]
