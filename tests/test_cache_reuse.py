"""One store per preprocessing and dataset: `islr preprocess`, then training with exclusions or
with data.signs, builds the cache once (the README's workflow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import islr.data.cache as cache_module
from islr.cli import main
from islr.data.kaggle import read_train_csv

MODEL = ["--model.params.d_model", "16", "--model.params.num_heads", "2", "--model.params.dim_feedforward", "32",
         "--model.params.num_layers", "1"]


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """Counts real store builds (opening an existing store is not one)."""
    count: list[int] = []
    real = cache_module._build

    def counting(samples, *args, **kwargs):
        count.append(len(samples))
        return real(samples, *args, **kwargs)

    monkeypatch.setattr(cache_module, "_build", counting)
    return count


@pytest.fixture
def data(tmp_path):
    from islr.data.synthetic import generate

    generate(tmp_path / "data", signs=3, participants=4, per_sign=2, seed=1, min_frames=8, max_frames=14)
    return tmp_path / "data"


def train_args(data, tmp_path, run: str, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"), "--model", "transformer",
            "--epochs", "1", "--run-dir", str(tmp_path / run), "--no-progress", "--data.workers", "1",
            "--train.tensorboard", "false", "--data.valid_size", "0.25", "--data.test_size", "0.25",
            *MODEL, *extra]


def test_preprocess_then_train_with_exclusions_and_signs_builds_once(data, tmp_path, builds, capsys):
    rows = read_train_csv(data)
    excluded = [rows[0].sequence_id, rows[5].sequence_id, rows[9].sequence_id]
    exclusions = tmp_path / "exclusions.csv"
    pd.DataFrame({"sequence_id": excluded, "reason": "test"}).to_csv(exclusions, index=False)

    assert main(["preprocess", str(data), "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
                 "--no-progress", "--data.exclusions", str(exclusions)]) == 0
    assert f"sequences: {len(rows) - 3}" in capsys.readouterr().out
    assert builds == [len(rows)]  # built over every row of train.csv

    assert main(train_args(data, tmp_path, "excl", "--data.exclusions", str(exclusions))) == 0
    split = json.loads((tmp_path / "excl" / "split.json").read_text())
    used = {i for part in split.values() if isinstance(part, dict) for i in part.get("sequence_ids", [])}
    assert len(used) == len(rows) - 3 and not used & set(excluded)

    sign_names = sorted({r.sign for r in rows})[:2][::-1]
    assert main(train_args(data, tmp_path, "signs", "--data.signs", ",".join(sign_names))) == 0
    assert json.loads((tmp_path / "signs" / "sign_map.json").read_text()) == {s: i for i, s in enumerate(sign_names)}
    split = json.loads((tmp_path / "signs" / "split.json").read_text())
    used = {i for part in split.values() if isinstance(part, dict) for i in part.get("sequence_ids", [])}
    assert used == {r.sequence_id for r in rows if r.sign in sign_names}

    assert builds == [len(rows)]  # neither training run built anything
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_restricted_view_shares_the_data(data, tmp_path):
    from islr.config import PreprocessConfig
    from islr.data.cache import build_cache

    rows = read_train_csv(data)
    whole = build_cache(rows, PreprocessConfig(), tmp_path / "cache", workers=1, progress=False)
    chosen = [rows[7], rows[2]]
    view = whole.restrict(chosen)
    assert list(view.sequence_ids) == [rows[2].sequence_id, rows[7].sequence_id]  # store order
    np.testing.assert_array_equal(view[1], whole[7])
    assert view.signs == [rows[2].sign, rows[7].sign] and len(whole) == len(rows)
