"""Per-sequence inference latency on one CPU thread, and file size, for each runtime.

    python benchmarks/latency.py [--data-dir DIR] [--limit 200] [--models transformer conv1d_transformer]

Models (untrained weights: latency does not depend on their values), 250 classes:
  * ``transformer`` (the default model, configs/models/transformer.yaml) on the default
    preprocessing (seed96 landmarks, x/y, center_std, fixed 32 frames: 192 features);
  * ``conv1d_transformer`` (the Kaggle 1st-place recipe, configs/models/conv1d_transformer.yaml)
    on kaggle118 + motion, variable length up to 384 frames (708 features).

Rows per model, each timed on the same genuine sequences (``--limit``, default 200) one at a time
(batch 1) after one warm-up pass: the bare baseline (numpy preprocessing alone, raw -> features),
eager PyTorch, eager TensorFlow (a ``tf.function``), ONNX Runtime (the ``islr export`` ONNX file),
TFLite (the ``islr export --format tflite`` file, features in) and the Kaggle TFLite file (raw
landmarks in, preprocessing inside the graph). ``model`` is the call alone on precomputed features;
``end-to-end`` adds that sequence's numpy preprocessing (the Kaggle file does its own). Medians
and 90th percentiles in milliseconds. Size: the file a user ships (the torch state_dict, the
Keras ``.weights.h5``, the ONNX/TFLite file).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "asl-signs"
CLASSES = 250

MODELS = {
    "transformer": {},
    "conv1d_transformer": {"landmarks": "kaggle118", "length_mode": "variable", "motion": True},
}
TARGETS = {  # model -> (runtimes judged (prefix), milliseconds end-to-end, bytes): issues 5 and 7
    "transformer": (("ONNX", "TFLite"), 5.0, 10e6),  # the default model, its fastest exported file
    "conv1d_transformer": (("TFLite Kaggle",), 100.0, 40e6),  # the recipe's Kaggle file
}


@dataclass
class Row:
    model: str
    runtime: str
    size: int | None
    model_ms: np.ndarray | None
    total_ms: np.ndarray


def timed(fn, inputs: list) -> np.ndarray:  # noqa: ANN001 - any callable of one input
    """Milliseconds of ``fn(x)`` for each input, after one warm-up pass over all of them."""
    for x in inputs:
        fn(x)
    out = np.empty(len(inputs))
    for i, x in enumerate(inputs):
        start = time.perf_counter()
        fn(x)
        out[i] = (time.perf_counter() - start) * 1e3
    return out


def load_sequences(data_dir: Path, limit: int) -> list[np.ndarray]:
    from islr.data.kaggle import read_landmarks, read_train_csv

    return [read_landmarks(s.path) for s in read_train_csv(data_dir)[:limit]]


def bench_model(name: str, raws: list[np.ndarray], work: Path) -> list[Row]:
    import tensorflow as tf
    import torch

    from islr.config import PreprocessConfig
    from islr.data.preprocess import feature_dim, preprocess
    from islr.export.kaggle_export import export_kaggle, run_kaggle
    from islr.export.onnx_export import export_onnx
    from islr.export.tflite_export import export_tflite, interpreter
    from islr.models.registry import create_model

    cfg = PreprocessConfig(**MODELS[name])
    dim = feature_dim(cfg)
    prep_ms = timed(lambda r: preprocess(r, cfg), raws)
    feats = [preprocess(r, cfg)[None] for r in raws]
    rows = [Row(name, "numpy preprocessing alone (baseline)", None, None, prep_ms)]

    torch.manual_seed(0)
    tmodel = create_model(name, "torch", dim, CLASSES, {}).eval()
    torch.save(tmodel.state_dict(), work / f"{name}.pt")

    def torch_call(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return tmodel(torch.from_numpy(x), torch.ones(x.shape[:2], dtype=torch.bool)).numpy()

    ms = timed(torch_call, feats)
    rows.append(Row(name, "PyTorch eager", (work / f"{name}.pt").stat().st_size, ms, ms + prep_ms))

    kmodel = create_model(name, "tensorflow", dim, CLASSES, {})
    kmodel.save_weights(work / f"{name}.weights.h5")
    tf_fn = tf.function(lambda x, m: kmodel([x, m], training=False), reduce_retracing=True,
                        input_signature=[tf.TensorSpec([1, None, dim], tf.float32), tf.TensorSpec([1, None], tf.bool)])
    ms = timed(lambda x: tf_fn(x, np.ones(x.shape[:2], bool)).numpy(), feats)
    rows.append(Row(name, "TensorFlow tf.function", (work / f"{name}.weights.h5").stat().st_size, ms, ms + prep_ms))

    import onnxruntime as ort

    fixed = cfg.fixed_len if cfg.length_mode == "fixed" else cfg.max_len
    onnx_path = export_onnx(tmodel, dim, work / f"{name}.onnx", fixed).path
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ms = timed(lambda x: session.run(None, {"x": x, "mask": np.ones(x.shape[:2], bool)})[0], feats)
    rows.append(Row(name, "ONNX Runtime", onnx_path.stat().st_size, ms, ms + prep_ms))

    tfl = export_tflite(kmodel, dim, work / f"{name}.tflite")
    runner = interpreter(tfl.path).get_signature_runner("serving_default")
    ms = timed(lambda x: runner(x=x, mask=np.ones(x.shape[:2], bool))["logits"], feats)
    rows.append(Row(name, "TFLite (features in)", tfl.size, ms, ms + prep_ms))

    kag = export_kaggle(kmodel, cfg, CLASSES, work / f"{name}.kaggle.tflite")
    kag_runner = interpreter(kag.path).get_signature_runner("serving_default")
    ms = timed(lambda r: kag_runner(inputs=r)["outputs"], raws)
    rows.append(Row(name, "TFLite Kaggle (raw in, preprocessing in graph)", kag.size, None, ms))
    assert run_kaggle(kag.path, raws[0]).shape == (CLASSES,)
    return rows


def fmt(values: np.ndarray | None, q: float) -> str:
    return "" if values is None else f"{np.percentile(values, q):.2f}"


def table(rows: list[Row]) -> str:
    lines = ["| model | runtime | size (MB) | model ms (median / p90) | end-to-end ms (median / p90) |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        size = "" if r.size is None else f"{r.size / 1e6:.2f}"
        model = "" if r.model_ms is None else f"{fmt(r.model_ms, 50)} / {fmt(r.model_ms, 90)}"
        lines.append(f"| {r.model} | {r.runtime} | {size} | {model} | {fmt(r.total_ms, 50)} / {fmt(r.total_ms, 90)} |")
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for name, (runtimes, limit_ms, limit_bytes) in TARGETS.items():
        exported = [r for r in rows if r.model == name and r.runtime.startswith(runtimes)]
        if not exported:
            continue
        best = min(exported, key=lambda r: float(np.median(r.total_ms)))
        ok = float(np.median(best.total_ms)) < limit_ms and (best.size or 0) < limit_bytes
        out.append(f"- {name}: target under {limit_ms:g} ms end-to-end and {limit_bytes / 1e6:g} MB: "
                   f"{'met' if ok else 'NOT met'} by {best.runtime} ({np.median(best.total_ms):.2f} ms, {best.size / 1e6:.2f} MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=200, help="genuine sequences timed (default 200)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    if not (args.data_dir / "train.csv").exists():
        print(f"no Kaggle files at {args.data_dir} (use --data-dir)", file=sys.stderr)
        return 2

    import tensorflow as tf
    import torch

    torch.set_num_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    raws = load_sequences(args.data_dir, args.limit)
    frames = np.array([len(r) for r in raws])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += bench_model(name, raws, Path(tmp))
    print(f"{len(raws)} genuine sequences ({frames.min()}-{frames.max()} frames, median {np.median(frames):.0f}), "
          f"batch 1, 1 CPU thread, {os.cpu_count()} cores on this machine\n")
    print(table(rows))
    print()
    print("\n".join(verdicts(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
