"""Dotted overrides work anywhere on the command line, for every verb that takes them."""

from __future__ import annotations

import argparse

import pytest
from tests.tiny_kaggle import good_dataset

from islr.cli import main, split_overrides

OVERRIDE_VERBS = ("train", "preprocess", "cv", "tune")


def test_split_overrides_pulls_dotted_flags_from_anywhere():
    rest, overrides = split_overrides(
        ["preprocess", "--preprocess.landmarks", "kaggle118", "DATA", "--train.lr=3e-4", "--workers", "1",
         "--train.fold", "-1"])
    assert rest == ["preprocess", "DATA", "--workers", "1"]
    assert overrides == ["--preprocess.landmarks=kaggle118", "--train.lr=3e-4", "--train.fold=-1"]


def test_split_overrides_stops_at_double_dash_and_needs_a_value():
    assert split_overrides(["x", "--", "--a.b", "1"]) == (["x", "--", "--a.b", "1"], [])
    with pytest.raises(ValueError, match="needs a value"):
        split_overrides(["train", "--train.lr"])


def _captured(monkeypatch, verb: str) -> dict:
    """Replace the verb's run() so main() returns the parsed namespace instead of training."""
    import importlib

    seen: dict = {}
    module = importlib.import_module(f"islr.commands.{verb}")

    def fake_run(args: argparse.Namespace) -> int:
        seen["args"] = args
        return 0

    monkeypatch.setattr(module, "run", fake_run)
    return seen


@pytest.mark.parametrize("verb", OVERRIDE_VERBS)
@pytest.mark.parametrize("where", ("before", "after"))
def test_every_override_verb_reads_overrides_before_or_after_flags(verb, where, monkeypatch, tmp_path):
    from islr.commands.train import overrides_from_extra, resolve_config

    seen = _captured(monkeypatch, verb)
    dotted = ["--train.lr", "0.005", "--preprocess.landmarks", "kaggle118"]
    if verb == "preprocess":
        flags = [str(tmp_path)]
    else:
        flags = ["--data-dir", str(tmp_path), "--model", "lstm"]
    argv = [verb, *dotted, *flags] if where == "before" else [verb, *flags, *dotted]
    assert main(argv) == 0
    args = seen["args"]
    assert overrides_from_extra(args.overrides) == ["train.lr=0.005", "preprocess.landmarks=kaggle118"]
    if verb == "preprocess":
        assert args.data_dir == str(tmp_path)
    else:
        cfg = resolve_config(args)
        assert (cfg.train.lr, cfg.preprocess.landmarks, cfg.model.name) == (0.005, "kaggle118", "lstm")
        assert cfg.data.data_dir == str(tmp_path)


def test_preprocess_override_before_the_data_folder_runs(tmp_path, capsys):
    data = good_dataset(tmp_path / "data")
    code = main(["preprocess", "--preprocess.landmarks", "kaggle118", str(data), "--cache-dir",
                 str(tmp_path / "cache"), "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "landmarks=kaggle118" in out and "sequences: 4" in out


def test_verb_without_overrides_rejects_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", str(tmp_path), "--train.lr", "1"])
    assert info.value.code == 2 and "takes no dotted overrides" in capsys.readouterr().err
