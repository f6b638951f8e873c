"""Score an exported model file (``.onnx`` / ``.tflite``) on every sequence of a Kaggle-layout dataset.

The file may be an islr export or any model with the Kaggle competition signature (raw
``(n, 543, 3)`` landmarks in, ``(classes,)`` scores out) with ``sign_map`` naming its classes.
The outputs are those of :func:`islr.evaluation.evaluate.evaluate_run` (``metrics.json``,
``per_sign_accuracy.csv``, ``confusion_matrix.png``), so ``islr compare`` puts the folder beside
trained runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islr.errors import ConfigError, DataError
from islr.evaluation.evaluate import Evaluation, _write_outputs
from islr.metrics import classification_metrics

#: Sequences read and scored at once (bounds memory on big datasets).
CHUNK = 64


def default_out(model: str | Path) -> Path:
    """``model.tflite`` -> ``model.tflite.eval`` next to it."""
    model = Path(model)
    return model.with_name(model.name + ".eval")


def evaluate_model_file(model: str | Path, data_dir: str | Path, sign_map: str | Path | None = None,
                        out_dir: str | Path | None = None, tta: str = "none") -> Evaluation:
    """Score ``model`` on all of ``data_dir`` and write the three output files into ``out_dir``.

    Sequences of signs the model does not know, and unreadable files, are skipped and listed.
    """
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.inference.exported import load_predictor

    predictor = load_predictor(model, sign_map=sign_map)
    if tta != "none":
        predictor.set_tta(tta)
    index = {name: i for i, name in enumerate(predictor.sign_names)}
    samples = read_train_csv(data_dir)
    skipped = [(str(s.path), f"sign {s.sign!r} is not among the model's signs") for s in samples if s.sign not in index]
    logits: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[int] = []
    pending: list[tuple[np.ndarray, int, int]] = []

    def flush() -> None:
        if pending:
            logits.append(predictor.logits_batch([raw for raw, _, _ in pending]))
            labels.extend(label for _, label, _ in pending)
            ids.extend(sid for _, _, sid in pending)
            pending.clear()

    for sample in samples:
        if sample.sign not in index:
            continue
        try:
            pending.append((read_landmarks(sample.path), index[sample.sign], sample.sequence_id))
        except DataError as exc:
            skipped.append((str(sample.path), exc.reason))
        if len(pending) >= CHUNK:
            flush()
    flush()
    if not labels:
        raise ConfigError(f"{data_dir}: no sequence of the model's {len(index)} signs could be scored")
    all_logits = np.concatenate(logits).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64)
    metrics = {"split": f"all of {data_dir}", "checkpoint": Path(model).name,
               "framework": predictor.cfg.train.framework, "model": predictor.cfg.model.name, "tta": tta,
               **classification_metrics(all_logits, y), "skipped": len(skipped)}
    out = Path(out_dir) if out_dir else default_out(model)
    out.mkdir(parents=True, exist_ok=True)
    outputs = _write_outputs(out, metrics, all_logits, y, list(predictor.sign_names))
    return Evaluation(metrics, all_logits, y, np.asarray(ids, dtype=np.int64), outputs, skipped)
