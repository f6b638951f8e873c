"""Search hyperparameters with Optuna: ``islr tune --framework torch --model transformer --trials 20 --data-dir DIR``.

The search space is ``configs/search/<model>.yaml`` (or ``--space FILE``); every trial trains a
run under ``--out`` and is pruned when its validation metric lags. The study is kept in
``<out>/study.db`` (or ``--storage URL``, any SQLAlchemy URL): running the same command again
resumes it, ``--trials`` being the total number of finished trials wanted. The best trial is written
as ``<out>/best_config.yaml`` (train it with ``islr train --config``), with summary.json,
summary.html and PNG plots (optimisation history, parameter importances).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="dataset in Kaggle layout")
    parser.add_argument("--framework", help="torch or tensorflow (default torch)")
    parser.add_argument("--model", help="registered model name (default: the config's)")
    parser.add_argument("--config", help="base experiment YAML (file or shipped name) the searched parameters are applied to")
    parser.add_argument("--trials", type=int, default=20, help="total finished trials the study should hold (default 20)")
    parser.add_argument("--epochs", type=int, help="epochs per trial")
    parser.add_argument("--space", help="search space YAML (default configs/search/<model>.yaml)")
    parser.add_argument("--out", help="output folder (default runs/tune/<model>-<framework>)")
    parser.add_argument("--storage", help="SQLAlchemy URL or SQLite file (default <out>/study.db)")
    parser.add_argument("--study", help="study name (default <model>-<framework>)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel trial processes (default 1)")
    parser.add_argument("--pruner", default="median", choices=("median", "hyperband", "none"))
    parser.add_argument("--seed", type=int, help="seed of the sampler and of every trial's training")
    parser.add_argument("--cache-dir", help="where preprocessed stores are kept")
    parser.add_argument("--device", help="auto, cpu, cuda, mps")
    parser.set_defaults(_accepts_overrides=True, resume=None)


def run(args: argparse.Namespace) -> int:
    from islr.commands.train import resolve_config
    from islr.config import to_dict
    from islr.errors import ConfigError
    from islr.tuning.search import (
        TuneSettings,
        default_storage,
        run_search,
        search_space_path,
        storage_url,
    )
    from islr.tuning.summary import write_summary

    cfg = resolve_config(args)
    if args.trials < 0 or args.jobs < 1:
        raise ConfigError("--trials must be >= 0 and --jobs >= 1")
    name = f"{cfg.model.name}-{cfg.train.framework}"
    out = args.out or f"runs/tune/{name}"
    settings = TuneSettings(
        base_config=to_dict(cfg),
        space_path=str(args.space or search_space_path(cfg.model.name)),
        storage=storage_url(args.storage) if args.storage else default_storage(out),
        study_name=args.study or name,
        out=out,
        trials=args.trials,
        pruner=args.pruner,
        seed=cfg.train.seed,
    )
    print(f"search space: {settings.space_path}")
    study = run_search(settings, jobs=args.jobs)
    paths = write_summary(study, out)
    best = study.best_trial if "best_config" in paths else None
    if best is not None:
        print(f"best trial {best.number}: {cfg.train.monitor} {best.value:.4f}  params {best.params}")
        print(f"train it: islr train --config {paths['best_config']}")
    else:
        print("no complete trial yet")
    print(f"summary: {paths['html']}")
    return 0
