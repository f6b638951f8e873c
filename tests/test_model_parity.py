"""PyTorch and Keras twins: same trainable parameter count and output shape for the same config.

Every model registered in both frameworks is built from its shipped YAML (input_dim 192, or the
reference 708 for conv1d_transformer; 250 classes). The counts are also checked against the
formulas of the model spec, so both sides cannot drift together.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

try:  # one thread each: tests must not fight over the CI machine's cores
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # the runtime was already initialised by an earlier test module
    pass
torch.set_num_threads(1)

from islr.models import registry  # noqa: E402

CLASSES = 250
KERAS_NAMES = registry.list_models("tensorflow")


def input_dim(name: str) -> int:
    return 708 if name == "conv1d_transformer" else 192


# ----------------------------------------------------------------------------- spec formulas
def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def lstm_stack(n_in: int, hidden: int, layers: int) -> int:
    """Keras LSTM: 4H(F + H) + 4H per layer (torch's second bias is frozen)."""
    return sum(4 * hidden * ((n_in if i == 0 else hidden) + hidden) + 4 * hidden
               for i in range(layers))


def encoder_backbone(n_in: int, d_model: int, dim_feedforward: int, num_layers: int,
                     norm_first: bool = True, **_) -> int:
    per_layer = 2 * (2 * d_model) + (4 * d_model**2 + 4 * d_model) \
        + linear(d_model, dim_feedforward) + linear(dim_feedforward, d_model)
    return linear(n_in, d_model) + num_layers * per_layer + (2 * d_model if norm_first else 0)


def expected_trainable(name: str, n_in: int, params: dict) -> int:
    p = {**registry.default_params(name), **params}
    if name == "lstm":
        return lstm_stack(n_in, p["hidden_dim"], p["num_layers"]) + linear(p["hidden_dim"], CLASSES)
    if name == "transformer":
        return encoder_backbone(n_in, **p) + linear(p["d_model"], CLASSES)
    if name == "hybrid":
        return (lstm_stack(n_in, p["lstm_hidden_dim"], p["lstm_layers"])
                + encoder_backbone(n_in, **p)
                + linear(p["lstm_hidden_dim"] + p["d_model"], CLASSES))
    if name == "yet_another_transformer":
        dim, hidden = p["dim"], p["dim"] * p["expansion_factor"]
        block = 2 * dim + 4 * dim**2 + 2 * dim + 2 * dim * hidden
        return linear(n_in, dim, False) + 2 * dim + p["num_blocks"] * block + linear(dim, CLASSES)
    if name == "conv1d_transformer":
        dim, hidden, tr_hidden = p["dim"], p["dim"] * p["conv_expand"], p["dim"] * p["transformer_expand"]
        conv = linear(dim, hidden) + hidden * p["kernel_size"] + 2 * hidden + 5 + linear(hidden, dim)
        block = 2 * dim + 4 * dim**2 + 2 * dim + 2 * dim * tr_hidden
        stages = p["num_stages"] * (p["conv_per_stage"] * conv + block)
        return linear(n_in, dim, False) + 2 * dim + stages + linear(dim, 2 * dim) \
            + linear(2 * dim, CLASSES)
    if name == "cnn_transfer":
        widths, total = p["widths"], 0
        total += 9 * p["coords"] * widths[0] + 2 * widths[0]  # stem conv (no bias) + BN
        for c_in, c_out in zip([widths[0]] + widths[:-1], widths):
            total += 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out
            if c_in != c_out:
                total += c_in * c_out + 2 * c_out  # 1x1 projection + BN
        return total + linear(widths[-1], CLASSES)
    if name.endswith("_ensemble"):
        return sum(expected_trainable(m["name"], n_in, m.get("params") or {}) for m in p["members"])
    raise KeyError(name)


# ----------------------------------------------------------------------------- counting
def torch_trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keras_trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def require_torch_twin(name: str) -> None:
    torch_names = registry.list_models("torch")
    assert name in torch_names, f"Keras model {name!r} has no PyTorch twin (torch has {torch_names})"


def test_every_torch_model_has_a_keras_twin():
    missing = sorted(set(registry.list_models("torch")) - set(KERAS_NAMES))
    assert not missing, f"torch models without a Keras twin: {missing}"


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_same_trainable_parameters_and_output_shape(name):
    require_torch_twin(name)
    n_in = input_dim(name)
    torch.manual_seed(0)
    torch_model = registry.create_model(name, "torch", n_in, CLASSES).eval()
    keras_model = registry.create_model(name, "tensorflow", n_in, CLASSES)

    expected = expected_trainable(name, n_in, {})
    assert keras_trainable(keras_model) == expected
    assert torch_trainable(torch_model) == expected

    x = np.random.default_rng(0).normal(size=(3, 7, n_in)).astype("float32")
    mask = np.arange(7)[None, :] < np.array([[7], [4], [1]])
    x *= mask[..., None]
    with torch.no_grad():
        torch_out = torch_model(torch.from_numpy(x), torch.from_numpy(mask))
    keras_out = keras_model([x, mask], training=False)
    assert tuple(torch_out.shape) == tuple(keras_out.shape) == (3, CLASSES)


def test_conv1d_transformer_reference_count_by_parts():
    """The spec's breakdown: stem 135,936; BN 384; 6 x 155,333; 2 x 295,680; 74,112; 96,250."""
    total = 135_936 + 384 + 6 * 155_333 + 2 * 295_680 + 74_112 + 96_250
    assert total == expected_trainable("conv1d_transformer", 708, {}) == 1_830_040


# ----------------------------------------------------------------------------- same function
FEATURES, FEW_CLASSES = 12, 5  # 6 landmarks x 2 coordinates
_TR = {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "num_layers": 2, "dropout": 0.0}
_HY = {"lstm_hidden_dim": 16, "lstm_layers": 2, "d_model": 16, "num_heads": 2,
       "dim_feedforward": 32, "num_layers": 1, "dropout": 0.0}
_YAT = {"dim": 16, "num_heads": 2, "expansion_factor": 2, "num_blocks": 2, "attn_dropout": 0.0,
        "drop_rate": 0.0}
# Small configurations without any dropout, so training mode is deterministic too.
NO_DROPOUT = {
    "lstm": {"hidden_dim": 16, "num_layers": 2, "dropout": 0.0},
    "transformer": _TR,
    "hybrid": _HY,
    "yet_another_transformer": _YAT,
    "cnn_transfer": {"widths": [8, 8, 16], "dropout": 0.0},
    "conv1d_transformer": {"dim": 16, "kernel_size": 5, "num_stages": 1, "conv_per_stage": 2,
                           "num_heads": 2, "drop_rate": 0.0, "attn_dropout": 0.0,
                           "late_dropout": 0.0},
    "transformer_ensemble": {"members": [{"name": "transformer", "params": _TR},
                                         {"name": "transformer", "params": {**_TR, "norm_first": False}}]},
    "hybrid_ensemble": {"members": [{"name": "hybrid", "params": _HY}]},
    "yet_another_ensemble": {"members": [{"name": "yet_another_transformer", "params": _YAT},
                                         {"name": "yet_another_transformer",
                                          "params": {**_YAT, "causal": True}}]},
}


def copy_torch_weights(torch_model, keras_model) -> None:
    """Copy every trainable tensor and BatchNorm statistic of ``torch_model`` into the Keras twin.

    Both sides list their weights in the same order (the Keras layers are created in torch's
    registration order); torch layouts are turned into Keras ones: Linear/LSTM (out, in) -> (in,
    out), Conv1d (out, in, k) -> (k, in, out), depthwise (C, 1, k) -> (k, C, 1), Conv2d (out, in,
    kh, kw) -> (kh, kw, in, out).
    """
    params = [p for p in torch_model.parameters() if p.requires_grad]
    weights = keras_model.trainable_weights
    assert len(params) == len(weights)
    for param, weight in zip(params, weights):
        a = param.detach().numpy()
        if a.ndim == 2:
            a = a.T
        elif a.ndim == 3:
            depthwise = a.shape[1] == 1 and tuple(weight.shape) == (a.shape[2], a.shape[0], 1)
            a = a.transpose(2, 0, 1) if depthwise else a.transpose(2, 1, 0)
        elif a.ndim == 4:
            a = a.transpose(2, 3, 1, 0)
        assert a.shape == tuple(weight.shape), (weight.path, a.shape, weight.shape)
        weight.assign(a)
    stats = [b for n, b in torch_model.named_buffers() if n.endswith(("running_mean", "running_var"))]
    moving = [w for w in keras_model.non_trainable_weights
              if w.path.endswith(("moving_mean", "moving_variance"))]
    assert len(stats) == len(moving)
    for buffer, weight in zip(stats, moving):
        weight.assign(buffer.numpy())


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_same_function_with_the_same_weights(name):
    """With torch's weights copied in, the Keras twin gives the same logits (eval and training)."""
    require_torch_twin(name)
    assert name in NO_DROPOUT, f"add a dropout-free small configuration for {name!r} to NO_DROPOUT"
    params = NO_DROPOUT[name]
    torch.manual_seed(0)
    torch_model = registry.create_model(name, "torch", FEATURES, FEW_CLASSES, params)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random values everywhere, BatchNorm statistics included
        for p in torch_model.parameters():
            if p.requires_grad:  # the LSTMs' frozen second bias stays zero
                p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
        for n, b in torch_model.named_buffers():
            if n.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.3)
            elif n.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    keras_model = registry.create_model(name, "tensorflow", FEATURES, FEW_CLASSES, params)
    copy_torch_weights(torch_model, keras_model)

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 9, FEATURES)).astype("float32")
    mask = np.arange(9)[None, :] < np.array([[9], [6], [2], [0]])
    x *= mask[..., None]
    for training in (False, True):
        torch_model.train(training)
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
        got = keras_model([x, mask], training=training).numpy()
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4,
                                   err_msg=f"{name} training={training}")
