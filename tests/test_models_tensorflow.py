"""Keras 3 (TensorFlow backend) model zoo: every registered model, plus the shared layers."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

try:  # one thread: tests must not fight over the CI machine's cores
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # the runtime was already initialised by an earlier test module
    pass

from islr.errors import ConfigError, ModelError  # noqa: E402
from islr.models import registry  # noqa: E402
from islr.models.tensorflow import layers as L  # noqa: E402

FEATURES = 12  # 6 landmarks x 2 coordinates
CLASSES = 5
NAMES = registry.list_models("tensorflow")

_SMALL_TRANSFORMER = {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "num_layers": 2}
_SMALL_HYBRID = {"lstm_hidden_dim": 16, "lstm_layers": 2, "d_model": 16, "num_heads": 2,
                 "dim_feedforward": 32, "num_layers": 1}
_SMALL_YAT = {"dim": 16, "num_heads": 2, "expansion_factor": 2, "num_blocks": 1}
# Small variants of every shipped model (same code paths, a fraction of the time).
SMALL = {
    "lstm": {"hidden_dim": 16, "num_layers": 2},
    "transformer": _SMALL_TRANSFORMER,
    "yet_another_transformer": {**_SMALL_YAT, "num_blocks": 2},
    "hybrid": _SMALL_HYBRID,
    "cnn_transfer": {"widths": [8, 16]},
    "conv1d_transformer": {"dim": 16, "kernel_size": 5, "num_stages": 1, "conv_per_stage": 2,
                           "num_heads": 2},
    "transformer_ensemble": {"members": [
        {"name": "transformer", "params": {**_SMALL_TRANSFORMER, "num_layers": 1}},
        {"name": "transformer", "params": {**_SMALL_TRANSFORMER, "num_layers": 1,
                                           "norm_first": False}},
    ]},
    "hybrid_ensemble": {"members": [
        {"name": "hybrid", "params": {**_SMALL_HYBRID, "lstm_layers": 1}},
        {"name": "hybrid", "params": {**_SMALL_HYBRID, "lstm_layers": 1, "d_model": 8}},
    ]},
    "yet_another_ensemble": {"members": [
        {"name": "yet_another_transformer", "params": _SMALL_YAT},
        {"name": "yet_another_transformer", "params": {**_SMALL_YAT, "causal": True}},
    ]},
}


def small_model(name: str, seed: int = 0, **overrides):
    keras.utils.set_random_seed(seed)
    params = {**SMALL.get(name, {}), **overrides}
    return registry.create_model(name, "tensorflow", FEATURES, CLASSES, params)


def batch(seed: int = 0, b: int = 4, t: int = 10, lengths=(10, 7, 3, 1)):
    """Random frames with zeros (mask False) after each row's length."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, t, FEATURES)).astype("float32")
    mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
    return x * mask[..., None], mask


def n_params(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def test_every_family_is_registered():
    assert set(NAMES) >= {"lstm", "transformer", "yet_another_transformer", "hybrid",
                          "transformer_ensemble", "hybrid_ensemble", "yet_another_ensemble",
                          "cnn_transfer", "conv1d_transformer"}
    assert set(SMALL) >= set(NAMES), "give every new model a small test configuration"


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_shipped_yaml(name):
    keras.utils.set_random_seed(0)
    model = registry.create_model(name, "tensorflow", 192, 250)
    assert model.built and n_params(model.trainable_weights) > 0
    x = np.random.default_rng(0).normal(size=(2, 6, 192)).astype("float32")
    mask = np.array([[True] * 6, [True] * 3 + [False] * 3])
    logits = model([x, mask], training=False)
    assert tuple(logits.shape) == (2, 250)
    assert np.isfinite(logits.numpy()).all()


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_and_finite_including_an_empty_row(name):
    model = small_model(name)
    x, mask = batch(lengths=(10, 7, 3, 0))
    for training in (False, True):
        logits = model([x, mask], training=training).numpy()
        assert logits.shape == (4, CLASSES)
        assert np.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_trainable_variable_gets_a_gradient(name):
    model = small_model(name)
    x, mask = batch()
    y = np.array([0, 1, 2, 3])
    with tf.GradientTape() as tape:
        logits = model([x, mask], training=True)
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    grads = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == len(model.trainable_variables) > 0
    for var, grad in zip(model.trainable_variables, grads):
        assert grad is not None, f"{var.path} gets no gradient"
        g = tf.convert_to_tensor(grad).numpy()
        assert np.isfinite(g).all(), var.path
        assert np.abs(g).max() > 0, f"{var.path} has an all-zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_lower_the_loss(name):
    model = small_model(name)
    x, mask = batch(t=6, lengths=(6, 5, 4, 3))
    y = np.array([0, 1, 2, 3])
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)

    def loss_value(training: bool):
        logits = model([x, mask], training=training)
        return tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    before = float(loss_value(False))
    for _ in range(10):
        with tf.GradientTape() as tape:
            loss = loss_value(True)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
    after = float(loss_value(False))  # measured: every model ends below half its initial loss
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_padding_invariance_in_inference(name):
    model = small_model(name)
    rng = np.random.default_rng(1)
    seq = rng.normal(size=(1, 6, FEATURES)).astype("float32")
    short = model([seq, np.ones((1, 6), bool)], training=False).numpy()
    padded = np.concatenate([seq, np.zeros((1, 7, FEATURES), "float32")], axis=1)
    mask = np.arange(13)[None, :] < 6
    long = model([padded, mask], training=False).numpy()
    np.testing.assert_allclose(short, long, atol=1e-5)
    # In a batch beside a longer sequence, the row is still the same.
    other = rng.normal(size=(1, 13, FEATURES)).astype("float32")
    both = model([np.concatenate([padded, other]), np.concatenate([mask, np.ones((1, 13), bool)])],
                 training=False).numpy()
    np.testing.assert_allclose(both[:1], short, atol=1e-5)


def test_conv1d_transformer_reference_parameter_counts():
    model = registry.create_model("conv1d_transformer", "tensorflow", 708, 250)
    assert n_params(model.trainable_weights) == 1_830_040
    # + BatchNorm moving mean/variance (2 x (192 + 6 x 384 + 4 x 192)) + the LateDropout step.
    assert model.count_params() == 1_836_569
    assert n_params(model.non_trainable_weights) == 6_529


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_weights_round_trip(name, tmp_path):
    model = small_model(name, seed=0)
    x, mask = batch()
    model([x, mask], training=True)  # move BatchNorm statistics / the late-dropout counter
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    fresh = small_model(name, seed=1)
    assert not np.allclose(fresh([x, mask]).numpy(), model([x, mask]).numpy())
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh([x, mask]).numpy(), model([x, mask]).numpy())


@pytest.mark.parametrize("name", ["transformer", "conv1d_transformer"])
def test_traces_with_dynamic_batch_and_frames(name):
    model = small_model(name)
    fn = tf.function(
        lambda x, mask: model([x, mask], training=False),
        input_signature=[tf.TensorSpec([None, None, FEATURES], tf.float32),
                         tf.TensorSpec([None, None], tf.bool)],
    )
    concrete = fn.get_concrete_function()
    assert concrete.structured_outputs.shape.as_list() == [None, CLASSES]
    for b, t in [(1, 3), (4, 10)]:
        x, mask = batch(b=b, t=t, lengths=[t] * b)
        np.testing.assert_allclose(concrete(tf.constant(x), tf.constant(mask)).numpy(),
                                   model([x, mask], training=False).numpy(), atol=1e-5)


def test_exports_to_tflite_with_dynamic_batch_and_frames(tmp_path):
    """SavedModel export -> TFLite keeps the logits (no op outside the TFLite builtins)."""
    from ai_edge_litert import interpreter

    model = small_model("conv1d_transformer")
    signature = [[tf.TensorSpec([None, None, FEATURES], tf.float32, name="x"),
                  tf.TensorSpec([None, None], tf.bool, name="mask")]]
    model.export(str(tmp_path / "saved"), format="tf_saved_model", input_signature=signature,
                 verbose=False)
    blob = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved")).convert()
    runner = interpreter.Interpreter(model_content=blob).get_signature_runner()
    for b, t, lengths in [(1, 4, (4,)), (3, 9, (9, 5, 2))]:
        x, mask = batch(b=b, t=t, lengths=lengths)
        (out,) = runner(x=x, mask=mask).values()
        np.testing.assert_allclose(out, model([x, mask]).numpy(), atol=1e-5)


def test_cnn_transfer_with_a_keras_application_backbone():
    model = small_model("cnn_transfer", arch="keras:MobileNetV2")
    # 6 landmarks and 5 frames: far below the 32 the network halves five times (padded inside).
    x, mask = batch(t=5, lengths=(5, 3, 2, 1))
    for _ in range(3):  # an empty feature map gave NaN or garbage that changed from call to call
        logits = model([x, mask]).numpy()
        assert logits.shape == (4, CLASSES) and np.isfinite(logits).all()
        np.testing.assert_array_equal(model([x, mask]).numpy(), logits)
    assert L.get_dropout(model) == [0.2]  # the head's; the application has none without a top


# ----------------------------------------------------------------------------- dynamic dropout
def test_dropout_rate_change_reaches_a_compiled_function():
    layer = L.Dropout(0.0, seed=3)
    fn = tf.function(lambda v: layer(v, training=True))
    ones = tf.ones((20_000,))
    np.testing.assert_array_equal(fn(ones).numpy(), 1.0)
    layer.rate = 0.6
    out = fn(ones).numpy()  # the same traced graph
    assert len(fn._list_all_concrete_functions()) == 1
    assert abs((out == 0).mean() - 0.6) < 0.02
    np.testing.assert_allclose(out[out != 0], 1 / 0.4, rtol=1e-6)
    layer.rate = 1.0
    np.testing.assert_array_equal(fn(ones).numpy(), 0.0)
    np.testing.assert_array_equal(layer(ones, training=False).numpy(), 1.0)
    with pytest.raises(ConfigError):
        layer.rate = 1.5


def test_set_and_get_dropout_touch_only_dropout_layers():
    model = small_model("transformer")
    rates = L.get_dropout(model)
    # Per encoder layer: attention weights, dropout1, feed-forward, dropout2; plus the head.
    assert rates == [0.1] * 9
    x, mask = batch()
    compiled = tf.function(lambda a, m: model([a, m], training=True))
    assert L.set_dropout(model, 0.0) == 9
    np.testing.assert_allclose(compiled(x, mask).numpy(), model([x, mask]).numpy(), atol=1e-5)
    L.set_dropout(model, 0.5)
    assert L.get_dropout(model) == [0.5] * 9
    assert not np.allclose(compiled(x, mask).numpy(), model([x, mask]).numpy(), atol=1e-3)

    conv = small_model("conv1d_transformer")
    assert L.set_dropout(conv, 0.0) == 1  # only the attention dropout of its transformer block
    late = [la for la in L.iter_layers(conv) if isinstance(la, L.LateDropout)]
    depth = [la for la in L.iter_layers(conv) if isinstance(la, L.StochasticDepth)]
    assert [la.rate for la in late] == [0.8] and depth and {la.rate for la in depth} == {0.2}


def test_set_dropout_warns_for_a_plain_keras_dropout():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dropout(0.2)(inputs))
    with pytest.warns(UserWarning, match="plain keras Dropout"):
        assert L.set_dropout(model, 0.3) == 1
    assert L.get_dropout(model) == [0.3]


def test_dropout_rate_is_not_a_weight():
    layer = L.Dropout(0.3)
    layer(tf.ones((2, 3)))
    assert layer.weights == [] and layer.count_params() == 0
    assert layer.get_config()["rate"] == 0.3


def test_late_dropout_starts_after_its_step():
    layer = L.LateDropout(0.5, start_step=2, seed=0)
    fn = tf.function(lambda v: layer(v, training=True))
    ones = tf.ones((4000,))
    np.testing.assert_array_equal(fn(ones).numpy(), 1.0)
    np.testing.assert_array_equal(fn(ones).numpy(), 1.0)
    third = fn(ones).numpy()
    assert 0.4 < (third == 0).mean() < 0.6
    np.testing.assert_array_equal(layer(ones, training=False).numpy(), 1.0)
    assert int(layer.step.numpy()) == 3  # inference calls do not count
    assert [w.path for w in layer.non_trainable_weights] == [layer.step.path]


def test_stochastic_depth_drops_whole_samples():
    layer = L.StochasticDepth(0.5, seed=1)
    out = layer(tf.ones((200, 3, 4)), training=True).numpy()
    per_sample = out.reshape(200, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all()  # one decision per sample
    assert 0.35 < (per_sample[:, 0] == 0).mean() < 0.65
    np.testing.assert_array_equal(layer(tf.ones((2, 3)), training=False).numpy(), 1.0)
    with pytest.raises(ConfigError):
        L.StochasticDepth(1.0)


# ----------------------------------------------------------------------------- helpers
def test_mask_helpers_by_hand():
    mask = np.array([[1, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(L.last_valid_index(mask).numpy(), [3, 0, 5])
    np.testing.assert_array_equal(
        L.prefix_mask(mask).numpy(),
        [[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(
        L.safe_mask(mask).numpy(),
        [[1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    x = np.arange(18, dtype="float32").reshape(3, 6, 1)
    np.testing.assert_allclose(L.masked_mean(x, mask).numpy()[:, 0], [(0 + 1 + 3) / 3, 0.0, 14.5])


def test_sinusoidal_positions_by_hand():
    table = L.sinusoidal_positions(3, 4).numpy()
    expected = [[0, 1, 0, 1],
                [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]]
    np.testing.assert_allclose(table, expected, atol=1e-6)
    odd = L.sinusoidal_positions(2, 5).numpy()
    assert odd.shape == (2, 5)
    np.testing.assert_allclose(odd[1, 4], math.sin(10000 ** (-4 / 5)), atol=1e-6)


def test_attention_ignores_hidden_keys_and_future_frames():
    keras.utils.set_random_seed(0)
    attn = L.MultiHeadSelfAttention(8, 2, causal=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 8)).astype("float32")
    full = attn(x, mask=np.ones((1, 5), bool)).numpy()
    changed = x.copy()
    changed[:, 3:] = rng.normal(size=(1, 2, 8))
    # Causal: frames 0..2 never see frames 3..4.
    np.testing.assert_allclose(attn(changed, mask=np.ones((1, 5), bool)).numpy()[:, :3],
                               full[:, :3], atol=1e-6)
    plain = L.MultiHeadSelfAttention(8, 2)
    plain(x, mask=np.ones((1, 5), bool))
    hidden = np.array([[1, 1, 1, 0, 0]], bool)
    np.testing.assert_allclose(plain(x, mask=hidden).numpy()[:, :3],
                               plain(changed, mask=hidden).numpy()[:, :3], atol=1e-6)
    assert attn.count_params() == 4 * 8 * 8  # no biases
    with pytest.raises(ConfigError):
        L.MultiHeadSelfAttention(10, 3)


def test_probability_predictor():
    from islr.models.tensorflow.transformer import TransformerPredictor

    model = small_model("transformer")
    predictor = TransformerPredictor(model)
    x, mask = batch()
    probs = predictor([x, mask]).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    index, confidence = predictor.top_class(x, mask)
    np.testing.assert_array_equal(index, model([x, mask]).numpy().argmax(axis=1))
    np.testing.assert_allclose(confidence, probs.max(axis=1))


@pytest.mark.parametrize("name", ["conv1d_transformer", "transformer_ensemble"])
def test_config_round_trip(name):
    model = small_model(name)
    config = model.get_config()
    assert config["input_dim"] == FEATURES and config["num_classes"] == CLASSES
    clone = type(model).from_config(config)
    x, mask = batch()
    assert tuple(clone([x, mask]).shape) == (4, CLASSES)
    assert n_params(clone.trainable_weights) == n_params(model.trainable_weights)


def test_inputs_without_a_mask_mean_every_frame_is_real():
    model = small_model("yet_another_transformer")
    x, _ = batch(lengths=[10] * 4)
    np.testing.assert_allclose(model(x).numpy(), model([x, np.ones((4, 10), bool)]).numpy())


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("name", "params", "error"), [
    ("transformer", {"d_model": 10, "num_heads": 3}, ConfigError),
    ("transformer", {"bogus": 1}, ConfigError),
    ("lstm", {"num_layers": 0}, ConfigError),
    ("cnn_transfer", {"coords": 5}, ConfigError),
    ("cnn_transfer", {"arch": "timm:resnet18"}, ConfigError),
    ("cnn_transfer", {"arch": "keras:NoSuchNet"}, ConfigError),
    ("cnn_transfer", {"arch": "vgg"}, ConfigError),
    ("cnn_transfer", {"pretrained_weights": "/nonexistent/w.weights.h5"}, ModelError),
    ("conv1d_transformer", {"bn_momentum": 1.5}, ConfigError),
    ("conv1d_transformer", {"late_dropout": 1.0}, ConfigError),
    ("transformer_ensemble", {"members": []}, ConfigError),
    ("transformer_ensemble", {"members": [{"params": {}}]}, ConfigError),
    ("transformer_ensemble", {"members": [{"name": "transformer", "extra": 1}]}, ConfigError),
])
def test_bad_parameters_raise_clear_errors(name, params, error):
    with pytest.raises(error):
        registry.create_model(name, "tensorflow", FEATURES, CLASSES, {**SMALL[name], **params})


def test_cnn_transfer_loads_local_pretrained_backbone_weights(tmp_path):
    source = small_model("cnn_transfer", seed=0)
    path = tmp_path / "backbone.weights.h5"
    source.backbone.save_weights(path)
    loaded = small_model("cnn_transfer", seed=1, pretrained_weights=str(path))
    for a, b in zip(source.backbone.weights, loaded.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
