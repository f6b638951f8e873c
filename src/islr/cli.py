"""The ``islr`` command line: one verb per job, each in its own module under ``islr.commands``.

Each command module defines ``configure(parser)`` and ``run(args) -> int`` and imports heavy
dependencies (frameworks, MediaPipe) only inside ``run``, so ``islr --help`` stays fast.
Errors derived from :class:`islr.errors.IslrError` print as one line (no traceback unless
``--debug``) and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from islr.errors import IslrError

#: verb -> module under islr.commands (add a line here for a new verb)
COMMANDS: dict[str, str] = {
    "validate": "validate",
    "clean": "clean",
    "preprocess": "preprocess",
    "synth": "synth",
    "plot": "plot",
    "models": "models",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "export": "export",
    "extract": "extract",
    "live": "live",
    "demo": "demo",
    "cv": "cv",
    "tune": "tune",
    "report": "report",
    "compare": "compare",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one sub-parser per verb)."""
    parser = argparse.ArgumentParser(prog="islr", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb, module_name in COMMANDS.items():
        module = importlib.import_module(f"islr.commands.{module_name}")
        doc = (module.__doc__ or "").strip().splitlines()
        child = sub.add_parser(verb, help=doc[0] if doc else None, description=module.__doc__)
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.configure(child)
        child.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``islr`` script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra if getattr(args, "_accepts_overrides", False) else []
    try:
        return int(args._run(args) or 0)
    except IslrError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
