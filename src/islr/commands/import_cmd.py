"""Import landmarks recorded by other tools into a Kaggle-layout dataset: ``islr import SOURCE ...``.

One sub-command per source format, each in its own module under ``islr.commands`` (add a line to
:data:`SOURCES` for a new one). Every source writes the exact Kaggle layout that ``islr validate``
checks, into a new dataset or an existing one (train.csv and the sign map are extended).
"""

from __future__ import annotations

import argparse
import importlib

#: sub-command -> module under islr.commands defining configure(parser) and run(args)
SOURCES: dict[str, str] = {
    "mpdata": "import_mpdata",
    "pose": "import_pose",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per source format."""
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, module_name in SOURCES.items():
        module = importlib.import_module(f"islr.commands.{module_name}")
        doc = (module.__doc__ or "").strip().splitlines()
        child = sub.add_parser(name, help=doc[0] if doc else None, description=module.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.configure(child)


def run(args: argparse.Namespace) -> int:
    """Run the chosen source's importer."""
    return importlib.import_module(f"islr.commands.{SOURCES[args.source]}").run(args)
