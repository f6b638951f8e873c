"""Train a registered model: ``islr train --data-dir DIR --framework torch --model transformer``.

Settings come from, in increasing priority: defaults, ``--config F.yaml``, the flags below, and
dotted overrides such as ``--train.lr 3e-4 --model.params.num_layers 2``. ``--resume RUN_DIR``
continues a run from its last checkpoint with the run's own config.
Under ``torchrun --nproc_per_node=N -m islr train ...`` the torch backend uses DistributedDataParallel.
"""

from __future__ import annotations

import argparse

from islr.config import ExperimentConfig, load_config, merge, parse_override
from islr.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="dataset in Kaggle layout")
    parser.add_argument("--framework", help="torch or tensorflow (default torch)")
    parser.add_argument("--model", help="registered model name (see `islr models`)")
    parser.add_argument("--config", help="experiment YAML file, or a shipped config by name (kaggle-1st, models/lstm: `islr config list`)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--run-dir", help="output folder (default runs/<model>-<framework>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    parser.add_argument("--device", help="auto, cpu, cuda, mps")
    parser.add_argument("--cache-dir", help="where preprocessed stores are kept")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    parser.set_defaults(_accepts_overrides=True)


def overrides_from_extra(extra: list[str]) -> list[str]:
    """``["--train.lr", "3e-4", "--model.params.dim=64"]`` -> ``["train.lr=3e-4", "model.params.dim=64"]``."""
    out: list[str] = []
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or "." not in token.split("=")[0]:
            raise ConfigError(f"unexpected argument {token!r}; overrides look like --section.key VALUE")
        if "=" in token:
            out.append(token[2:])
            i += 1
        else:
            if i + 1 >= len(extra):
                raise ConfigError(f"override {token} needs a value")
            out.append(f"{token[2:]}={extra[i + 1]}")
            i += 2
    return out


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """Build the experiment config from --config, the flags and the dotted overrides."""
    flags: dict = {}
    mapping = {
        ("data", "data_dir"): args.data_dir, ("data", "cache_dir"): getattr(args, "cache_dir", None),
        ("train", "framework"): args.framework, ("model", "name"): args.model,
        ("train", "epochs"): args.epochs, ("train", "batch_size"): getattr(args, "batch_size", None),
        ("train", "lr"): getattr(args, "lr", None), ("train", "device"): getattr(args, "device", None),
        ("train", "seed"): getattr(args, "seed", None),
    }
    for (section, key), value in mapping.items():
        if value is not None:
            flags = merge(flags, {section: {key: value}})
    if getattr(args, "no_progress", False):
        flags = merge(flags, {"train": {"progress": False}})
    overrides = overrides_from_extra(getattr(args, "overrides", []))
    if args.resume:
        from islr.run_dir import RunDir

        base = RunDir(args.resume).config_path
        if not base.exists():
            raise ConfigError(f"{args.resume}: not a run directory (no config.yaml)")
        return load_config(base, overrides, flags)
    base = args.config
    if base is None and args.model:
        # Without --config, a model's shipped YAML is the base (it may name the inputs it was built for).
        from islr.models.registry import model_config_path

        shipped = model_config_path(args.model)
        base = shipped if shipped.exists() else None
    cfg = load_config(base, overrides, flags)
    # Switching model by flag must not keep the parameters of another model from the config file.
    if args.model and args.config:
        file_model = load_config(args.config).model.name
        if file_model != args.model:
            cfg.model.params = {}
            for text in overrides:
                if text.startswith("model.params."):
                    cfg.model.params = merge(cfg.model.params, parse_override(text)["model"]["params"])
    return cfg


def run(args: argparse.Namespace) -> int:
    from islr.training.pipeline import describe, train

    cfg = resolve_config(args)
    run_dir = args.resume or args.run_dir or f"runs/{cfg.model.name}-{cfg.train.framework}"
    result = train(cfg, run_dir, resume=bool(args.resume))
    if result.rank == 0:  # in distributed training (torchrun, TF_CONFIG) only the first process reports
        print(describe(result))
    return 0
