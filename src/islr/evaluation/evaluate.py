"""Evaluate a trained run: accuracy, top-5, macro F1, per-sign accuracy and a confusion matrix.

``evaluate_run(run_dir)`` scores the run's own held-out split (rebuilt from its config and
checked against ``split.json``); with ``data_dir`` and ``split="all"`` it scores every sequence of
another dataset in Kaggle layout (e.g. unseen signers) with the run's preprocessing and sign map.
The three output files are written all or none (see :func:`write_all`).
"""

from __future__ import annotations

import csv
import io
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from islr.data.tta import check_tta
from islr.errors import ConfigError
from islr.fileio import atomic_path
from islr.metrics import classification_metrics, confusion_matrix
from islr.run_dir import RunDir

SPLITS = ("test", "valid", "train", "all")


@dataclass
class Evaluation:
    """Metrics and where the files went."""

    metrics: dict[str, Any]
    logits: np.ndarray
    labels: np.ndarray
    sequence_ids: np.ndarray
    outputs: dict[str, Path]
    skipped: list[tuple[str, str]]
    plain_logits: np.ndarray | None = None
    """With TTA: the logits of the plain pass alone (``logits`` holds the TTA mean)."""


def _whole_store(store: Any, cfg: Any, sign_map: dict[str, int]) -> Any:
    """Every sequence of a cache store as one dataset, labelled with the run's sign map."""
    from islr.data.dataset import LandmarkDataset

    labels = np.array([sign_map[s] for s in store.signs], dtype=np.int64)
    names = [n for n, _ in sorted(sign_map.items(), key=lambda kv: kv[1])]
    return LandmarkDataset(store, labels, cfg.preprocess, store.participant_ids, store.sequence_ids, names)


def _dataset_for(run: RunDir, cfg: Any, sign_map: dict[str, int], data_dir: str | None, split: str) -> tuple[Any, str, list]:
    from islr.data.cache import build_cache
    from islr.data.datamodule import build_datasets
    from islr.data.kaggle import read_train_csv

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {SPLITS}")
    if data_dir and split == "all":
        samples = read_train_csv(data_dir)
        skipped = [(str(s.path), f"sign {s.sign!r} is not in the run's sign map") for s in samples if s.sign not in sign_map]
        known = [s for s in samples if s.sign in sign_map]
        # The store over every row (the one `islr preprocess` builds), then the known signs' rows.
        whole = build_cache(samples, cfg.preprocess, cfg.data.cache_dir, workers=cfg.data.workers, progress=False)
        store = whole if len(known) == len(samples) else whole.restrict(known)
        return _whole_store(store, cfg, sign_map), f"all of {data_dir}", skipped + list(store.errors)
    if data_dir:
        cfg.data.data_dir = str(data_dir)
    datasets = build_datasets(cfg, progress=False)
    if datasets.sign_map != sign_map:
        raise ConfigError(f"{cfg.data.data_dir}: its sign map differs from the run's; use --split all")
    if split == "all":
        return _whole_store(datasets.store, cfg, sign_map), "all", list(datasets.errors)
    ds = getattr(datasets, split).subset(np.arange(len(getattr(datasets, split))), augmenter=None)
    recorded = (run.path / "split.json")
    if recorded.exists():
        expected = run.read_json("split.json")[split]["sequence_ids"]
        if sorted(expected) != sorted(int(s) for s in ds.sequence_ids):
            raise ConfigError(f"{run.path}: the rebuilt {split} split differs from split.json (data changed?)")
    return ds, f"{split} ({datasets.split})", list(datasets.errors)


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, split: str = "test",
                 checkpoint: str = "best", out_dir: str | Path | None = None, tta: str = "none") -> Evaluation:
    """Score a run and write ``metrics.json``, ``per_sign_accuracy.csv`` and ``confusion_matrix.png``.

    ``tta="mirror"`` scores the mean logits of each sequence and its mirror (:mod:`islr.data.tta`).
    """
    from islr.data.dataset import BatchLoader
    from islr.inference.ensemble import open_run

    run = RunDir(run_dir)
    predictor = open_run(run_dir, checkpoint)
    cfg, sign_map = predictor.cfg, predictor.sign_map
    dataset, described, skipped = _dataset_for(run, cfg, sign_map, data_dir, split)
    if len(dataset) == 0:
        raise ConfigError(f"{run.path}: the {described} split is empty")
    loader = BatchLoader(dataset, cfg.train.batch_size, shuffle=False)
    logits = predictor.backend.predict_logits(loader)
    plain = None
    if check_tta(tta) == "mirror":
        plain = logits
        mirrored = BatchLoader(dataset.mirror_view(), cfg.train.batch_size, shuffle=False)
        logits = (plain + predictor.backend.predict_logits(mirrored)) / 2
    labels = dataset.labels
    metrics: dict[str, Any] = {"split": described, "checkpoint": checkpoint, "framework": cfg.train.framework,
                               "model": cfg.model.name, "tta": tta, **classification_metrics(logits, labels)}
    metrics["skipped"] = len(skipped)
    out = Path(out_dir) if out_dir else run.path
    out.mkdir(parents=True, exist_ok=True)
    outputs = _write_outputs(out, metrics, logits, labels, predictor.sign_names)
    return Evaluation(metrics, logits, labels, dataset.sequence_ids, outputs, skipped, plain)


def write_all(files: dict[Path, bytes]) -> None:
    """Write several files so that a failure leaves every one of them as it was.

    Each goes to a temporary file first; only when all are written and flushed are they renamed
    over their targets. A full disk raises :class:`~islr.errors.WriteError` naming the file that
    failed, and every temporary file is removed.
    """
    with ExitStack() as stack:
        for target, data in files.items():
            # Exits run last-in first-out: the failing file's context names it, the others
            # only delete their temporary files.
            stack.enter_context(atomic_path(target)).write_bytes(data)


def _write_outputs(out: Path, metrics: dict[str, Any], logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Path]:
    import json

    from islr.evaluation.confusion import confusion_png, sign_rows

    predictions = logits.argmax(-1)
    cm = confusion_matrix(labels, predictions, len(names))
    rows = sign_rows(cm, names)
    paths = {"metrics": out / "metrics.json", "per_sign": out / "per_sign_accuracy.csv", "confusion": out / "confusion_matrix.png"}
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    # The first three columns are the original format; the rest were added for many-sign runs.
    writer.writerow(["sign", "accuracy", "support", "precision", "f1", "most_confused_with", "most_confused_count"])
    order = sorted((r for r in rows if r.support), key=lambda r: r.recall)
    writer.writerows([r.sign, f"{r.recall:.4f}", r.support, "" if np.isnan(r.precision) else f"{r.precision:.4f}",
                      f"{r.f1:.4f}", r.confused_with, r.confused_count] for r in order)
    png = confusion_png(cm, names)
    write_all({paths["metrics"]: json.dumps(metrics, indent=2).encode(), paths["per_sign"]: text.getvalue().encode(),
               paths["confusion"]: png})
    return paths
