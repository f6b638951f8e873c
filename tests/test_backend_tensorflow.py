"""The TensorFlow backend: loss, learning, LR schedule, clipping, dropout, checkpoints, exact resume."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

try:  # one thread: deterministic reductions, and CI's 2 cores are shared (fails once TF is running)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:
    pass

from islr.backends import get_backend  # noqa: E402
from islr.backends.tensorflow_backend import SUFFIX, select_devices  # noqa: E402
from islr.backends.tf_data import DatasetWithLen, from_loader, to_tf_dataset  # noqa: E402
from islr.checkpoint_format import read_checkpoint  # noqa: E402
from islr.config import ExperimentConfig  # noqa: E402
from islr.errors import ConfigError, ModelError  # noqa: E402
from islr.metrics import cross_entropy  # noqa: E402
from islr.models.registry import register_model, unregister_model  # noqa: E402
from islr.models.tensorflow.layers import Dropout as RateVariableDropout  # noqa: E402
from islr.training.schedules import learning_rate  # noqa: E402
from islr.training.trainer import Trainer  # noqa: E402

FEATURES, CLASSES = 6, 3


class TinyNet(keras.Model):
    """Dense -> masked mean -> [BatchNorm] -> Dropout (rate variable) -> plain Dropout -> Dense."""

    def __init__(self, input_dim: int, num_classes: int, hidden: int = 12, dropout: float = 0.0,
                 plain_dropout: float = 0.0, batch_norm: bool = True):
        super().__init__()
        self.proj = keras.layers.Dense(hidden, activation="tanh")
        self.bn = keras.layers.BatchNormalization() if batch_norm else None
        self.drop = RateVariableDropout(dropout)
        self.plain = keras.layers.Dropout(plain_dropout) if plain_dropout else None
        self.head = keras.layers.Dense(num_classes)

    def call(self, inputs, training=False):
        x, mask = inputs
        m = tf.cast(mask, x.dtype)[..., None]
        h = tf.reduce_sum(self.proj(x) * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
        if self.bn is not None:
            h = self.bn(h, training=training)
        h = self.drop(h, training=training)
        if self.plain is not None:
            h = self.plain(h, training=training)
        return self.head(h)


def tiny_tf_test(input_dim: int, num_classes: int, **params):
    return TinyNet(input_dim, num_classes, **params)


@pytest.fixture(autouse=True)
def _tiny_model_registered():
    """Registered only while this module's tests run, so registry-wide tests never see it."""
    register_model("tiny_tf_test", "tensorflow")(tiny_tf_test)
    yield
    unregister_model("tiny_tf_test", "tensorflow")


class ListLoader:
    """Numpy batch dicts with ``len`` and ``set_epoch`` (the batch order reshuffled per epoch)."""

    def __init__(self, batches: list[dict[str, np.ndarray]], shuffle: bool = False, seed: int = 0):
        self.batches, self.shuffle, self.seed, self.epoch = batches, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        order = np.arange(len(self.batches))
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(order)
        return (self.batches[i] for i in order)


def toy_batches(n_batches: int, batch_size: int = 8, seed: int = 0, shift: float = 2.0) -> list[dict[str, np.ndarray]]:
    """Separable toy task: class c moves feature c by ``shift``; variable lengths, padded with zeros."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        frames = 5 + b % 3
        y = rng.integers(0, CLASSES, batch_size)
        x = rng.normal(size=(batch_size, frames, FEATURES)).astype(np.float32)
        x[np.arange(batch_size), :, y] += shift
        lengths = rng.integers(2, frames + 1, batch_size)
        mask = np.arange(frames)[None, :] < lengths[:, None]
        x[~mask] = 0.0
        out.append({"x": x, "mask": mask, "y": y.astype(np.int64)})
    return out


def make_cfg(**train) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.model.name = "tiny_tf_test"
    cfg.model.params = {"hidden": 12, "dropout": 0.0}
    cfg.train.framework = "tensorflow"
    cfg.train.device = "cpu"
    cfg.train.progress = False
    cfg.train.tensorboard = False
    cfg.train.early_stopping = False
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def make_backend(cfg: ExperimentConfig, steps_per_epoch: int = 4):
    backend = get_backend("tensorflow")
    backend.setup(cfg, FEATURES, CLASSES, steps_per_epoch)
    return backend


def flat_weights(backend) -> np.ndarray:
    return np.concatenate([np.ravel(v.numpy()) for v in backend.model.trainable_variables])


def test_loss_equals_numpy_cross_entropy():
    cfg = make_cfg(label_smoothing=0.1, lr=0.0, schedule="constant")
    cfg.model.params["batch_norm"] = False  # training-mode forward == eval forward
    backend = make_backend(cfg)
    # The loss inside the compiled step is the numpy loss of the model's logits (lr 0: no update).
    batch = toy_batches(1)
    expected = cross_entropy(backend.predict_logits(batch), batch[0]["y"], 0.1)
    logs = backend.train_epoch(batch, 0)
    assert logs["loss"] == pytest.approx(expected, abs=1e-6)
    assert logs["samples"] == 8


def test_tiny_model_learns_separable_task():
    cfg = make_cfg(lr=0.03, schedule="constant", optimizer="adam", weight_decay=0.0)
    train, valid = toy_batches(6, seed=0), toy_batches(3, seed=1)
    backend = make_backend(cfg, len(train))
    before = (backend.predict_logits(valid).argmax(-1) == np.concatenate([b["y"] for b in valid])).mean()
    history = [backend.train_epoch(train, epoch) for epoch in range(6)]
    after = (backend.predict_logits(valid).argmax(-1) == np.concatenate([b["y"] for b in valid])).mean()
    assert history[-1]["loss"] < history[0]["loss"]
    assert after >= 0.9 and after > before  # chance is 1/3


def test_learning_rate_follows_schedule_and_limit_batches():
    cfg = make_cfg(lr=0.01, schedule="cosine", warmup_epochs=0.5, epochs=3, min_lr_ratio=0.1, limit_batches=3)
    batches = toy_batches(5)
    backend = make_backend(cfg, steps_per_epoch=len(batches))
    seen: list[tuple[int, float]] = []
    logs = backend.train_epoch(batches, 1, lambda index, log: seen.append((index, log["lr"])))
    assert [i for i, _ in seen] == [0, 1, 2] and logs["samples"] == 24
    expected = [learning_rate(cfg.train, 1 + i / 5) for i in range(3)]
    assert [lr for _, lr in seen] == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) == 3 and backend.get_lr() == expected[-1]
    assert float(backend.opt.inner.learning_rate.numpy()) == pytest.approx(expected[-1], rel=1e-6)


def test_gradient_clipping_bounds_the_update():
    # SGD momentum 0.9 Nesterov, first step: w -= lr * 1.9 * g (torch and Keras alike).
    batch = toy_batches(1)
    deltas = {}
    for clip in (0.0, 1e-3):
        cfg = make_cfg(optimizer="sgd", lr=1.0, schedule="constant", weight_decay=0.0, grad_clip=clip)
        backend = make_backend(cfg)
        start = flat_weights(backend)
        backend.train_epoch(batch, 0)
        deltas[clip] = np.linalg.norm(flat_weights(backend) - start)
    assert deltas[1e-3] == pytest.approx(1.9 * 1e-3, rel=1e-3)
    assert deltas[0.0] > 50 * deltas[1e-3]


def test_set_dropout_reaches_the_compiled_step():
    cfg = make_cfg(lr=0.0, schedule="constant")
    cfg.model.params.update(dropout=0.5, plain_dropout=0.5, batch_norm=False)
    backend = make_backend(cfg)
    assert backend.get_dropout() == [0.5, 0.5]
    batch = toy_batches(1)
    clean = cross_entropy(backend.predict_logits(batch), batch[0]["y"])
    assert backend.train_epoch(batch, 0)["loss"] != pytest.approx(clean, abs=1e-4)  # dropout active
    backend.set_dropout(0.0)
    assert backend.get_dropout() == [0.0, 0.0]
    assert backend.model.drop.rate == 0.0 and backend.model.plain.rate == 0.0
    # Both the rate variable and the plain layer's traced-in constant follow: no dropout left.
    assert backend.train_epoch(batch, 0)["loss"] == pytest.approx(clean, abs=1e-6)


def test_checkpoint_round_trip_gives_identical_logits(tmp_path):
    cfg = make_cfg(optimizer="radam_lookahead", lr=0.01)
    cfg.model.params["dropout"] = 0.2
    batches = toy_batches(3)
    backend = make_backend(cfg, 3)
    backend.train_epoch(batches, 0)
    extra = {"config": {"a": 1}, "sign_map": {"hello": 0}, "array": np.arange(4)}
    backend.save_checkpoint(tmp_path / "last", extra)
    assert SUFFIX == ".safetensors" and (tmp_path / f"last{SUFFIX}").exists() and not list(tmp_path.glob("*tmp"))
    other = make_cfg(optimizer="radam_lookahead", lr=0.01, seed=99)  # another seed: all state comes from the file
    other.model.params = dict(cfg.model.params)
    restored = make_backend(other, 3)
    loaded = restored.load_checkpoint(tmp_path / "last")
    assert loaded["sign_map"] == {"hello": 0} and np.array_equal(loaded["array"], np.arange(4))
    np.testing.assert_array_equal(restored.predict_logits(batches), backend.predict_logits(batches))
    for mine, theirs in zip(restored.state()["optimizer"], backend.state()["optimizer"], strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert restored.get_lr() == backend.get_lr()
    # Training on from the restored state continues identically (seed states, slow weights, moments).
    backend.train_epoch(batches, 1)
    restored.train_epoch(batches, 1)
    np.testing.assert_array_equal(flat_weights(restored), flat_weights(backend))


def test_bad_checkpoints_raise_model_error(tmp_path):
    backend = make_backend(make_cfg())
    with pytest.raises(ModelError, match="not found"):
        backend.load_checkpoint(tmp_path / "missing")
    (tmp_path / f"junk{SUFFIX}").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="not a valid islr checkpoint"):
        read_checkpoint(tmp_path / f"junk{SUFFIX}")
    from safetensors.numpy import save

    (tmp_path / f"foreign{SUFFIX}").write_bytes(save({"w": np.zeros(3, np.float32)}))
    with pytest.raises(ModelError, match="without islr's header"):
        backend.load_checkpoint(tmp_path / "foreign")
    backend.save_checkpoint(tmp_path / "small", {})
    bigger = make_cfg()
    bigger.model.params["hidden"] = 20
    with pytest.raises(ModelError, match="shape"):
        make_backend(bigger).load_checkpoint(tmp_path / "small")


class StopAfter:
    """Stops training after epoch ``epoch`` (a run killed there); None never stops."""

    def __init__(self, epoch: int | None):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            trainer.should_stop = True


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path):
    # 4 batches an epoch: the Lookahead sync of step 10 falls after the resume at step 8.
    train, valid = toy_batches(4, seed=0), toy_batches(2, seed=1)

    def run(path, stop_after, resume=False):
        cfg = make_cfg(optimizer="radam_lookahead", lr=0.02, epochs=3, warmup_epochs=0.5, awp_start_epoch=1,
                       dynamic_dropout=True, dropout_init=0.1, dropout_interval=1, dropout_rate=1.5)
        cfg.model.params["dropout"] = 0.1
        backend = make_backend(cfg, len(train))
        trainer = Trainer(cfg, backend, ListLoader(train, shuffle=True), ListLoader(valid), path, {"a": 0, "b": 1, "c": 2},
                          callbacks=[StopAfter(stop_after)])
        history = trainer.fit(resume=resume)
        return backend, history

    straight, full_history = run(tmp_path / "straight", None)
    _, first = run(tmp_path / "killed", 1)
    assert len(first) == 2
    resumed, rest = run(tmp_path / "killed", None, resume=True)
    assert len(rest) == 3 and rest[-1]["epoch"] == 2
    assert resumed.get_dropout() == straight.get_dropout() != [0.1]
    np.testing.assert_allclose(flat_weights(resumed), flat_weights(straight), atol=1e-5)
    np.testing.assert_allclose(resumed.predict_logits(valid), straight.predict_logits(valid), atol=1e-5)
    assert rest[-1]["loss"] == pytest.approx(full_history[-1]["loss"], abs=1e-5)


def test_tf_data_adapter_and_training_from_a_dataset():
    batches = toy_batches(3)
    loader = ListLoader(batches, shuffle=True)
    wrapped = from_loader(loader, FEATURES)
    assert isinstance(wrapped, DatasetWithLen) and len(wrapped) == 3
    wrapped.set_epoch(4)
    assert loader.epoch == 4
    expected = list(loader)
    got = list(wrapped)
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_array_equal(mine["x"].numpy(), theirs["x"])
        assert mine["mask"].dtype == tf.bool and mine["y"].dtype == tf.int64
    dataset = to_tf_dataset(batches, FEATURES)
    assert dataset.element_spec["x"].shape.as_list() == [None, None, FEATURES]
    backend = make_backend(make_cfg(), 3)
    logs = backend.train_epoch(wrapped, 0)
    assert logs["samples"] == 24 and np.isfinite(logs["loss"])
    np.testing.assert_allclose(backend.predict_logits(wrapped), backend.predict_logits(expected), atol=1e-6)


@pytest.mark.parametrize(("name", "params"), [
    ("transformer", {"d_model": 8, "num_heads": 2, "num_layers": 1, "dim_feedforward": 16}),
    ("lstm", {"hidden_dim": 8, "num_layers": 1}),
])
def test_model_zoo_families_train(name, params):
    cfg = make_cfg(optimizer="adamw", lr=0.01, label_smoothing=0.1, grad_clip=1.0)
    cfg.model.name, cfg.model.params = name, params
    batches = toy_batches(2)
    backend = make_backend(cfg, 2)
    logs = [backend.train_epoch(batches, epoch) for epoch in range(2)]
    assert all(np.isfinite(log["loss"]) for log in logs)
    assert backend.predict_logits(batches).shape == (16, CLASSES)
    assert backend.num_parameters() == sum(int(np.prod(v.shape)) for v in backend.model.trainable_variables) > 0
    fn = backend._functions["train"]
    assert fn.experimental_get_tracing_count() == 1  # batches of 5 and 6 frames: no retrace


def test_mixed_precision_path_restores_the_global_policy(tmp_path):
    cfg = make_cfg(mixed_precision=True, grad_clip=1.0, lr=0.01)
    backend = get_backend("tensorflow", mixed_precision_on_cpu=True)
    backend.setup(cfg, FEATURES, CLASSES, 2)
    assert backend.model.proj.dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"
    assert isinstance(backend.opt.optimizer, keras.optimizers.LossScaleOptimizer)
    log = backend.train_epoch(toy_batches(2), 0)
    assert np.isfinite(log["loss"]) and int(backend.opt.inner.iterations.numpy()) == 2
    assert backend.predict_logits(toy_batches(1)).dtype == np.float32
    # An overflowing scale: float16 gradients become inf, the step is skipped and the scale halved.
    backend.opt.optimizer.dynamic_scale.assign(2.0**127)
    weights = flat_weights(backend)
    backend.train_epoch(toy_batches(1), 1)
    np.testing.assert_array_equal(flat_weights(backend), weights)
    assert float(backend.opt.optimizer.dynamic_scale.numpy()) == 2.0**126
    assert int(backend.opt.inner.iterations.numpy()) == 2
    backend.opt.optimizer.dynamic_scale.assign(2.0**15)
    backend.opt.optimizer.step_counter.assign(2)
    backend.save_checkpoint(tmp_path / "mp", {})
    counter, scale = backend.state()["loss_scale"]
    assert int(counter) == 2 and float(scale) == 2.0**15  # two good steps at Keras' initial scale
    plain = make_backend(make_cfg(grad_clip=1.0, lr=0.01), 2)  # an fp32 run can load it
    plain.load_checkpoint(tmp_path / "mp")


def test_device_names():
    assert "CPU" in select_devices("cpu")[0].upper()
    with pytest.raises(ConfigError, match="mps"):
        select_devices("mps")
    with pytest.raises(ConfigError, match="use auto"):
        select_devices("tpu")
    if not tf.config.list_logical_devices("GPU"):
        with pytest.raises(ConfigError, match="no GPU"):
            select_devices("cuda")
        assert select_devices("auto") == select_devices("cpu")


MIRRORED_SCRIPT = """
import os, sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from test_backend_tensorflow import FEATURES, CLASSES, make_cfg, tiny_tf_test, toy_batches
from islr.backends import get_backend
from islr.models.registry import register_model
register_model("tiny_tf_test", "tensorflow")(tiny_tf_test)
cfg = make_cfg(optimizer="radam_lookahead", lr=0.01, grad_clip=0.5, label_smoothing=0.1, awp_start_epoch=0)
cfg.model.params["batch_norm"] = False  # per-replica batch statistics would differ from one replica's
batches = toy_batches(6)  # six steps: the Lookahead sync of step 5 is included
logits = []
for devices in (None, [d.name for d in tf.config.list_logical_devices("CPU")]):
    backend = get_backend("tensorflow", devices=devices)
    backend.setup(cfg, FEATURES, CLASSES, len(batches))
    backend.train_epoch(batches, 0)
    logits.append(backend.predict_logits(batches))
print("REPLICAS", backend.replicas, "MAXDIFF", float(np.abs(logits[0] - logits[1]).max()))
"""


@pytest.mark.slow
def test_two_replicas_train_like_one(tmp_path):
    """MirroredStrategy over two logical CPUs (a fresh process: logical devices are fixed at start-up)
    gives the single-device result: gradients are all-reduced before clipping, AWP and Lookahead."""
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(Path(__file__).parent)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    words = done.stdout.split()
    assert words[words.index("REPLICAS") + 1] == "2"
    assert float(words[words.index("MAXDIFF") + 1]) < 1e-5


def test_mixed_policy_is_bfloat16_only_where_every_gpu_has_it(monkeypatch):
    from islr.backends import tensorflow_backend as tfb

    gpus = ["gpu0", "gpu1"]
    details = {"gpu0": {"compute_capability": (8, 0)}, "gpu1": {"compute_capability": (7, 5)}}
    monkeypatch.setattr(tfb.tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tfb.tf.config.experimental, "get_device_details", lambda device: details[device])
    assert tfb.mixed_policy(["/job:localhost/replica:0/task:0/device:GPU:0"]) == "mixed_bfloat16"  # A100-class
    assert tfb.mixed_policy(["/device:GPU:1"]) == "mixed_float16"  # a T4 (7.5): float16 with loss scaling
    assert tfb.mixed_policy(["/device:GPU:0", "/device:GPU:1"]) == "mixed_float16"
    assert tfb.mixed_policy(["/device:CPU:0"]) == "mixed_float16"


def test_bfloat16_training_needs_no_loss_scaling(monkeypatch):
    from islr.backends import tensorflow_backend as tfb

    monkeypatch.setattr(tfb, "mixed_policy", lambda devices: "mixed_bfloat16")
    backend = get_backend("tensorflow", mixed_precision_on_cpu=True)
    backend.setup(make_cfg(mixed_precision=True, grad_clip=1.0, lr=0.01), FEATURES, CLASSES, 2)
    assert backend.model.proj.dtype_policy.name == "mixed_bfloat16" and not backend.loss_scaling
    assert not isinstance(backend.opt.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.config.dtype_policy().name == "float32"
    log = backend.train_epoch(toy_batches(2), 0)
    assert np.isfinite(log["loss"]) and int(backend.opt.inner.iterations.numpy()) == 2
    assert "loss_scale" not in backend.state() or not backend.state()["loss_scale"]


def test_batches_staged_on_the_device_ahead_train_the_same(monkeypatch):
    """The prefetch thread's copy to the device (on for one GPU; forced here on the CPU) changes
    nothing but where the copy happens."""
    cfg = make_cfg(lr=0.01)
    plain = make_backend(cfg, 2)
    staged = make_backend(cfg, 2)
    monkeypatch.setattr(staged, "_stage_on_device", lambda: True)
    seen = []
    original = staged._staged
    monkeypatch.setattr(staged, "_staged", lambda batch: seen.append(1) or original(batch))
    for epoch in range(2):
        a, b = plain.train_epoch(toy_batches(3), epoch), staged.train_epoch(toy_batches(3), epoch)
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    assert len(seen) == 6
    np.testing.assert_allclose(flat_weights(staged), flat_weights(plain), atol=1e-6)
