"""The CLI surface: every verb has help, errors are one line, `islr models` lists the registry."""

from __future__ import annotations

import pytest

from islr.cli import COMMANDS, main


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    assert "usage: islr" in capsys.readouterr().out


def test_models_lists_registry_with_parameter_counts(capsys):
    assert main(["models", "--framework", "torch"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = {line.split()[0] for line in lines}
    assert names == {"lstm", "transformer", "yet_another_transformer", "hybrid", "transformer_ensemble",
                     "hybrid_ensemble", "yet_another_ensemble", "cnn_transfer", "conv1d_transformer"}
    conv = next(line for line in lines if line.startswith("conv1d_transformer"))
    assert conv.split()[-1] == "1,830,040" and " 708 in" in conv


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    code = main(["train", "--data-dir", str(tmp_path / "missing"), "--model", "transformer", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_override_is_a_config_error(tmp_path, capsys):
    code = main(["train", "--data-dir", str(tmp_path), "--train.no_such_key", "1"])
    assert code == 2 and "unknown key" in capsys.readouterr().err


def _nested() -> list[list[str]]:
    """Every sub-command path below the verbs (``import pose``, ``config show``, ...)."""
    import argparse

    from islr.cli import build_parser

    paths = []
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for verb, parser in verbs.choices.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                paths += [[verb, name] for name in action.choices]
    return paths


@pytest.mark.parametrize("argv", [[], *([v] for v in sorted(COMMANDS)), *_nested()], ids=" ".join)
def test_help_is_plain_text_without_rst_markup(argv, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":class:" not in out and ":func:" not in out and "`" not in out


def test_rst_plain():
    from islr.rst import plain

    assert plain("run ``islr train`` see :class:`islr.errors.DataError` or :func:`~a.b` `islr models` "
                 "`docs <https://x.y>`_ e.g.::") == "run islr train see DataError or b islr models docs e.g.:"


def test_output_into_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    reader = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    done = subprocess.run([sys.executable, "-m", "islr", "config", "keys"], stdout=reader.stdin,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    reader.wait(timeout=60)
    assert "Traceback" not in done.stderr and done.returncode == 0
