"""Length statistics, the seed's exclusion rules and ``islr clean`` (which never touches raw files)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from islr.cli import main
from islr.data.cleaning import (
    EXCLUSION_COLUMNS,
    exclusion_flags,
    exclusion_reasons,
    find_exclusions,
    inspect_dataset,
    length_stats,
    read_exclusions,
    write_exclusions,
)
from islr.data.kaggle import parquet_frame_count, read_train_csv
from islr.errors import DataError
from tiny_kaggle import checksums, sequence, write_dataset


def _table(rows):
    """An inspected table by hand: (sequence_id, sign, frames, max_no_hand_run, problem)."""
    return pd.DataFrame(
        [(f"f/{sid}.parquet", 1, sid, sign, frames, run, problem == "", problem)
         for sid, sign, frames, run, problem in rows],
        columns=["path", "participant_id", "sequence_id", "sign", "frames", "max_no_hand_run",
                 "readable", "problem"],
    )


def test_length_stats_by_hand():
    table = _table([(1, "a", 2, 0, ""), (2, "a", 4, 0, ""), (3, "a", 9, 0, ""), (4, "b", 7, 0, ""),
                    (5, "b", 0, 0, "missing file")])
    stats = length_stats(table).set_index("sign")
    assert stats.loc["a", ["count", "min", "max", "median"]].tolist() == [3, 2, 9, 4]
    assert stats.loc["a", "mean"] == pytest.approx(5.0)
    assert stats.loc["a", "std"] == pytest.approx(math.sqrt((9 + 1 + 16) / 3))  # population std
    # The missing file of sign b is not a zero-length sequence.
    assert stats.loc["b", ["count", "min", "max", "mean", "std"]].tolist() == [1, 7, 7, 7.0, 0.0]


def test_each_rule_by_hand():
    rows = [(i, "x", 10, 0, "") for i in range(6)]  # six ordinary sequences of sign x
    rows += [
        (10, "x", 40, 0, ""),  # long: mean 14.3 + 2 * std 10.5 = 35.3 < 40
        (11, "y", 30, 0, ""), (12, "y", 30, 0, ""), (13, "y", 30, 0, ""),
        (14, "y", 9, 0, ""),  # 9 < median 30 / 3, but not below min_frames
        (15, "z", 5, 0, ""),  # too short
        (16, "z", 12, 5, ""),  # 5 frames in a row without a hand
        (17, "z", 12, 4, ""),  # 4 is allowed
        (18, "z", 0, 0, "missing file"),
        (19, "z", 2, 9, ""),  # several reasons (z: median of 5, 12, 12, 2 is 8.5)
    ]
    table = _table(rows)
    stats = length_stats(table)
    reasons = exclusion_reasons(table, stats, min_frames=8, max_no_hand_run=4)
    got = dict(zip(table["sequence_id"], reasons, strict=True))
    assert {k for k, v in got.items() if v} == {10, 14, 15, 16, 18, 19}
    assert got[10] == "40 frames > mean+2*std of its sign (35.3)"
    assert got[14] == "9 frames < median/3 of its sign (10.0)"
    assert got[15] == "5 frames < min_frames 8"
    assert got[16] == "5 consecutive frames without a hand > 4"
    assert got[18] == "missing file"
    assert got[19] == ("2 frames < min_frames 8; 2 frames < median/3 of its sign (2.8); "
                       "9 consecutive frames without a hand > 4")
    flags = exclusion_flags(table, stats, 8, None)
    assert not flags["no_hand_run"].any()
    assert flags.sum().to_dict() == {"unusable": 1, "too_short": 2, "below_median_third": 2,
                                     "above_mean_2std": 1, "no_hand_run": 0}


def _messy_dataset(root):
    return write_dataset(root, [
        (1, 101, "hello", sequence(12, 1)),
        (1, 102, "hello", sequence(12, 2, no_hand=(3, 4, 5, 6, 7))),
        (2, 201, "hello", sequence(5, 3)),
        (2, 202, "bye", sequence(12, 4)),
        (2, 203, "bye", None),
    ])


def test_find_exclusions_on_files(tmp_path):
    root = _messy_dataset(tmp_path / "data")
    table = inspect_dataset(root, workers=1, progress=False)
    assert table["frames"].tolist() == [12, 12, 5, 12, 0]
    assert table["max_no_hand_run"].tolist() == [0, 5, 0, 0, 0]
    excluded = find_exclusions(root, workers=1, progress=False)
    assert tuple(excluded.columns) == EXCLUSION_COLUMNS
    assert excluded["sequence_id"].tolist() == [102, 201, 203]
    assert excluded["reason"].tolist() == [
        "5 consecutive frames without a hand > 4", "5 frames < min_frames 8", "missing file"]
    assert excluded["path"].iloc[2] == "train_landmark_files/2/203.parquet"
    loose = find_exclusions(root, min_frames=4, max_no_hand_run=None, table=table)
    assert loose["sequence_id"].tolist() == [203]


def test_exclusion_file_round_trip_and_errors(tmp_path):
    table = pd.DataFrame([("a", 1, 7, "x", "r1"), ("b", 1, 8, "y", "r2; r3")], columns=list(EXCLUSION_COLUMNS))
    path = write_exclusions(table, tmp_path / "sub" / "ex.csv")
    assert read_exclusions(path) == {7, 8}
    assert pd.read_csv(path)["reason"].tolist() == ["r1", "r2; r3"]
    write_exclusions(table.iloc[:0], tmp_path / "none.csv")
    assert read_exclusions(tmp_path / "none.csv") == set()
    (tmp_path / "bad.csv").write_text("path,sign\na,b\n")
    with pytest.raises(DataError, match="no 'sequence_id' column"):
        read_exclusions(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="exclusion file not found"):
        read_exclusions(tmp_path / "nope.csv")


def test_cli_clean_writes_reports_and_changes_nothing(tmp_path, capsys):
    root = _messy_dataset(tmp_path / "data")
    before = checksums(root)
    out = tmp_path / "out" / "exclusions.csv"
    assert main(["clean", str(root), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("3 of 5 sequences excluded, 2 kept")
    assert printed[1:] == [
        "       1  missing or unreadable file, all NaN, or no hand in any frame",
        "       1  fewer than 8 frames",
        "       0  shorter than a third of its sign's median length",
        "       0  longer than its sign's mean + 2 * std",
        "       1  more than 4 consecutive frames without a hand",
    ]
    assert read_exclusions(out) == {102, 201, 203}
    stats = pd.read_csv(tmp_path / "out" / "length_stats.csv")
    assert stats["sign"].tolist() == ["bye", "hello"]
    assert stats["count"].tolist() == [1, 3]
    assert checksums(root) == before
    # Outputs never go inside the data folder, whatever the user asks.
    assert main(["clean", str(root), "--out", str(root / "train.csv")]) == 2
    assert "refusing to write inside the data folder" in capsys.readouterr().err
    assert checksums(root) == before


@pytest.mark.real
def test_real_data_clean(real_data_dir, tmp_path, capsys):
    before = checksums(real_data_dir)
    out = tmp_path / "exclusions.csv"
    assert main(["clean", str(real_data_dir), "--out", str(out), "--workers", "2"]) == 0
    assert "sequences excluded" in capsys.readouterr().out
    assert checksums(real_data_dir) == before
    excluded = pd.read_csv(out)
    short = excluded["reason"].str.contains("< min_frames 8")
    # Cross-check the short rule with the parquet footers.
    frames = np.array([parquet_frame_count(s.path) for s in read_train_csv(real_data_dir)])
    assert short.sum() == (frames < 8).sum() > 0
    assert not excluded["reason"].str.contains("missing|unreadable").any()
    stats = pd.read_csv(tmp_path / "length_stats.csv").set_index("sign")
    assert stats["count"].sum() == 522 and stats.loc["hello", "count"] == 177
