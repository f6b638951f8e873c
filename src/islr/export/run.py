"""Export a trained run: ONNX (PyTorch runs), TFLite (Keras runs) and the Kaggle TFLite contract.

:func:`export_run` loads a run directory's checkpoint, writes the file, its ``<file>.islr.json``
sidecar (preprocessing settings and sign names, :func:`islr.inference.exported.write_sidecar`;
the same JSON is also embedded in the file) and, given raw sequences, checks parity with the
eager model (:mod:`islr.export.parity`).

What is supported:

================  ==================================  =====================================
format            PyTorch run                         Keras (TensorFlow) run
================  ==================================  =====================================
``onnx``          yes (dynamo exporter, with          no: tf2onnx is not installed; use
                  per-model fallbacks)                ``tflite`` or ``kaggle``
``tflite``        yes, through the Keras twin         yes (dynamic batch and frames; batch
                  (:mod:`islr.export.keras_twin`)     1 for recurrent models)
``kaggle``        yes, through the Keras twin         yes (preprocessing in the graph)
================  ==================================  =====================================

``tta="mirror"`` (``islr export --tta mirror``) puts mirror test-time augmentation in the graph
(:mod:`islr.export.tta_export`): both passes run in the file and their logits are averaged;
the metadata says ``"tta": "mirror"`` so the predictors feed it accordingly.

PyTorch -> TFLite goes through the zoo's Keras twin of the model, with the PyTorch weights
copied in and checked to give the same logits: the direct converters do not fit here
(``litert-torch`` conflicts with this project's pins, ``onnx2tf`` needs its own environment).

Framework imports happen inside the functions, so importing this package stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islr.errors import ConfigError, ModelError
from islr.export.parity import DEFAULT_ATOL, ParityResult, check_parity

FORMATS = ("onnx", "tflite", "kaggle")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "kaggle": ".tflite"}

TORCH_TFLITE_REASON = (
    "PyTorch -> TFLite goes through the model's Keras twin here (litert-torch conflicts with this "
    "project's pinned dependencies and onnx2tf needs its own environment), and that failed"
)
KERAS_ONNX_REASON = (
    "ONNX export takes PyTorch runs (tf2onnx is not installed); for this Keras run use --format tflite or --format kaggle"
)


@dataclass
class ExportResult:
    """What :func:`export_run` wrote and what it checked."""

    path: Path
    format: str
    framework: str
    model: str
    size: int
    sidecar: Path
    route: str = ""
    """How the file was made (e.g. ``dynamo``, ``legacy-fixed``, ``dynamic batch``)."""
    notes: list[str] = field(default_factory=list)
    parity: ParityResult | None = None

    def summary(self) -> str:
        """A few lines for the CLI."""
        lines = [f"exported {self.framework} {self.model} to {self.path} ({self.format}, {self.size / 1e6:.2f} MB, route {self.route})",
                 f"sidecar {self.sidecar}"]
        lines += [f"note: {n}" for n in self.notes]
        if self.parity is not None:
            lines.append(str(self.parity))
        return "\n".join(lines)


def check_supported(framework: str, fmt: str) -> None:
    """Raise :class:`ModelError` saying why when ``fmt`` cannot be made from a ``framework`` run."""
    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r} is not one of {list(FORMATS)}")
    if framework == "tensorflow" and fmt == "onnx":
        raise ModelError(KERAS_ONNX_REASON)
    if framework not in ("torch", "tensorflow"):
        raise ModelError(f"unknown framework {framework!r} in the run's config")


def _to_cpu(reference: object) -> None:
    """Exports trace on the CPU: move a torch run's model (and its predictor) there."""
    import torch

    backend = reference.backend  # type: ignore[attr-defined]
    if getattr(backend, "device", None) is not None and backend.device.type != "cpu":
        backend.model.to("cpu")
        backend.device = torch.device("cpu")


def _embed_metadata(path: Path, fmt: str, cfg: object, sign_names: list[str], tta: str = "none") -> None:
    from islr.inference.exported import embed_onnx_metadata, embed_tflite_metadata, metadata_json

    text = metadata_json(cfg, sign_names, tta=tta)
    if fmt == "onnx":
        embed_onnx_metadata(path, text)
    else:
        path.write_bytes(embed_tflite_metadata(path.read_bytes(), text))


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    checkpoint: str = "best",
    raws: Sequence[np.ndarray] | None = None,
    sources: Sequence[str] = (),
    atol: float = DEFAULT_ATOL,
    tta: str = "none",
) -> ExportResult:
    """Export the ``checkpoint`` of a run directory to ``out`` in format ``fmt``.

    With ``raws`` (raw ``(frames, 543, 3)`` sequences), the written file is loaded through
    :func:`islr.inference.exported.load_predictor` and compared with the eager model
    (:func:`islr.export.parity.check_parity`); the result is in ``ExportResult.parity``.
    With ``tta="mirror"`` the file computes mirror TTA and parity compares with the eager TTA logits.
    """
    from islr.data.tta import check_tta
    from islr.inference.exported import load_predictor, write_sidecar
    from islr.inference.predictor import RunPredictor
    from islr.run_dir import RunDir

    cfg = RunDir(run_dir).load_config()
    check_supported(cfg.train.framework, fmt)
    check_tta(tta)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / ('model' + SUFFIXES[fmt])}")
    if out.suffix.lower() != SUFFIXES[fmt]:
        raise ConfigError(f"--out {out}: a {fmt} export must end in {SUFFIXES[fmt]}")
    from islr.inference.ensemble import EnsemblePredictor, is_ensemble

    notes: list[str] = []
    model_name, model_params = cfg.model.name, cfg.model.params
    if is_ensemble(run_dir):
        from islr.export.ensemble import merge_ensemble

        reference = EnsemblePredictor(run_dir, checkpoint)
        if cfg.train.framework == "torch":
            for member in reference.members:
                _to_cpu(member)
        model, model_name, model_params = merge_ensemble(reference)
        notes.append(f"ensemble of {len(reference.members)} runs of {cfg.model.name}: logits averaged in one graph")
    else:
        reference = RunPredictor(run_dir, checkpoint)
        model = reference.backend.model
        if cfg.train.framework == "torch":
            _to_cpu(reference)
    prep = reference.preprocess_config
    from islr.data.preprocess import feature_dim

    input_dim = feature_dim(prep)
    if cfg.train.framework == "torch" and fmt in ("tflite", "kaggle"):
        from islr.export.keras_twin import TWIN_ATOL, keras_twin

        try:
            model = keras_twin(model, model_name, input_dim, reference.num_classes, model_params)
        except ModelError as exc:
            raise ModelError(f"{TORCH_TFLITE_REASON}: {exc}; use --format onnx") from None
        notes.append(f"converted through the Keras twin of {cfg.model.name} (PyTorch weights copied, "
                     f"logits equal within {TWIN_ATOL:g} on random inputs)")
    graph_dim = input_dim
    if tta == "mirror" and fmt != "kaggle":  # features graphs take [plain | mirror] features
        from islr.export.tta_export import keras_feature_tta, torch_feature_tta

        wrap = torch_feature_tta if fmt == "onnx" else keras_feature_tta
        model, graph_dim = wrap(model, input_dim), 2 * input_dim
        notes.append("mirror TTA in the graph: x holds the features of the sequence, then of its mirror "
                     f"({input_dim} + {input_dim}); the logits of both are averaged")
    if fmt == "onnx":
        from islr.export.onnx_export import export_onnx

        fixed = prep.fixed_len if prep.length_mode == "fixed" else prep.max_len
        made = export_onnx(model, graph_dim, out, fixed)
        route = made.route
        if made.fixed_frames is not None:
            notes.append(f"frames fixed at {made.fixed_frames} in the graph (dynamic frames did not export for "
                         f"{cfg.model.name}); shorter inputs are padded with mask False, longer ones refused")
    elif fmt == "tflite":
        from islr.export.tflite_export import export_tflite

        made_t = export_tflite(model, graph_dim, out)
        route = "dynamic batch" if made_t.fixed_batch is None else f"batch {made_t.fixed_batch}"
        if made_t.fixed_batch is not None:
            notes.append(f"batch fixed at {made_t.fixed_batch} ({cfg.model.name} has recurrent layers); frames stay dynamic")
    else:
        from islr.export.kaggle_export import KAGGLE_MAX_BYTES, export_kaggle

        made_k = export_kaggle(model, prep, reference.num_classes, out, tta=tta)
        route = "preprocessing in the graph" + (", mirror TTA in the graph" if tta == "mirror" else "")
        notes.append(f"Kaggle contract: signature serving_default, inputs [n_frames, 543, 3] float32 -> "
                     f"outputs [{made_k.num_classes}] logits (argmax = the sign; softmax for probabilities)")
        if made_k.size > KAGGLE_MAX_BYTES:
            notes.append(f"{made_k.size / 2**20:.1f} MiB is over the competition's 40 MB limit")
    _embed_metadata(out, fmt, cfg, reference.sign_names, tta)
    sidecar = write_sidecar(out, cfg, reference.sign_names, tta=tta)
    result = ExportResult(out, fmt, cfg.train.framework, cfg.model.name, out.stat().st_size, sidecar, route, notes)
    if raws:
        reference.set_tta(tta)
        result.parity = check_parity(reference, load_predictor(out), list(raws), sources, atol)
    return result


__all__ = ["FORMATS", "ExportResult", "check_supported", "export_run"]
