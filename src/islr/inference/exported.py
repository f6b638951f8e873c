"""Predictors over exported files (ONNX, TFLite) and :func:`load_predictor`, which picks one.

An exported model needs what its run directory held besides the weights: the preprocessing
settings and the sign names. They travel as JSON of the form::

    {"preprocess": {...PreprocessConfig...}, "sign_names": [...], "framework": "torch", "model": "transformer",
     "tta": "none"}

either in a sidecar file ``<file>.islr.json`` (:func:`write_sidecar`) or embedded in the model
file under the key :data:`METADATA_KEY` (ONNX ``metadata_props``: :func:`embed_onnx_metadata`;
a TFLite metadata buffer of that name: :func:`embed_tflite_metadata`). The sidecar wins when
both exist.

Two input contracts are understood, told apart by the model's inputs:

* features: ``x`` float32 ``(batch, frames, features)`` and optionally a ``mask`` ``(batch, frames)``
  (bool or float), output logits ``(batch, classes)``; preprocessing runs here in numpy.
* raw (the Kaggle contract): one input ``(frames, 543, 3)`` of raw landmarks with NaN, output
  ``(classes,)``; preprocessing is inside the graph, so the raw frames go in untouched.

``"tta": "mirror"`` marks a graph exported with mirror test-time augmentation inside it (the mean
of the logits of the input and its mirror): a features graph then takes ``x`` of width ``2F``,
the features of the sequence then those of its mirrored prepared landmarks (same mask); a raw
graph mirrors internally. A file without in-graph TTA still predicts with ``set_tta("mirror")``
(two runs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from islr.config import (
    ExperimentConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    from_dict,
    to_dict,
)
from islr.data.landmarks import ROWS_PER_FRAME
from islr.data.preprocess import check_config
from islr.data.tta import TTA_MODES, check_tta, mirror_raw
from islr.errors import ConfigError, ModelError
from islr.fileio import atomic_write_text
from islr.inference.predictor import BATCH_SIZE, BasePredictor

SIDECAR_SUFFIX = ".islr.json"
METADATA_KEY = "islr"
EXPORTED_SUFFIXES = (".onnx", ".tflite")


@dataclass
class ExportInfo:
    """What an exported file needs besides its weights."""

    preprocess: PreprocessConfig
    sign_names: list[str]
    framework: str = ""
    model: str = ""
    tta: str = "none"
    """Test-time augmentation computed inside the graph (``none`` or ``mirror``)."""

    def as_dict(self) -> dict[str, Any]:
        return {"preprocess": to_dict(self.preprocess), "sign_names": list(self.sign_names),
                "framework": self.framework, "model": self.model, "tta": self.tta}


def sidecar_path(path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.islr.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def export_info(
    cfg: PreprocessConfig | ExperimentConfig, sign_names: Sequence[str], framework: str = "", model: str = "",
    tta: str = "none",
) -> ExportInfo:
    """Build the metadata of an export; with an ExperimentConfig, framework and model default to its own."""
    if isinstance(cfg, ExperimentConfig):
        framework = framework or cfg.train.framework
        model = model or cfg.model.name
        cfg = cfg.preprocess
    return ExportInfo(cfg, [str(s) for s in sign_names], framework, model, check_tta(tta))


def metadata_json(cfg: PreprocessConfig | ExperimentConfig, sign_names: Sequence[str], framework: str = "", model: str = "",
                  tta: str = "none") -> str:
    """The metadata as a JSON string, to embed under :data:`METADATA_KEY` in a model file."""
    return json.dumps(export_info(cfg, sign_names, framework, model, tta).as_dict())


def write_sidecar(
    path: str | Path,
    cfg: PreprocessConfig | ExperimentConfig,
    sign_names: Sequence[str],
    framework: str = "",
    model: str = "",
    tta: str = "none",
) -> Path:
    """Write ``<path>.islr.json`` next to an exported model file; returns the sidecar's path."""
    target = sidecar_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(export_info(cfg, sign_names, framework, model, tta).as_dict(), indent=2) + "\n")
    return target


def parse_metadata(blob: str | bytes | dict[str, Any], source: str | Path) -> ExportInfo:
    """Validate metadata JSON (text or already decoded); :class:`ModelError` naming ``source`` if unusable."""
    try:
        data = json.loads(blob) if isinstance(blob, str | bytes) else blob
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: islr metadata is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "preprocess" not in data or "sign_names" not in data:
        raise ModelError(f"{source}: islr metadata needs 'preprocess' and 'sign_names'")
    names = data["sign_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ModelError(f"{source}: 'sign_names' must be a non-empty list of strings")
    if not isinstance(data["preprocess"], dict):
        raise ModelError(f"{source}: 'preprocess' must be a mapping of PreprocessConfig fields")
    try:
        preprocess = from_dict(PreprocessConfig, data["preprocess"])
        check_config(preprocess)
    except ConfigError as exc:
        raise ModelError(f"{source}: bad 'preprocess' settings ({exc})") from None
    tta = str(data.get("tta", "none"))
    if tta not in TTA_MODES:
        raise ModelError(f"{source}: 'tta' must be one of {list(TTA_MODES)}, got {tta!r}")
    return ExportInfo(preprocess, names, str(data.get("framework", "")), str(data.get("model", "")), tta)


def read_sidecar(path: str | Path) -> ExportInfo:
    """Read the sidecar of an exported model file (``path`` is the model or the sidecar itself)."""
    path = Path(path)
    target = path if path.name.endswith(SIDECAR_SUFFIX) else sidecar_path(path)
    try:
        text = target.read_bytes()  # parse_metadata refuses bytes that are not UTF-8 JSON
    except FileNotFoundError:
        raise ModelError(f"{target}: sidecar not found") from None
    return parse_metadata(text, target)


def sign_names_from_map(path: str | Path) -> list[str]:
    """Sign names in index order from a ``sign -> index`` JSON (a file, or a folder holding the Kaggle one)."""
    from islr.data.kaggle import read_sign_map

    mapping = read_sign_map(path)
    return [s for s, _ in sorted(mapping.items(), key=lambda kv: kv[1])]


def _info_for(path: Path, embedded: str | bytes | None, sign_map: str | Path | None = None) -> ExportInfo:
    """The file's islr metadata; ``sign_map`` (a Kaggle ``sign_to_prediction_index_map.json``)
    replaces its sign names, or stands in for the metadata of a model that has none (a
    community Kaggle model: raw landmarks in, preprocessing inside the graph)."""
    names = sign_names_from_map(sign_map) if sign_map is not None else None
    if sidecar_path(path).exists():
        info = read_sidecar(path)
    elif embedded:
        info = parse_metadata(embedded, path)
    elif names is not None:
        return ExportInfo(PreprocessConfig(), names, path.suffix.lstrip(".").lower(), path.name)
    else:
        raise ModelError(
            f"{path}: no preprocessing and sign names found (neither {sidecar_path(path).name} "
            f"nor '{METADATA_KEY}' metadata in the file); export it with `islr export`, or give "
            "--sign-map for a model with the Kaggle signature (raw landmarks in)"
        )
    if names is not None:
        info.sign_names = names
    return info


def _check_features_metadata(path: Path, embedded: str | bytes | None) -> None:
    """A features graph needs islr's preprocessing settings: a sign map alone is not enough."""
    if not sidecar_path(path).exists() and not embedded:
        raise ModelError(f"{path}: takes prepared features, so it needs the preprocessing settings of "
                         f"{sidecar_path(path).name} or embedded '{METADATA_KEY}' metadata; --sign-map "
                         f"alone serves models that take raw landmarks (n, {ROWS_PER_FRAME}, 3)")


class _ExportedPredictor(BasePredictor):
    """Common part of the ONNX and TFLite predictors: metadata and the two input contracts."""

    path: Path
    raw_input: bool
    """True when the graph takes raw ``(frames, 543, 3)`` landmarks (preprocessing inside)."""

    def _set_info(self, info: ExportInfo) -> None:
        self.info = info
        self.graph_tta = info.tta
        """TTA inside the graph: the predictor then uses it by default."""
        self.tta = info.tta
        self.sign_names = info.sign_names
        # An ExperimentConfig so callers can read cfg.preprocess / cfg.model as for a run.
        self.cfg = ExperimentConfig(preprocess=info.preprocess, model=ModelConfig(name=info.model or "exported"),
                                    train=TrainConfig(framework=info.framework or "exported"))

    def features(self, raw: np.ndarray) -> np.ndarray:
        if self.raw_input:
            return np.asarray(raw, dtype=np.float32)
        return super().features(raw)

    def set_tta(self, mode: str) -> BasePredictor:
        if self.raw_input and self.graph_tta == "mirror" and check_tta(mode) != "mirror":
            raise ModelError(f"{self.path}: mirror TTA is inside this graph and cannot be turned off; "
                             "export again without --tta to predict without it")
        return super().set_tta(mode)

    def _run_raw(self, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def logits(self, raw: np.ndarray) -> np.ndarray:
        if self.raw_input:
            raw = np.asarray(raw, np.float32)
            out = self._check_out(np.asarray(self._run_raw(raw)).reshape(-1))
            if self.tta == "mirror" and self.graph_tta != "mirror":  # two runs, mirrored raw frames
                out = (out + self._check_out(np.asarray(self._run_raw(mirror_raw(raw))).reshape(-1))) / 2
            return out
        return super().logits(raw)

    def logits_from_passes(self, passes: list[dict[str, np.ndarray]]) -> np.ndarray:
        if self.graph_tta == "mirror" and not self.raw_input:
            # One run of the graph: x = [plain | mirror] features (plain twice gives plain logits).
            mirror = passes[1]["x"] if len(passes) == 2 else passes[0]["x"]
            return self.logits_from_features({**passes[0], "x": np.concatenate([passes[0]["x"], mirror], axis=-1)})
        return super().logits_from_passes(passes)

    def logits_batch(self, raws: Sequence[np.ndarray], batch_size: int = BATCH_SIZE) -> np.ndarray:
        if self.raw_input:  # the Kaggle contract has no batch axis
            return np.stack([self.logits(r) for r in raws]) if len(raws) else np.zeros((0, self.num_classes), np.float32)
        return super().logits_batch(raws, batch_size)

    def _check_out(self, logits: np.ndarray) -> np.ndarray:
        if logits.shape[-1] != self.num_classes:
            raise ModelError(f"{self.path}: the model has {logits.shape[-1]} outputs but {self.num_classes} sign names")
        return logits.astype(np.float32, copy=False)


def _is_raw_shape(shape: Sequence[Any]) -> bool:
    return len(shape) >= 3 and list(shape[-2:]) == [ROWS_PER_FRAME, 3]


def _static(dim: Any) -> int | None:
    """A dimension's size when fixed in the graph, else None (symbolic or -1)."""
    return int(dim) if isinstance(dim, int | np.integer) and dim > 0 else None


def _fit_batch(batch: dict[str, np.ndarray], frames: int | None) -> dict[str, np.ndarray]:
    """Pad (mask False) or refuse so a batch matches a graph exported with a fixed frame count."""
    if frames is None or batch["x"].shape[1] == frames:
        return batch
    if batch["x"].shape[1] > frames:
        raise ModelError(f"the model takes at most {frames} frames, got {batch['x'].shape[1]}")
    pad = frames - batch["x"].shape[1]
    return {k: np.pad(v, ((0, 0), (0, pad)) + ((0, 0),) * (v.ndim - 2)) for k, v in batch.items()}


class OnnxPredictor(_ExportedPredictor):
    """An ``.onnx`` file run with ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path, threads: int = 1, sign_map: str | Path | None = None):
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("onnxruntime is not installed (pip install onnxruntime)") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for missing/corrupt files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a readable ONNX model ({first})") from None
        embedded = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self._set_info(_info_for(self.path, embedded, sign_map))
        inputs = self.session.get_inputs()
        self.output_name = self.session.get_outputs()[0].name
        raw = [i for i in inputs if _is_raw_shape(i.shape)]
        if raw and len(inputs) == 1:
            self.raw_input, self.raw_name, self.raw_rank = True, raw[0].name, len(raw[0].shape)
            return
        self.raw_input = False
        _check_features_metadata(self.path, embedded)
        x = [i for i in inputs if len(i.shape) == 3]
        mask = [i for i in inputs if len(i.shape) == 2]
        if len(x) != 1 or len(mask) > 1 or len(inputs) != len(x) + len(mask):
            described = ", ".join(f"{i.name}{list(i.shape)}" for i in inputs)
            raise ModelError(f"{self.path}: unexpected inputs {described}; expected x (batch, frames, features) "
                             f"and mask (batch, frames), or raw landmarks (frames, {ROWS_PER_FRAME}, 3)")
        self.x_name = x[0].name
        self.mask_name = mask[0].name if mask else None
        self.mask_dtype = bool if mask and mask[0].type == "tensor(bool)" else np.float32
        self.fixed_batch = _static(x[0].shape[0])
        self.fixed_frames = _static(x[0].shape[1])

    def _feed(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {self.x_name: batch["x"].astype(np.float32, copy=False)}
        if self.mask_name:
            feed[self.mask_name] = batch["mask"].astype(self.mask_dtype)
        return feed

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        batch = _fit_batch(batch, self.fixed_frames)
        if self.fixed_batch == 1 and len(batch["x"]) > 1:  # exported at batch 1: one row at a time
            rows = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(len(batch["x"]))]
            return np.concatenate([self.logits_from_features(r) for r in rows])
        out = self.session.run([self.output_name], self._feed(batch))[0]
        return self._check_out(np.asarray(out).reshape(len(batch["x"]), -1))

    def _run_raw(self, raw: np.ndarray) -> np.ndarray:
        value = raw[None] if self.raw_rank == 4 else raw
        return self.session.run([self.output_name], {self.raw_name: value})[0]


def embed_onnx_metadata(path: str | Path, text: str, key: str = METADATA_KEY) -> None:
    """Store ``text`` (e.g. :func:`metadata_json`) in an ONNX file's ``metadata_props`` under ``key``."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[key] = text
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def embed_tflite_metadata(model: bytes, text: str, key: str = METADATA_KEY) -> bytes:
    """A copy of a TFLite flatbuffer with ``text`` in a metadata buffer named ``key`` (replaced if present)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode(), dtype=np.uint8)
    tree.buffers = list(tree.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = key
    entry.buffer = len(tree.buffers) - 1
    kept = [m for m in (tree.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) != key]
    tree.metadata = kept + [entry]
    builder = flatbuffers.Builder(len(model) + len(text) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tflite_metadata(path: Path, key: str) -> bytes | None:
    """The bytes of the TFLite metadata buffer named ``key`` (None when absent or unreadable)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    try:
        data = path.read_bytes()
        model = schema.Model.GetRootAsModel(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if (entry.Name() or b"").decode() == key:
                buffer = model.Buffers(entry.Buffer())
                if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
                    return data[buffer.Offset() : buffer.Offset() + buffer.Size()]
                return buffer.DataAsNumpy().tobytes()
    except Exception:  # a foreign or truncated flatbuffer simply has no islr metadata
        return None
    return None


class TFLitePredictor(_ExportedPredictor):
    """A ``.tflite`` file run with the LiteRT interpreter (``ai_edge_litert``)."""

    def __init__(self, path: str | Path, threads: int = 1, sign_map: str | Path | None = None):
        self.path = Path(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError("ai-edge-litert is not installed (pip install ai-edge-litert)") from None
        if not self.path.is_file():
            raise ModelError(f"{self.path}: file not found")
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError for foreign files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a readable TFLite model ({first})") from None
        embedded = _tflite_metadata(self.path, METADATA_KEY)
        self._set_info(_info_for(self.path, embedded, sign_map))
        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise ModelError(f"{self.path}: the TFLite model has no signature (export it with a serving signature)")
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(key)
        inputs = self.runner.get_input_details()
        outputs = self.runner.get_output_details()
        self.output_name = "outputs" if "outputs" in outputs else sorted(outputs)[0]
        shapes = {name: list(d.get("shape_signature", d["shape"])) for name, d in inputs.items()}
        raw = [n for n, s in shapes.items() if _is_raw_shape(s)]
        if raw and len(inputs) == 1:
            self.raw_input, self.raw_name, self.raw_rank = True, raw[0], len(shapes[raw[0]])
            return
        self.raw_input = False
        _check_features_metadata(self.path, embedded)
        x = [n for n, s in shapes.items() if len(s) == 3]
        mask = [n for n, s in shapes.items() if len(s) == 2]
        if len(x) != 1 or len(mask) > 1 or len(inputs) != len(x) + len(mask):
            described = ", ".join(f"{n}{s}" for n, s in shapes.items())
            raise ModelError(f"{self.path}: unexpected inputs {described}; expected x (batch, frames, features) "
                             f"and mask (batch, frames), or raw landmarks (frames, {ROWS_PER_FRAME}, 3)")
        self.x_name = x[0]
        self.mask_name = mask[0] if mask else None
        self.mask_dtype = inputs[self.mask_name]["dtype"] if mask else np.float32
        self.fixed_batch = _static(shapes[self.x_name][0])
        self.fixed_frames = _static(shapes[self.x_name][1])

    def logits_from_features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        batch = _fit_batch(batch, self.fixed_frames)
        if self.fixed_batch == 1 and len(batch["x"]) > 1:
            rows = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(len(batch["x"]))]
            return np.concatenate([self.logits_from_features(r) for r in rows])
        feed = {self.x_name: batch["x"].astype(np.float32, copy=False)}
        if self.mask_name:
            feed[self.mask_name] = batch["mask"].astype(self.mask_dtype)
        out = self.runner(**feed)[self.output_name]
        return self._check_out(np.asarray(out).reshape(len(batch["x"]), -1))

    def _run_raw(self, raw: np.ndarray) -> np.ndarray:
        value = raw[None] if self.raw_rank == 4 else raw
        return self.runner(**{self.raw_name: value})[self.output_name]


def load_predictor(path: str | Path, checkpoint: str = "best", sign_map: str | Path | None = None) -> BasePredictor:
    """A predictor for a run directory, an ``.onnx`` or a ``.tflite`` file (chosen by kind).

    ``sign_map`` (``sign_to_prediction_index_map.json``) lets a model file without islr metadata
    predict when it has the Kaggle signature (raw landmarks in, e.g. a community model), and
    renames an islr export's signs.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "config.yaml").exists():
            from islr.inference.ensemble import open_run

            predictor = open_run(path, checkpoint)
            if sign_map is not None:  # display names only: the run's classes stay as trained
                names = sign_names_from_map(sign_map)
                if len(names) != predictor.num_classes:
                    raise ModelError(f"{sign_map}: {len(names)} signs but the run {path} has {predictor.num_classes}")
                predictor.sign_names = names
            return predictor
    elif path.suffix.lower() == ".onnx":
        if not path.exists():
            raise ModelError(f"{path}: file not found")
        return OnnxPredictor(path, sign_map=sign_map)
    elif path.suffix.lower() == ".tflite":
        if not path.exists():
            raise ModelError(f"{path}: file not found")
        return TFLitePredictor(path, sign_map=sign_map)
    elif not path.exists():
        raise ModelError(f"{path}: not found (expected a run directory, .onnx or .tflite file)")
    raise ModelError(f"{path}: not a run directory, .onnx or .tflite file")


__all__ = [
    "EXPORTED_SUFFIXES", "METADATA_KEY", "SIDECAR_SUFFIX", "ExportInfo", "OnnxPredictor", "TFLitePredictor",
    "embed_onnx_metadata", "embed_tflite_metadata", "export_info", "load_predictor", "metadata_json", "parse_metadata", "read_sidecar",
    "sidecar_path", "write_sidecar",
]
