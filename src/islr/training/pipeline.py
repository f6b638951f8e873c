"""Glue from a config to a trained run: datasets, loaders, backend, trainer (framework-free)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from islr.config import ExperimentConfig
from islr.errors import ConfigError


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    history: list[dict[str, Any]]
    test_metrics: dict[str, float]
    num_parameters: int
    rank: int = 0
    """This process's rank in distributed training (torchrun or TF_CONFIG); 0 otherwise."""


def make_loaders(cfg: ExperimentConfig, datasets: Any, shard: tuple[int, int] = (0, 1)) -> tuple[Any, Any, Any]:
    """Train (shuffled, augmented), valid and test loaders over the same numpy batches for every framework.

    ``shard = (rank, world)`` (distributed training): the training loader builds only this
    process's samples ``rank::world`` of each global batch, exactly as one process would build
    them. Validation is shared by the trainer (:meth:`islr.training.trainer.Trainer.validate`);
    the test set is scored by rank 0 alone.

    With ``train.num_workers`` > 0 the training batches are built in that many worker processes
    (:class:`islr.data.loader.ParallelBatchLoader`: the same batches, in the same order); the
    evaluation loaders (no augmentation) stay in the training process.
    """
    from islr.data.dataset import BatchLoader
    from islr.data.loader import make_loader

    t = cfg.train
    train = BatchLoader(datasets.train, t.batch_size, shuffle=True, seed=t.seed, sampling=cfg.data.sampling,
                        shard=shard)
    train = make_loader(train, t.num_workers)
    valid = BatchLoader(datasets.valid, t.batch_size, shuffle=False, seed=t.seed)
    test = BatchLoader(datasets.test, t.batch_size, shuffle=False, seed=t.seed)
    return train, valid, test


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    resume: bool = False,
    callbacks: tuple[Any, ...] = (),
    datasets: Any = None,
) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (``resume`` continues from its last checkpoint)."""
    from islr.backends import get_backend
    from islr.data.balance import check_class_weights, check_sampling, class_weights
    from islr.data.datamodule import build_datasets
    from islr.training.trainer import Trainer

    if not cfg.data.data_dir and datasets is None:
        raise ConfigError("no data: pass --data-dir DIR (a folder in Kaggle layout) or set data.data_dir")
    check_sampling(cfg.data.sampling)
    check_class_weights(cfg.train.class_weights)
    run_dir = Path(run_dir)
    if resume and not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{run_dir}: nothing to resume (no checkpoints/ folder)")
    datasets = datasets or build_datasets(cfg, progress=cfg.train.progress)
    # data.valid_size 0 (no folds) trains on every signer: fixed epochs, the last epoch is the model.
    no_validation = cfg.data.valid_size == 0 and cfg.data.folds <= 1
    if len(datasets.train) == 0 or (len(datasets.valid) == 0 and not no_validation):
        raise ConfigError(
            f"split {datasets.split!r} left {len(datasets.train)} training and {len(datasets.valid)} validation "
            "samples; need both (more participants, or data.split=random_stratified)"
        )
    backend = get_backend(cfg.train.framework)
    shard = (getattr(backend, "rank", 0), getattr(backend, "world_size", 1))
    train_loader, valid_loader, test_loader = make_loaders(cfg, datasets, shard)
    backend.setup(cfg, datasets.feature_dim, len(datasets.sign_map), len(train_loader))
    if getattr(backend, "rank", 0) == 0 and getattr(backend, "device_info", None):
        print(backend.device_info, file=sys.stderr, flush=True)  # the device auto chose, always said
    weights = class_weights(datasets.train.labels, len(datasets.sign_map), cfg.train.class_weights)
    if weights is not None:
        backend.set_class_weights(weights)
    trainer = Trainer(
        cfg, backend, train_loader, valid_loader, run_dir, datasets.sign_map,
        augmenter=datasets.train.augmenter, callbacks=callbacks, is_main_process=getattr(backend, "rank", 0) == 0,
    )
    if trainer.is_main:
        trainer.run.create()
        trainer.run.write_json("split.json", split_record(datasets))
    try:
        history = trainer.fit(resume=resume)
    finally:
        getattr(train_loader, "close", lambda: None)()  # stop the loader's worker processes
    test_metrics: dict[str, float] = {}
    if len(datasets.test) and trainer.is_main:
        # The test split is scored once, with the checkpoint the validation signers chose.
        if any((run_dir / "checkpoints").glob("best.*")):
            backend.load_checkpoint(run_dir / "checkpoints" / "best")
        test_metrics, _, _ = trainer.evaluate(test_loader)
        trainer.run.write_json("test_metrics.json", {"split": datasets.split, **test_metrics})
    # Distributed: every process waits here for the others, then leaves the process group
    # together (one leaving while another still talks can abort it at exit).
    getattr(backend, "finish", lambda: None)()
    return TrainResult(run_dir, history, test_metrics, backend.num_parameters(), getattr(backend, "rank", 0))


def split_record(datasets: Any) -> dict[str, Any]:
    """Which participants and sequences each part of the split holds (saved in the run)."""
    record: dict[str, Any] = {"split": datasets.split}
    for part in ("train", "valid", "test"):
        ds = getattr(datasets, part)
        record[part] = {
            "participants": sorted({int(p) for p in ds.participants}),
            "sequence_ids": [int(s) for s in ds.sequence_ids],
        }
    return record


def describe(result: TrainResult) -> str:
    """One short human summary of a finished run."""
    last = result.history[-1] if result.history else {}
    parts = [f"run: {result.run_dir}", f"params: {result.num_parameters:,}"]
    if last:
        shown = f" val_accuracy: {last['val_accuracy']:.4f}" if "val_accuracy" in last else " (no validation split)"
        parts.append(f"epochs: {len(result.history)}{shown}")
    if result.test_metrics:
        parts.append(f"test: {json.dumps({k: round(v, 4) for k, v in result.test_metrics.items()})}")
    return "\n".join(parts)
