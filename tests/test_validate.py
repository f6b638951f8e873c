"""validate_dataset and ``islr validate``: real files all valid, counts, report, parallel = serial."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from islr.cli import main
from islr.data.kaggle import parquet_frame_count, write_landmarks
from islr.data.validate import (
    REPORT_COLUMNS,
    FileInfo,
    inspect_file,
    longest_run,
    map_files,
    validate_dataset,
)
from islr.errors import DataError
from tiny_kaggle import checksums, good_dataset, sequence, write_dataset


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], 0), ([0, 0], 0), ([1], 1), ([1, 1, 0, 1, 1, 1, 0], 3), ([0, 1, 1, 1, 1], 4), ([1, 0, 1], 1)],
)
def test_longest_run(flags, expected):
    assert longest_run(np.array(flags, dtype=bool)) == expected


def test_inspect_file_counts_frames_without_hands(tmp_path):
    path = tmp_path / "1.parquet"
    write_landmarks(path, sequence(10, no_hand=(0, 4, 5, 6, 9)))
    info = inspect_file(path)
    assert info == FileInfo(frames=10, no_hand_frames=5, max_no_hand_run=3, all_nan=False, error=None)
    assert info.problem is None
    assert inspect_file(tmp_path / "missing.parquet").error == "file not found"


def test_map_files_keeps_order_serial_and_parallel():
    items = list(range(40))
    assert map_files(abs, [-i for i in items], workers=1, progress=False) == items
    assert map_files(abs, [-i for i in items], workers=2, progress=False) == items


def test_parallel_report_equals_serial(tmp_path):
    root = good_dataset(tmp_path / "data")
    serial = validate_dataset(root, workers=1, progress=False)
    parallel = validate_dataset(root, workers=2, progress=False)
    assert serial.rows == parallel.rows
    assert serial.summary() == "4 valid, 0 invalid" and serial.ok
    assert [r.frames for r in serial.rows] == [12, 12, 12, 12]


def test_report_table_and_several_reasons(tmp_path):
    root = write_dataset(tmp_path / "data", [
        (1, 101, "hello", sequence(9)),
        (2, 101, "zebra", None),  # duplicated id, unknown sign and no file: three reasons
    ])
    report = validate_dataset(root, workers=1, progress=False)
    table = report.to_frame()
    assert tuple(table.columns) == REPORT_COLUMNS
    assert table["status"].tolist() == ["valid", "invalid"]
    assert table["reason"].iloc[1] == (
        "duplicated sequence_id 101 (first on data row 1); unknown sign 'zebra' "
        "(not in sign_to_prediction_index_map.json); file not found"
    )
    assert table["frames"].iloc[0] == 9 and pd.isna(table["frames"].iloc[1])
    assert str(table["participant_id"].dtype) == "Int64"


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        validate_dataset(tmp_path / "nope")
    assert main(["validate", str(tmp_path / "nope"), "--report", str(tmp_path / "r.csv")]) == 2


def test_cli_refuses_to_write_inside_the_data_folder(tmp_path, capsys):
    root = good_dataset(tmp_path / "data")
    before = checksums(root)
    assert main(["validate", str(root), "--report", str(root / "report.csv")]) == 2
    assert "refusing to write the report inside the data folder" in capsys.readouterr().err
    assert checksums(root) == before


def test_cli_default_report_goes_to_the_current_folder(tmp_path, monkeypatch, capsys):
    root = good_dataset(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["validate", str(root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out == "4 valid, 0 invalid (report: validation_report.csv)\n"
    assert len(pd.read_csv(work / "validation_report.csv")) == 4


@pytest.mark.real
def test_real_dataset_is_all_valid(real_data_dir, tmp_path, capsys):
    report_path = tmp_path / "report.csv"
    code = main(["validate", str(real_data_dir), "--report", str(report_path), "--workers", "2"])
    assert code == 0
    assert capsys.readouterr().out == f"522 valid, 0 invalid (report: {report_path})\n"
    table = pd.read_csv(report_path)
    assert len(table) == 522 and set(table["status"]) == {"valid"}
    # Frame counts agree with the parquet footers.
    for rel, frames in table[["path", "frames"]].iloc[::50].itertuples(index=False):
        assert parquet_frame_count(real_data_dir / rel) == frames
    assert table["frames"].sum() == 10002
