"""Progress bars only on a terminal: logs get no carriage-return frames."""

from __future__ import annotations

import io
import sys

from islr.progress import bars_enabled


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_need_a_terminal_and_the_users_consent():
    assert bars_enabled(True, _Tty())
    assert not bars_enabled(False, _Tty())
    assert not bars_enabled(True, io.StringIO())
    closed = io.StringIO()
    closed.close()  # isatty() raises ValueError
    assert not bars_enabled(True, closed)
    assert not bars_enabled(True, object())  # type: ignore[arg-type]


def test_cache_build_writes_no_bar_frames_when_stderr_is_a_file(tmp_path, monkeypatch):
    from tests.tiny_kaggle import good_dataset

    from islr.config import PreprocessConfig
    from islr.data.cache import build_cache
    from islr.data.kaggle import read_train_csv

    samples = read_train_csv(good_dataset(tmp_path / "data"))
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    store = build_cache(samples, PreprocessConfig(), tmp_path / "cache", workers=1, progress=True)
    assert len(store) == 4 and "\r" not in log.getvalue() and "preprocess" not in log.getvalue()
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    build_cache(samples, PreprocessConfig(max_gap=2), tmp_path / "cache", workers=1, progress=True)
    assert "\r" in tty.getvalue() and "preprocess" in tty.getvalue()  # a terminal still gets the bar


def test_training_log_has_epoch_lines_but_no_bar(tmp_path, monkeypatch, capsys):
    from tests.conftest import tiny_config

    from islr.data.synthetic import generate
    from islr.training.pipeline import train

    generate(tmp_path / "d", signs=2, participants=3, per_sign=2, seed=0, min_frames=8, max_frames=12)
    cfg = tiny_config(tmp_path / "d", tmp_path / "cache", **{"train.progress": True, "train.epochs": 1})
    train(cfg, tmp_path / "run")
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.out and "\r" not in captured.err + captured.out
