"""Show the resolved config and what every key means: ``islr config show|keys|list``.

``islr config show [--config F] [--section.key VALUE ...]`` prints the resolved config as YAML
with each key's docstring as a comment (the text loads back with ``--config``).
``islr config keys [PREFIX]`` lists every dotted key with its type, default, allowed values and
docstring. ``islr config list`` names the configs shipped inside the package (``--config NAME``).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="the resolved config as commented YAML",
                          description="Print the resolved config (defaults <- --config <- dotted overrides) "
                                      "as YAML, each key preceded by its docstring.")
    show.add_argument("--config", help="experiment YAML file, or a shipped config by name")
    show.add_argument("--out", help="also write the YAML to this file")
    show.set_defaults(_accepts_overrides=True)
    keys = sub.add_parser("keys", help="every dotted key with type, default and docstring")
    keys.add_argument("prefix", nargs="?", default="", help="only keys starting with this (e.g. train.)")
    sub.add_parser("list", help="names of the configs shipped inside the package")


def run(args: argparse.Namespace) -> int:
    from islr.config_docs import commented_yaml, config_keys, keys_text

    if args.action == "show":
        from islr.commands.train import overrides_from_extra
        from islr.config import load_config

        text = commented_yaml(load_config(args.config, overrides_from_extra(args.overrides)))
        if args.out:
            from islr.fileio import atomic_write_text

            atomic_write_text(args.out, text)
        print(text, end="")
        return 0
    if args.action == "keys":
        from islr.errors import ConfigError

        keys = [k for k in config_keys() if k.key.startswith(args.prefix)]
        if not keys:
            raise ConfigError(f"no config key starts with {args.prefix!r}")
        print(keys_text(keys), end="")
        return 0
    from islr.config import configs_dir, shipped_configs

    print(f"shipped configs in {configs_dir()} (use --config NAME):")
    for name in shipped_configs():
        print(f"  {name}")
    return 0
