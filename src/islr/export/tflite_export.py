"""Keras model -> ``.tflite`` (LiteRT) with signature ``serving_default``: inputs ``x`` (B, T, F)
float32 and ``mask`` (B, T) bool, output ``logits`` (B, classes); checked with the LiteRT interpreter.

Batch and frames are dynamic; the interpreter resizes its inputs per call. Recurrent models
(``lstm``, ``hybrid``, ``hybrid_ensemble``) only convert with a static batch (the converter needs
a static element shape for Keras' LSTM loop), so they fall back to batch 1 with dynamic frames.

Only builtin TFLite kernels are used (no Select TF ops), so the file runs with the plain
``ai_edge_litert`` / ``tflite_runtime`` interpreter.

A PyTorch run cannot be exported here: ``litert-torch`` conflicts with this project's pins
(typing-extensions, protobuf) and ``onnx2tf`` needs its own environment (it pins tensorflow 2.19.0
and numpy 1.26); export it to ONNX instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from islr.errors import ModelError
from islr.fileio import atomic_write_bytes

#: Largest difference to the eager logits accepted when checking a conversion (random inputs).
VERIFY_ATOL = 1e-4


class GraphModule(tf.Module):
    """A ``tf.Module`` holding a Keras model and one serving function.

    The converter freezes the variables it finds tracked on the module; Keras 3 variables are
    wrappers, so the underlying ``tf.Variable`` objects are tracked explicitly (without that the
    file keeps uninitialised resource variables and returns NaN).
    """

    def __init__(self, model: Any, fn: Callable[..., dict[str, tf.Tensor]], signature: list[tf.TensorSpec]):
        super().__init__()
        self.model = model
        self.tf_variables = [getattr(v, "value", v) for v in model.variables]
        self.serve = tf.function(fn, input_signature=signature)


def convert(module: GraphModule) -> bytes:
    """The TFLite flatbuffer of ``module.serve`` as signature ``serving_default`` (builtin ops only)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as exc:  # ConverterError and friends
        lines = [ln for ln in str(exc).splitlines() if "error:" in ln] or str(exc).strip().splitlines() or [type(exc).__name__]
        raise ModelError(f"TFLite conversion failed ({lines[0].strip()[:300]})") from None


def interpreter(model: bytes | str | Path, threads: int = 1) -> Any:
    """A LiteRT interpreter for a flatbuffer or a file."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        return Interpreter(model_content=model, num_threads=threads)
    return Interpreter(model_path=str(model), num_threads=threads)


@dataclass
class TFLiteExport:
    """How a model was exported."""

    path: Path
    fixed_batch: int | None
    """1 when the batch had to be static (recurrent models), else None (dynamic)."""
    size: int


def _random_batch(batch: int, frames: int, input_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, frames, input_dim), dtype=np.float32)
    mask = np.ones((batch, frames), bool)
    if batch > 1 and frames > 2:
        mask[-1, frames // 2 :] = False
        x[-1, frames // 2 :] = 0.0
    return x, mask


def verify_tflite(blob: bytes, model: Any, input_dim: int, shapes: list[tuple[int, int]], atol: float = VERIFY_ATOL) -> float:
    """Largest logit difference between the flatbuffer and the eager Keras model over ``(batch, frames)``."""
    runner = interpreter(blob).get_signature_runner("serving_default")
    worst = 0.0
    for i, (batch, frames) in enumerate(shapes):
        x, mask = _random_batch(batch, frames, input_dim, seed=1 + i)
        expected = np.asarray(model([x, mask], training=False), np.float32)
        got = runner(x=x, mask=mask)["logits"]
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not diff <= atol:  # NaN fails too
            raise ModelError(f"TFLite logits differ by {diff:.2e} from the Keras model at batch {batch}, {frames} frames")
        worst = max(worst, diff)
    return worst


def features_module(model: Any, input_dim: int, batch: int | None) -> GraphModule:
    """The serving module of the features contract (``x``, ``mask`` -> ``logits``)."""

    def serve(x: tf.Tensor, mask: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": tf.cast(model([x, mask], training=False), tf.float32)}

    signature = [tf.TensorSpec([batch, None, input_dim], tf.float32, name="x"), tf.TensorSpec([batch, None], tf.bool, name="mask")]
    return GraphModule(model, serve, signature)


def export_tflite(model: Any, input_dim: int, out: str | Path) -> TFLiteExport:
    """Convert a Keras model to ``out`` (features contract), dynamic batch first, then batch 1."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for batch in (None, 1):
        try:
            blob = convert(features_module(model, input_dim, batch))
            shapes = [(3, 5), (1, 16), (2, 35)] if batch is None else [(1, 5), (1, 16), (1, 35)]
            verify_tflite(blob, model, input_dim, shapes)
        except ModelError as exc:
            failures.append(f"batch {'dynamic' if batch is None else batch}: {exc}")
            continue
        atomic_write_bytes(out, blob)  # a full disk: WriteError, the previous file intact
        return TFLiteExport(out, batch, len(blob))
    raise ModelError(f"{type(model).__name__} could not be exported to TFLite; " + "; ".join(failures))


__all__ = ["GraphModule", "TFLiteExport", "convert", "export_tflite", "features_module", "interpreter", "verify_tflite"]
