"""List registered models: name, framework and trainable parameters of the shipped config."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--framework", help="torch or tensorflow (default: both)")
    parser.add_argument("--input-dim", type=int, help="features per frame (default: from the model's YAML preprocessing)")
    parser.add_argument("--classes", type=int, default=250)
    parser.add_argument("--no-count", action="store_true", help="skip building models to count parameters")


def run(args: argparse.Namespace) -> int:
    from islr.config import load_config
    from islr.data.preprocess import feature_dim
    from islr.models.registry import FRAMEWORKS, list_models, model_config_path, normalize_framework
    from islr.models.summary import count_parameters

    frameworks = [normalize_framework(args.framework)] if args.framework else list(FRAMEWORKS)
    for framework in frameworks:
        for name in list_models(framework):
            path = model_config_path(name)
            dim = args.input_dim or feature_dim(load_config(path if path.exists() else None).preprocess)
            count = "" if args.no_count else f"{count_parameters(name, framework, dim, args.classes):>12,}"
            print(f"{name:<26}{framework:<12}{dim:>6} in {count}")
    return 0
