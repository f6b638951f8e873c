"""Keras model + preprocessing -> a TFLite file in the Kaggle ISLR competition's contract.

The contract: signature ``serving_default``; one input ``inputs`` float32 ``[n_frames, 543, 3]``
of raw MediaPipe landmarks with NaN where a point was not detected; one output ``outputs``
float32 ``[num_classes]`` (250 in the competition). The output holds **logits** (Kaggle scores
the argmax; apply a softmax for probabilities). The run's preprocessing runs inside the graph
(:mod:`islr.export.tf_preprocess`), so the raw frames go in untouched. Builtin TFLite ops only.

The competition limits the file to 40 MB; :data:`KAGGLE_MAX_BYTES` is checked by the caller.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from islr.config import PreprocessConfig
from islr.data.landmarks import ROWS_PER_FRAME
from islr.data.preprocess import check_config, feature_dim, preprocess
from islr.errors import ModelError
from islr.export.tf_preprocess import tf_featurize, tf_prepare, tf_preprocess
from islr.export.tflite_export import GraphModule, convert, interpreter
from islr.fileio import atomic_write_bytes

INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
SIGNATURE = "serving_default"
#: The competition's size limit for the submitted model file.
KAGGLE_MAX_BYTES = 40 * 1024 * 1024
#: Largest difference to the eager logits accepted when checking a conversion.
VERIFY_ATOL = 1e-4


@dataclass
class KaggleExport:
    """The written file and its size."""

    path: Path
    size: int
    num_classes: int


def kaggle_module(model: Any, cfg: PreprocessConfig, num_classes: int, tta: str = "none") -> GraphModule:
    """The serving module: raw ``(n_frames, 543, 3)`` -> ``outputs`` ``(num_classes,)`` logits.

    ``tta="mirror"``: the mean of the logits of the prepared frames and of their mirror.
    """
    check_config(cfg)
    input_dim = feature_dim(cfg)

    def run(features: tf.Tensor) -> tf.Tensor:
        # Batch of one, static: recurrent Keras layers only convert with a static batch.
        x = tf.reshape(features, [1, -1, input_dim])
        mask = tf.ones(tf.shape(x)[:2], tf.bool)
        return tf.cast(model([x, mask], training=False), tf.float32)

    def serve(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        if tta == "mirror":
            from islr.export.tta_export import tf_mirror

            prepared = tf_prepare(inputs, cfg)
            logits = (run(tf_featurize(prepared, cfg)) + run(tf_featurize(tf_mirror(prepared, cfg), cfg))) * 0.5
        else:
            logits = run(tf_preprocess(inputs, cfg))
        return {OUTPUT_NAME: tf.reshape(logits, [num_classes])}

    return GraphModule(model, serve, [tf.TensorSpec([None, ROWS_PER_FRAME, 3], tf.float32, name=INPUT_NAME)])


def run_kaggle(blob_or_path: bytes | str | Path, raw: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run a Kaggle-contract file on one raw ``(n_frames, 543, 3)`` sequence -> ``(num_classes,)``."""
    runner = interpreter(blob_or_path, threads).get_signature_runner(SIGNATURE)
    return runner(**{INPUT_NAME: np.asarray(raw, np.float32)})[OUTPUT_NAME]


def verify_kaggle(blob: bytes, model: Any, cfg: PreprocessConfig, raws: list[np.ndarray], atol: float = VERIFY_ATOL,
                  tta: str = "none") -> float:
    """Largest logit difference between the file and numpy preprocessing + the eager Keras model."""
    from islr.data.tta import mirrored_features

    runner = interpreter(blob).get_signature_runner(SIGNATURE)
    worst = 0.0
    for raw in raws:
        passes = [preprocess(raw, cfg)] + ([mirrored_features(raw, cfg)] if tta == "mirror" else [])
        expected = np.mean([np.asarray(model([f[None], np.ones((1, len(f)), bool)], training=False), np.float32)[0]
                            for f in passes], axis=0)
        got = runner(**{INPUT_NAME: raw})[OUTPUT_NAME]
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not diff <= atol:
            raise ModelError(f"the Kaggle graph's logits differ by {diff:.2e} from preprocessing + the Keras model")
        worst = max(worst, diff)
    return worst


def _probe_sequences(seed: int = 0) -> list[np.ndarray]:
    """Raw sequences with the features that exercise the graph: NaN gaps, frames without hands, short and long."""
    rng = np.random.default_rng(seed)
    out = []
    for frames in (1, 3, 23, 70):
        raw = rng.uniform(0.2, 0.8, (frames, ROWS_PER_FRAME, 3)).astype(np.float32)
        raw[:, 468:489] = np.nan  # left hand never seen
        if frames > 2:
            raw[frames // 3 : frames // 3 + 2, 522:543] = np.nan  # a short right-hand gap
            raw[-1, 522:543] = np.nan  # a last frame without hands (dropped)
        out.append(raw)
    return out


def export_kaggle(model: Any, cfg: PreprocessConfig, num_classes: int, out: str | Path, tta: str = "none") -> KaggleExport:
    """Write the Kaggle TFLite file of a Keras model trained with preprocessing ``cfg``; checked on probe sequences.

    ``tta="mirror"`` puts mirror test-time augmentation in the graph (:func:`kaggle_module`).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = convert(kaggle_module(model, cfg, num_classes, tta))
    with warnings.catch_warnings():  # Keras warns about the softmax over the 1-frame probe's single key
        warnings.simplefilter("ignore", UserWarning)
        verify_kaggle(blob, model, cfg, _probe_sequences(), tta=tta)
    atomic_write_bytes(out, blob)  # a full disk: WriteError, the previous file intact
    return KaggleExport(out, len(blob), num_classes)


def describe_contract(path: str | Path) -> dict[str, Any]:
    """Signature, input and output names, shapes and dtypes of a TFLite file (for checks and the CLI)."""
    interp = interpreter(path)
    signatures = interp.get_signature_list()
    runner = interp.get_signature_runner(SIGNATURE) if SIGNATURE in signatures else None
    info: dict[str, Any] = {"signatures": sorted(signatures)}
    if runner is not None:
        for kind, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details())):
            info[kind] = {name: {"shape": [int(s) for s in d.get("shape_signature", d["shape"])],
                                 "dtype": np.dtype(d["dtype"]).name} for name, d in details.items()}
    return info


__all__ = ["INPUT_NAME", "KAGGLE_MAX_BYTES", "OUTPUT_NAME", "SIGNATURE", "KaggleExport", "describe_contract",
           "export_kaggle", "kaggle_module", "run_kaggle", "verify_kaggle"]
