"""TensorFlow backend: Keras 3 models trained by a compiled ``tf.function`` step.

It mirrors :mod:`islr.backends.torch_backend`: the same numpy batches in, the same loss
(label-smoothed cross-entropy, equal to :func:`islr.metrics.cross_entropy`), the same
learning rate per step (:func:`islr.training.schedules.learning_rate` of the fractional epoch),
gradient clipping by global norm with torch's formula, optimizers and weight decay as in torch
(see :mod:`islr.backends.tf_optimizers`), optional AWP, plain numpy logits out.

Devices and replicas. ``train.device``: ``auto`` takes every visible GPU (else the CPU), ``cuda``
(or ``gpu``) requires a GPU, ``cuda:N`` picks one, ``cpu`` the CPU. With several devices the step
runs under ``tf.distribute.MirroredStrategy``: each batch is split across the replicas (every
R-th sample) and the gradients are all-reduced *before* clipping, so clipping, AWP, L2 and
Lookahead see the global gradient exactly as on one device. The CPU is one replica: it is never
split into logical devices (measured slower than one multi-threaded replica). GPU memory grows on
demand instead of being reserved whole. ``create_backend(devices=[...])`` overrides the choice.

Several machines. When ``TF_CONFIG`` describes a cluster of several tasks
(:mod:`islr.backends.tf_cluster`), the constructor starts ``MultiWorkerMirroredStrategy`` (before
any other TensorFlow work: collectives are configured at start-up) and sets ``rank`` and
``world_size``, so the pipeline gives each worker samples ``rank::world`` of every global batch,
as under torchrun. Each worker uses all its visible GPUs, else its CPU (``CUDA_VISIBLE_DEVICES``
chooses); a replica's index in the global sync group is ``rank * local replicas + local index``.
The step divides every replica's loss sum by the *global* batch size, all-reduces the gradients
across all workers before clipping/AWP/Lookahead, and reduces loss and correct count globally, so
every worker takes the step and reports the numbers one process seeing the global batch would.
A worker whose shard of a last, short batch is empty still takes part (its gradient is zero).
The zoo's variables (BatchNorm statistics included) are mirrored on write, none synchronised on
read, so reading them for a checkpoint is local: only rank 0 saves, and no collective is left
for the other workers to join. BatchNorm normalises with each replica's own batch statistics.

Compiled step. One ``tf.function`` per training mode (plain / with AWP) and one for prediction,
each with an ``input_signature`` whose batch and time dimensions are ``None``: variable-length
batches never retrace. ``ISLR_TF_JIT=1`` compiles them with XLA (one replica only; XLA compiles
once per distinct batch shape, so it pays off with fixed-length inputs).

Mixed precision. With ``train.mixed_precision`` and a GPU the model is built under
``mixed_bfloat16`` where every GPU supports it (compute capability 8.0+, as torch's autocast
picks bf16) and ``mixed_float16`` elsewhere (:func:`mixed_policy`; the global policy is restored
afterwards, so other models are unaffected). Under float16 the optimizer is wrapped in Keras'
dynamic ``LossScaleOptimizer``; a step with non-finite gradients is skipped, like torch's
GradScaler. bfloat16 has float32's range and needs no scaling.

Reproducibility. ``setup`` seeds python, numpy and TensorFlow (``keras.utils.set_random_seed``).
Keras 3 layers draw randomness from ``SeedGenerator`` state variables, which are part of
``model.variables`` and so of every checkpoint; together with the optimizer variables, Lookahead
slow weights and the python/numpy RNG states, a run resumed from the checkpoint of epoch k
continues exactly as the uninterrupted run (tested on CPU). GPU kernels may still be
nondeterministic unless ``tf.config.experimental.enable_op_determinism()`` is called.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from islr.backends.base import Batch, account_batches  # noqa: E402
from islr.backends.tf_cluster import cluster_from_env, multi_worker_strategy  # noqa: E402
from islr.backends.tf_optimizers import OptimizerSpec, build_optimizer  # noqa: E402
from islr.checkpoint_format import (  # noqa: E402
    SUFFIX,
    check_extra,
    expect,
    expect_keys,
    read_checkpoint,
    write_checkpoint,
)
from islr.config import ExperimentConfig  # noqa: E402
from islr.errors import ConfigError, ModelError  # noqa: E402
from islr.models.registry import create_model  # noqa: E402
from islr.training.prefetch import prefetch  # noqa: E402
from islr.training.schedules import learning_rate  # noqa: E402

#: Batches between two reads of the loss on a GPU (each read waits for the device).
CHECK_EVERY_ACCELERATOR = 32
_SUM = tf.distribute.ReduceOp.SUM


def enable_memory_growth() -> None:
    """Let TensorFlow take GPU memory as needed instead of all of it (must precede GPU use)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # runtime already initialised: its setting stays
            tf.config.experimental.set_memory_growth(gpu, True)


def select_devices(name: str = "auto") -> list[str]:
    """TensorFlow device names for ``train.device`` (``auto``, ``cpu``, ``cuda``/``gpu``, ``cuda:N``)."""
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpu = tf.config.list_logical_devices("CPU")[0].name
    kind, _, index = name.lower().partition(":")
    if kind == "auto":
        return gpus or [cpu]
    if kind == "cpu":
        return [cpu]
    if kind in ("cuda", "gpu"):
        if not gpus:
            raise ConfigError(f"train.device is {name} but TensorFlow sees no GPU (use auto or cpu)")
        if not index:
            return gpus
        if not index.isdigit() or int(index) >= len(gpus):
            raise ConfigError(f"train.device {name!r}: TensorFlow sees {len(gpus)} GPU(s)")
        return [gpus[int(index)]]
    if kind == "mps":
        raise ConfigError("train.device mps: TensorFlow has no mps device (tensorflow-metal shows a GPU: use auto)")
    raise ConfigError(f"train.device {name!r}: use auto, cpu, cuda or cuda:N")


def mixed_policy(devices: list[str]) -> str:
    """The Keras mixed-precision policy for ``devices``: ``mixed_bfloat16`` where every one is a
    GPU of compute capability 8.0 or newer (bfloat16 has float32's range: no loss scaling, like
    torch's bf16 autocast), else ``mixed_float16`` (with dynamic loss scaling)."""
    physical = tf.config.list_physical_devices("GPU")
    capabilities = []
    for name in devices:
        kind, _, index = name.upper().rpartition("GPU:")
        if not kind or not index.isdigit() or int(index) >= len(physical):
            return "mixed_float16"  # a CPU (tests), or a device we cannot look up
        details = tf.config.experimental.get_device_details(physical[int(index)])
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return "mixed_bfloat16" if capabilities and min(capabilities) >= (8, 0) else "mixed_float16"


@contextlib.contextmanager
def dtype_policy(name: str | None) -> Iterator[None]:
    """Build layers under the Keras dtype policy ``name`` (None: leave it), then restore the old one."""
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _dense(grads: list[Any]) -> list[Any]:
    return [None if g is None else tf.convert_to_tensor(g) for g in grads]


class TensorFlowBackend:
    """The TensorFlow (Keras 3) implementation of :class:`islr.backends.base.Backend`."""

    name = "tensorflow"
    suffix = SUFFIX

    def __init__(self, devices: list[str] | None = None, mixed_precision_on_cpu: bool = False) -> None:
        """``devices`` overrides ``train.device`` (e.g. two logical CPUs to exercise
        MirroredStrategy); ``mixed_precision_on_cpu`` lets tests run the mixed_float16 path
        without a GPU (slow, for checking only)."""
        enable_memory_growth()
        cluster = cluster_from_env()
        if cluster is not None and devices:
            raise ConfigError("TF_CONFIG describes a cluster: each worker uses its visible devices (no device list)")
        # Several machines: the strategy must exist before TensorFlow runs anything in this process.
        self._multi_worker = multi_worker_strategy() if cluster is not None else None
        #: This worker's place in the cluster (0 of 1 on one machine); the pipeline shards by it.
        self.rank, self.world_size = (cluster.rank, cluster.world_size) if cluster is not None else (0, 1)
        self._devices_override = list(devices) if devices else None
        self._mixed_on_cpu = mixed_precision_on_cpu
        self.model: keras.Model | None = None
        self.cfg: ExperimentConfig | None = None
        self._lr = 0.0
        #: Batches between two host reads of loss and accuracy (1 on the CPU, where a read is free).
        self.check_every = 1
        self._functions: dict[str, Callable[..., Any]] = {}

    # -- set-up ------------------------------------------------------------------------------
    def setup(self, cfg: ExperimentConfig, input_dim: int, num_classes: int, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.input_dim, self.num_classes = int(input_dim), int(num_classes)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        if self._multi_worker is not None:
            self.strategy = self._multi_worker
            self.devices = list(self.strategy.extended.worker_devices)
            _check_worker_devices(cfg.train.device, self.devices)
            #: Replicas in the sync group: every device of every worker.
            self.replicas = int(self.strategy.num_replicas_in_sync)
        else:
            self.devices = self._devices_override or select_devices(cfg.train.device)
            self.replicas = len(self.devices)
            self.strategy = tf.distribute.MirroredStrategy(self.devices) if self.replicas > 1 else tf.distribute.get_strategy()
        #: Replicas in this process (the batch it is handed is split among them).
        self.local_replicas = len(self.devices)
        on_gpu = any("GPU" in d.upper() for d in self.devices)
        self.mixed = bool(cfg.train.mixed_precision) and (on_gpu or self._mixed_on_cpu)
        #: The Keras policy of a mixed-precision run (None: float32); only float16 scales the loss.
        self.policy = mixed_policy(self.devices) if self.mixed else None
        self.loss_scaling = self.policy == "mixed_float16"
        keras.utils.set_random_seed(cfg.train.seed)
        with self._scope(), dtype_policy(self.policy):
            model = create_model(cfg.model.name, "tensorflow", self.input_dim, self.num_classes, cfg.model.params)
            if not isinstance(model, keras.layers.Layer):
                raise ModelError(f"model {cfg.model.name!r} built a {type(model).__name__}, not a Keras model")
            self.model = model
            # Create every variable now: tf.function must not create variables while tracing.
            self.model([tf.zeros((2, 8, self.input_dim)), tf.ones((2, 8), tf.bool)], training=False)
            self.trainable = list(self.model.trainable_variables)
            self.opt: OptimizerSpec = build_optimizer(self.trainable, cfg.train, loss_scaling=self.loss_scaling)
        self._functions = {}
        self._lr = learning_rate(cfg.train, 0.0)
        self.check_every = CHECK_EVERY_ACCELERATOR if on_gpu else 1

    def any_process(self, flag: bool) -> bool:
        """True on every worker when ``flag`` is True on any of them (called by all): training
        on several machines ends together. (Variables, BatchNorm statistics included, are
        mirrored, so every worker already validates the same model.)"""
        if self.world_size <= 1:
            return bool(flag)
        value = tf.constant(1.0 if flag else 0.0)
        votes = self.strategy.experimental_distribute_values_from_function(lambda ctx: value)
        return bool(self.strategy.reduce(_SUM, votes, axis=None).numpy() > 0)

    @contextlib.contextmanager
    def _scope(self) -> Iterator[None]:
        """Where variables live and steps run: the strategy (several replicas) or the one device."""
        if self.replicas > 1:
            with self.strategy.scope():
                yield
        else:
            with tf.device(self.devices[0]):
                yield

    def _stage_on_device(self) -> bool:
        """Whether batches are copied to the (one) GPU ahead of their step."""
        return self.replicas == 1 and "GPU" in self.devices[0].upper()

    def _staged(self, batch: Batch) -> Batch:
        """On one GPU, the batch's tensors already copied to it (run in the prefetch thread, so
        the copy overlaps the previous step, like torch's pinned asynchronous copies); elsewhere
        the batch unchanged (several replicas split it on the host)."""
        if not self._stage_on_device():
            return batch
        with tf.device(self.devices[0]):
            staged = tuple(tf.identity(t) for t in self._tensors(batch))
        return {**batch, "_tensors": staged}

    def _tensors(self, batch: Batch) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x = tf.convert_to_tensor(batch["x"])
        if x.shape.rank != 3 or x.shape[-1] != self.input_dim:
            raise ModelError(f"batch x has shape {tuple(x.shape)}; the model expects (batch, frames, {self.input_dim})")
        x = x if x.dtype == tf.float32 else tf.cast(x, tf.float32)
        mask = tf.convert_to_tensor(batch["mask"])
        mask = mask if mask.dtype == tf.bool else tf.cast(mask, tf.bool)
        y = tf.convert_to_tensor(batch["y"]) if "y" in batch else tf.zeros(tf.shape(x)[:1], tf.int64)
        y = y if y.dtype == tf.int64 else tf.cast(y, tf.int64)
        return x, mask, y

    # -- loss and gradients (traced inside the compiled step) ----------------------------------
    def _sample_losses(self, y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """Per-sample (1 - ls) * nll + ls * mean(-log_softmax): metrics.cross_entropy's definition."""
        log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        nll = -tf.gather(log_p, y, axis=1, batch_dims=1)
        ls = float(self.cfg.train.label_smoothing)
        if ls:
            nll = (1 - ls) * nll + ls * -tf.reduce_mean(log_p, axis=-1)
        weights = getattr(self, "_class_weights", None)
        if weights is not None:  # train.class_weights: each sample's loss times its class weight
            nll = nll * tf.gather(tf.constant(weights, tf.float32), y)
        return nll

    def set_class_weights(self, weights: np.ndarray | None) -> None:
        """Loss = batch mean of ``weights[y] *`` the label-smoothed cross-entropy (None: unweighted)."""
        self._class_weights = None if weights is None else np.asarray(weights, np.float32)
        self._functions = {}  # the compiled steps captured the previous weights: retrace

    def _forward_loss(self, x: tf.Tensor, mask: tf.Tensor, y: tf.Tensor, n: tf.Tensor) -> tuple[Any, Any, Any]:
        """Logits, this replica's share of the batch-mean loss, and the gradients of its scaled loss."""
        with tf.GradientTape() as tape:
            logits = self.model([x, mask], training=True)
            loss = tf.reduce_sum(self._sample_losses(y, logits)) / n
            scaled = self.opt.optimizer.scale_loss(loss)
        grads = self._all_reduce(_dense(tape.gradient(scaled, self.trainable)))
        return logits, loss, grads

    def _all_reduce(self, grads: list[Any]) -> list[Any]:
        if self.replicas == 1:
            return grads
        present = [g for g in grads if g is not None]
        reduced = iter(tf.distribute.get_replica_context().all_reduce(_SUM, present))
        return [None if g is None else next(reduced) for g in grads]

    def _assign(self, pairs: list[tuple[Any, Any]]) -> None:
        """Assign model variables; across replicas through ``merge_call`` (values agree everywhere)."""
        if not pairs:
            return
        if self.replicas == 1:
            for variable, value in pairs:
                variable.assign(value)
            return

        def merge(strategy: tf.distribute.Strategy, values: list[Any]) -> None:
            for (variable, _), value in zip(pairs, values, strict=True):
                target = variable.value if isinstance(variable, keras.Variable) else variable
                strategy.extended.update(target, lambda v, x: v.assign(x), args=(value,), group=False)

        tf.distribute.get_replica_context().merge_call(merge, args=([value for _, value in pairs],))

    def _adversarial_gradients(self, x: Any, mask: Any, y: Any, n: Any, grads: list[Any]) -> list[Any]:
        """AWP as in the torch backend: move each matrix up its gradient by ``awp_lambda * 1e-2`` of
        its norm, add the gradient of the loss there, restore the weights (exactly, from a copy)."""
        lam = float(self.cfg.train.awp_lambda)
        perturbed, backups = [], []
        for variable, g in zip(self.trainable, grads, strict=True):
            if g is None or len(variable.shape) < 2:
                continue
            w = tf.convert_to_tensor(variable)
            g_norm, w_norm = tf.norm(g), tf.norm(w)
            ok = tf.logical_and(g_norm > 0, tf.math.is_finite(g_norm))
            delta = tf.where(ok, lam * w_norm * g / (g_norm + 1e-12) * 1e-2, tf.zeros_like(w))
            backups.append((variable, w))
            perturbed.append((variable, w + delta))
        self._assign(perturbed)
        _, _, adversarial = self._forward_loss(x, mask, y, n)
        self._assign(backups)
        return [a if g is None else g if a is None else g + a for g, a in zip(grads, adversarial, strict=True)]

    def _finish_gradients(self, grads: list[Any]) -> list[Any]:
        """Unscale, clip by global norm (torch's formula), add coupled L2, rescale for the optimizer."""
        t = self.cfg.train
        scale = tf.convert_to_tensor(self.opt.optimizer.dynamic_scale) if self.loss_scaling else None
        if scale is not None:
            grads = [None if g is None else g / scale for g in grads]
        if t.grad_clip > 0:
            norm = tf.linalg.global_norm([g for g in grads if g is not None])
            coef = tf.minimum(float(t.grad_clip) / (norm + 1e-6), 1.0)
            grads = [None if g is None else g * coef for g in grads]
        if self.opt.l2:
            grads = [
                g if g is None or not decayed else g + self.opt.l2 * tf.convert_to_tensor(v)
                for g, v, decayed in zip(grads, self.trainable, self.opt.decayed, strict=True)
            ]
        if scale is not None:  # the loss-scale optimizer divides by its scale (a power of two: exact)
            grads = [None if g is None else g * scale for g in grads]
        if self.replicas > 1:  # the optimizer sums the (already reduced) gradients over replicas
            grads = [None if g is None else g / self.replicas for g in grads]
        return grads

    def _replica_step(self, x: Any, mask: Any, y: Any, n: Any, awp: bool) -> tuple[Any, Any]:
        logits, loss, grads = self._forward_loss(x, mask, y, n)
        if awp:
            grads = self._adversarial_gradients(x, mask, y, n, grads)
        grads = self._finish_gradients(grads)
        before = tf.convert_to_tensor(self.opt.inner.iterations)
        self.opt.optimizer.apply(grads, self.trainable)
        if self.opt.lookahead is not None:
            after = tf.convert_to_tensor(self.opt.inner.iterations)
            slow, fast = self.opt.lookahead.updates(after, after > before)
            for variable, value in slow:
                variable.assign(value)
            self._assign(fast)
        predicted = tf.argmax(tf.cast(logits, tf.float32), axis=-1, output_type=tf.int64)
        return loss, tf.reduce_sum(tf.cast(tf.equal(predicted, y), tf.int32))

    # -- compiled functions ------------------------------------------------------------------
    def _signature(self) -> list[tf.TensorSpec]:
        return [tf.TensorSpec((None, None, self.input_dim), tf.float32), tf.TensorSpec((None, None), tf.bool)]

    def _jit(self) -> bool:
        return os.environ.get("ISLR_TF_JIT", "0") == "1" and self.replicas == 1

    def _train_function(self, awp: bool) -> Callable[..., Any]:
        key = "train_awp" if awp else "train"
        if key not in self._functions:

            def step(x: tf.Tensor, mask: tf.Tensor, y: tf.Tensor, lr: tf.Tensor,
                     n: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                # n: samples in the global batch (this process's shard may hold fewer)
                self.opt.inner.learning_rate = lr
                if self.replicas == 1:
                    return self._replica_step(x, mask, y, n, awp)
                parts = [self._split(t) for t in (x, mask, y)]
                loss, correct = self.strategy.run(lambda a, b, c: self._replica_step(a, b, c, n, awp), args=parts)
                return self.strategy.reduce(_SUM, loss, axis=None), self.strategy.reduce(_SUM, correct, axis=None)

            signature = [*self._signature(), tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.float32),
                         tf.TensorSpec((), tf.float32)]
            self._functions[key] = tf.function(step, input_signature=signature, reduce_retracing=True, jit_compile=self._jit())
        return self._functions[key]

    def _split(self, tensor: tf.Tensor) -> Any:
        """Every R-th sample of this process's batch to each of its R replicas (the replica id is
        global across workers: ``rank * R + local index``)."""
        r = self.local_replicas
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tensor[ctx.replica_id_in_sync_group % r :: r]
        )

    def _predict_function(self) -> Callable[..., Any]:
        if "predict" not in self._functions:

            def predict(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
                return tf.cast(self.model([x, mask], training=False), tf.float32)

            self._functions["predict"] = tf.function(
                predict, input_signature=self._signature(), reduce_retracing=True, jit_compile=self._jit()
            )
        return self._functions["predict"]

    # -- training ----------------------------------------------------------------------------
    def _awp_active(self, epoch: int) -> bool:
        return 0 <= self.cfg.train.awp_start_epoch <= epoch and self.cfg.train.awp_lambda > 0

    def train_epoch(
        self, batches: Iterable[Batch], epoch: int, on_batch: Callable[[int, dict[str, float]], None] | None = None
    ) -> dict[str, float]:
        assert self.model is not None and self.cfg is not None, "call setup() first"
        step = self._train_function(self._awp_active(epoch))
        limit = self.cfg.train.limit_batches or None
        totals = {"loss": 0.0, "correct": 0, "seen": 0}
        # Loss and correct count stay on the device and are read every ``check_every`` batches in
        # one transfer; the first non-finite batch is still named exactly.
        pending: list[tuple[int, Any, Any, int, float]] = []
        with self._scope():
            for index, batch in enumerate(prefetch(map(self._staged, itertools.islice(batches, limit)))):
                self._lr = learning_rate(self.cfg.train, epoch + index / self.steps_per_epoch)
                x, mask, y = batch["_tensors"] if "_tensors" in batch else self._tensors(batch)
                # A worker's shard names its global batch's size: loss and accuracy come back global.
                n = int(batch.get("global_size", y.shape[0]))
                loss, batch_correct = step(x, mask, y, tf.constant(self._lr, tf.float32), tf.constant(n, tf.float32))
                pending.append((index, loss, batch_correct, n, self._lr))
                if len(pending) >= self.check_every:
                    _drain(pending, totals, epoch, on_batch)
            _drain(pending, totals, epoch, on_batch)
        seen = totals["seen"]
        return {"loss": totals["loss"] / max(seen, 1), "accuracy": totals["correct"] / max(seen, 1), "samples": seen}

    def predict_logits(self, batches: Iterable[Batch]) -> np.ndarray:
        assert self.model is not None, "call setup() first"
        predict = self._predict_function()
        out = []
        with self._scope():
            for batch in batches:
                x, mask, _ = self._tensors(batch)
                out.append(predict(x, mask).numpy())
        if not out:
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(out)

    def get_lr(self) -> float:
        return self._lr

    def set_dropout(self, rate: float) -> None:
        from islr.models.tensorflow import set_dropout
        from islr.models.tensorflow.layers import Dropout, iter_layers

        with warnings.catch_warnings():
            # Its warning is about compiled functions keeping a plain Dropout's old rate: handled below.
            warnings.filterwarnings("ignore", message=".*plain keras Dropout.*")
            set_dropout(self.model, rate)
        plain = [ly for ly in iter_layers(self.model) if isinstance(ly, keras.layers.Dropout) and not isinstance(ly, Dropout)]
        if plain:
            # A plain keras Dropout bakes its rate into the traced graph: trace again.
            self._functions.clear()

    def get_dropout(self) -> list[float]:
        from islr.models.tensorflow import get_dropout

        return get_dropout(self.model)

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Trainable weights, or all weights (BatchNorm statistics and step counters included)."""
        weights = self.model.trainable_weights if trainable_only else self.model.weights
        return int(sum(int(np.prod(w.shape)) for w in weights))

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Numpy copies of every model variable (seed-generator states included), the optimizer's
        variables, Lookahead's slow weights, the loss scale, the RNG states and the current LR."""
        return {
            # np.asarray: a 0-d variable's numpy() is a numpy scalar; the checkpoint keeps arrays.
            "model": [np.asarray(v.numpy()) for v in self.model.variables],
            "model_paths": [v.path for v in self.model.variables],
            "optimizer": [np.asarray(v.numpy()) for v in self.opt.inner.variables],
            "loss_scale": [np.asarray(v.numpy()) for v in self._loss_scale_variables()],
            "lookahead": [np.asarray(v.numpy()) for v in self.opt.lookahead.slow] if self.opt.lookahead else [],
            "python_random": random.getstate(),
            "numpy_random": np.random.get_state(),  # noqa: NPY002 - the global state is what resumes
            "keras_global_seed": _keras_global_seed_state(),
            "lr": self._lr,
        }

    def _loss_scale_variables(self) -> list[Any]:
        """The dynamic loss scale and its good-step counter (mixed precision only)."""
        return [self.opt.optimizer.step_counter, self.opt.optimizer.dynamic_scale] if self.loss_scaling else []

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (a weights-only state without ``optimizer`` restores the model only)."""
        with self._scope():
            _assign_arrays(self.model.variables, state["model"], "model", state.get("model_paths"))
            if "optimizer" not in state:
                return
            _assign_arrays(self.opt.inner.variables, state["optimizer"], "optimizer")
            own = self._loss_scale_variables()
            if own and state.get("loss_scale"):  # a mixed-precision run resumed with mixed precision
                _assign_arrays(own, state["loss_scale"], "loss scale")
            if self.opt.lookahead is not None:
                _assign_arrays(self.opt.lookahead.slow, state["lookahead"], "lookahead")
        random.setstate(_as_tuple_state(state["python_random"]))
        np.random.set_state(tuple(state["numpy_random"]))  # noqa: NPY002
        _set_keras_global_seed_state(state.get("keras_global_seed"))
        self._lr = float(state["lr"])

    def save_checkpoint(self, path: Path, extra: dict[str, Any]) -> None:
        """Write ``<path>.safetensors`` (tensors + JSON, no pickle) with :meth:`state` and ``extra``, atomically."""
        write_checkpoint(path, "tensorflow", self.state(), extra)

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Restore ``<path>.safetensors``; anything that does not fit raises ModelError naming it."""
        ckpt = read_checkpoint(path, "tensorflow")
        check_state(ckpt.state, ckpt.path)
        check_extra(ckpt.extra, ckpt.path)
        try:
            self.load_state(ckpt.state)
        except ModelError as exc:
            raise ModelError(f"{ckpt.path}: {exc}") from None
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            reason = " ".join(str(exc).split())[:400]
            raise ModelError(f"{ckpt.path}: does not fit this model or optimizer ({reason})") from None
        return ckpt.extra


def _check_worker_devices(name: str, devices: list[str]) -> None:
    """Under TF_CONFIG the strategy takes every visible GPU (else the CPU): ``train.device`` can
    only agree with that; choosing devices is ``CUDA_VISIBLE_DEVICES``'s job."""
    kind, _, index = name.lower().partition(":")
    on_gpu = any("GPU" in d.upper() for d in devices)
    if kind == "auto" or (kind == "cpu" and not on_gpu) or (kind in ("cuda", "gpu") and on_gpu and not index):
        return
    raise ConfigError(f"train.device {name!r} under TF_CONFIG: each worker uses all its visible devices "
                      f"({', '.join(devices)}); use train.device auto and choose GPUs with CUDA_VISIBLE_DEVICES")


def _drain(pending: list[tuple[int, Any, Any, int, float]], totals: dict[str, Any], epoch: int,
           on_batch: Callable[[int, dict[str, float]], None] | None) -> None:
    """Read the pending batches' losses in one transfer; stop at the first non-finite one."""
    if not pending:
        return
    losses = tf.stack([p[1] for p in pending]).numpy().astype(float).tolist()
    corrects = tf.stack([p[2] for p in pending]).numpy().tolist()
    account_batches(pending, losses, corrects, totals, epoch, on_batch)


def check_state(state: dict[str, Any], source: Path) -> None:
    """The TensorFlow state's top level: known keys, variables as lists of arrays, RNG states."""
    optional = {"model_paths", "optimizer", "loss_scale", "lookahead", "python_random", "numpy_random",
                "keras_global_seed", "lr"}
    expect_keys(state, {"model"}, optional, "state", source)
    for key in ("model", "optimizer", "loss_scale", "lookahead"):
        if key in state:
            for i, value in enumerate(expect(state[key], list, f"state/{key}", source)):
                expect(value, np.ndarray, f"state/{key}/{i}", source)
    for i, name in enumerate(expect(state.get("model_paths", []), list, "state/model_paths", source)):
        expect(name, str, f"state/model_paths/{i}", source)
    if "optimizer" in state:
        expect_keys(state, {"model", "optimizer", "lookahead", "python_random", "numpy_random", "lr"}, optional, "state", source)
        expect(state["lr"], (float, int), "state/lr", source)
        expect(state["python_random"], (tuple, list), "state/python_random", source)
        expect(state["numpy_random"], (tuple, list), "state/numpy_random", source)
        if state.get("keras_global_seed") is not None:
            expect(state["keras_global_seed"], np.ndarray, "state/keras_global_seed", source)


def _assign_arrays(variables: list[Any], arrays: list[np.ndarray], what: str, paths: list[str] | None = None) -> None:
    if len(variables) != len(arrays):
        raise ModelError(
            f"checkpoint holds {len(arrays)} {what} variables but this setup has {len(variables)} "
            "(a different model or optimizer config?)"
        )
    for i, (variable, array) in enumerate(zip(variables, arrays, strict=True)):
        if tuple(variable.shape) != tuple(np.shape(array)):
            name = paths[i] if paths else variable.path
            raise ModelError(f"checkpoint {what} variable {name}: shape {np.shape(array)} != model's {tuple(variable.shape)}")
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def _keras_global_seed_state() -> np.ndarray | None:
    """State of Keras' global SeedGenerator (used by ``keras.random`` calls without a seed), if any."""
    from keras.src.backend.common import global_state

    generator = global_state.get_global_attribute("global_seed_generator")
    return None if generator is None else generator.state.numpy()


def _set_keras_global_seed_state(value: np.ndarray | None) -> None:
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import global_seed_generator

    if value is None:
        global_state.set_global_attribute("global_seed_generator", None)
    else:
        global_seed_generator().state.assign(value)


def _as_tuple_state(state: Any) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def create_backend(**kwargs: Any) -> TensorFlowBackend:
    """Factory used by :func:`islr.backends.get_backend`."""
    return TensorFlowBackend(**kwargs)
