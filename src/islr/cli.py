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
from islr.rst import plain

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
    "serve": "serve",
    "demo": "demo",
    "cv": "cv",
    "tune": "tune",
    "report": "report",
    "compare": "compare",
    "convert-checkpoint": "convert_checkpoint",
    "import": "import_cmd",
    "config": "config_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one sub-parser per verb)."""
    parser = argparse.ArgumentParser(prog="islr", description=plain(__doc__.splitlines()[0]))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb, module_name in COMMANDS.items():
        module = importlib.import_module(f"islr.commands.{module_name}")
        doc = plain(module.__doc__ or "").strip()
        child = sub.add_parser(verb, help=doc.splitlines()[0] if doc else None, description=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.configure(child)
        _plain_help(child)
        child.set_defaults(_run=module.run)
    return parser


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Strip RST markup from every help text of ``parser`` and its sub-parsers (``x`` -> x)."""
    parser.description = plain(parser.description) if parser.description else parser.description
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help) if isinstance(choice.help, str) else choice.help
            for child in action.choices.values():
                _plain_help(child)


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Pull dotted overrides (``--a.b VALUE`` / ``--a.b=VALUE``) out of ``argv``, wherever they are.

    No real flag has a dot in its name, so a dotted ``--name`` is always an override; taking them
    out before argparse runs keeps them from swallowing a positional (``islr preprocess
    --preprocess.landmarks kaggle118 DATA`` must not read ``kaggle118`` as the data folder).
    Returns ``(rest, overrides)`` with each override as one ``--a.b=VALUE`` token; ``--`` ends the scan.
    """
    rest: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest.extend(argv[i:])
            break
        name = token.split("=", 1)[0]
        if token.startswith("--") and "." in name and not _is_number(name[2:]):
            if "=" in token:
                overrides.append(token)
                i += 1
                continue
            if i + 1 >= len(argv):
                raise _OverrideSyntaxError(f"override {token} needs a value")
            overrides.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        rest.append(token)
        i += 1
    return rest, overrides


class _OverrideSyntaxError(ValueError):
    """A dotted override without its value (reported as argparse's usage error)."""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``islr`` script."""
    parser = build_parser()
    try:
        rest, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
    except _OverrideSyntaxError as exc:
        parser.error(str(exc))
    args = parser.parse_args(rest)
    if overrides and not getattr(args, "_accepts_overrides", False):
        parser.error(f"{args.command} takes no dotted overrides: {' '.join(overrides)}")
    args.overrides = overrides
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
    except BrokenPipeError:
        # `islr ... | head`: the reader left; stop quietly like other command-line tools.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
