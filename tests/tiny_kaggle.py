"""Tiny Kaggle-layout folders for the data tests (written with the real schema, in tmp_path)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from islr.data.kaggle import write_landmarks
from islr.data.landmarks import LEFT_HAND, RIGHT_HAND, ROWS_PER_FRAME

SIGNS = ("hello", "bye", "apple")


def sequence(frames: int, seed: int = 0, no_hand: tuple[int, ...] = (), all_nan: bool = False) -> np.ndarray:
    """``(frames, 543, 3)`` landmarks in [0, 1]; the left hand is missing throughout (as usual),
    the right hand is present except in the frames listed in ``no_hand``."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.2, 0.8, size=(frames, ROWS_PER_FRAME, 3))
    data[:, LEFT_HAND] = np.nan
    if no_hand:
        data[np.asarray(no_hand)[:, None], RIGHT_HAND] = np.nan
    if all_nan:
        data[:] = np.nan
    return data


def write_dataset(root: Path, rows: list[tuple[int, int, str, np.ndarray | None]],
                  signs: tuple[str, ...] = SIGNS) -> Path:
    """Write train.csv, the sign map and one parquet per ``(participant, sequence, sign, data)``
    row (``data`` None: listed in train.csv but no file)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sign_to_prediction_index_map.json").write_text(json.dumps({s: i for i, s in enumerate(signs)}))
    listed = []
    for pid, sid, sign, data in rows:
        rel = f"train_landmark_files/{pid}/{sid}.parquet"
        if data is not None:
            write_landmarks(root / rel, data)
        listed.append((rel, pid, sid, sign))
    pd.DataFrame(listed, columns=["path", "participant_id", "sequence_id", "sign"]).to_csv(
        root / "train.csv", index=False
    )
    return root


def good_dataset(root: Path) -> Path:
    """Four usable 12-frame sequences of three signs by two participants."""
    return write_dataset(root, [
        (1, 101, "hello", sequence(12, 1)),
        (1, 102, "bye", sequence(12, 2)),
        (2, 201, "hello", sequence(12, 3)),
        (2, 202, "apple", sequence(12, 4)),
    ])


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (to prove nothing was written or changed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }
