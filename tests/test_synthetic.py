"""The synthetic dataset: exact Kaggle layout, determinism, variety, learnable across signers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from islr.config import PreprocessConfig
from islr.data.kaggle import read_landmarks, read_sign_map, read_train_csv
from islr.data.landmarks import LEFT_HAND, RIGHT_HAND
from islr.data.preprocess import preprocess
from islr.data.synthetic import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    info = generate(out, signs=6, participants=5, per_sign=3, seed=11, min_frames=8, max_frames=40)
    return out, info


def test_layout_matches_kaggle(synth):
    out, info = synth
    frame = pd.read_csv(out / "train.csv")
    assert list(frame.columns) == ["path", "participant_id", "sequence_id", "sign"]
    assert len(frame) == info.files == 90 and frame["sequence_id"].is_unique
    assert frame["path"].str.match(r"train_landmark_files/\d+/\d+\.parquet").all()
    assert read_sign_map(out) == {f"sign{i:03d}": i for i in range(6)}
    import pyarrow.parquet as pq

    table = pq.read_table(out / frame["path"][0])
    assert table.column_names == ["frame", "row_id", "type", "landmark_index", "x", "y", "z"]
    lengths = []
    for s in read_train_csv(out):
        raw = read_landmarks(s.path)  # full layout check
        lengths.append(len(raw))
        assert np.isfinite(raw[:, :468]).all()  # the face is always there
    assert min(lengths) >= 8 and max(lengths) <= 40 and len(set(lengths)) > 5


def test_hands_go_missing_and_some_signers_are_left_handed(synth):
    out, info = synth
    assert info.left_handed
    samples = read_train_csv(out)
    missing_frames = 0
    lead = {}
    for s in samples:
        raw = read_landmarks(s.path)
        missing_frames += int(np.isnan(raw[:, RIGHT_HAND, 0]).all(1).sum())
        left = np.isfinite(raw[:, LEFT_HAND, 0]).all(1).sum()
        right = np.isfinite(raw[:, RIGHT_HAND, 0]).all(1).sum()
        lead.setdefault(s.participant_id, []).append(left > right)
    assert missing_frames > 0
    for pid, lefts in lead.items():
        assert (np.mean(lefts) > 0.5) == (pid in info.left_handed)


def test_deterministic_in_seed(tmp_path):
    a = generate(tmp_path / "a", signs=2, participants=2, per_sign=1, seed=3)
    b = generate(tmp_path / "b", signs=2, participants=2, per_sign=1, seed=3)
    c = generate(tmp_path / "c", signs=2, participants=2, per_sign=1, seed=4)
    assert (tmp_path / "a" / "train.csv").read_text() == (tmp_path / "b" / "train.csv").read_text()
    first = pd.read_csv(tmp_path / "a" / "train.csv")["path"][0]
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()
    assert a.participants == b.participants and a.participants != c.participants


def test_a_linear_model_recognises_unseen_signers(synth):
    out, _ = synth
    cfg = PreprocessConfig(landmarks="kaggle118", normalization="center_std", fixed_len=16)
    samples = read_train_csv(out)
    names = read_sign_map(out)
    x = np.stack([preprocess(read_landmarks(s.path), cfg).ravel() for s in samples])
    y = np.array([names[s.sign] for s in samples])
    who = np.array([s.participant_id for s in samples])
    correct = 0
    for person in np.unique(who):
        train, test = who != person, who == person
        a = np.c_[x[train], np.ones(train.sum())]
        # ridge regression on one-hot targets, solved in its small dual form
        w = a.T @ np.linalg.solve(a @ a.T + np.eye(len(a)), np.eye(6)[y[train]])
        scores = np.c_[x[test], np.ones(test.sum())] @ w
        correct += int((scores.argmax(1) == y[test]).sum())
    assert correct / len(y) > 0.8


def test_synth_command(tmp_path, capsys):
    from islr.cli import main

    names_dir = tmp_path / "names"
    names_dir.mkdir()
    (names_dir / "sign_to_prediction_index_map.json").write_text(json.dumps({"tv": 1, "dog": 0, "cat": 2}))
    assert main(["synth", str(tmp_path / "d"), "--signs", "2", "--participants", "2", "--per-sign", "1",
                 "--sign-names-from", str(names_dir), "--workers", "1"]) == 0
    assert "wrote 4 files" in capsys.readouterr().out
    assert read_sign_map(tmp_path / "d") == {"dog": 0, "tv": 1}
    assert main(["synth", str(tmp_path / "e"), "--signs", "0"]) == 2
