"""The bad-input corpus: every broken file or table gets one clear error naming it and the reason,
``islr validate`` skips and reports it while counting the good ones, and nothing is modified."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from islr.cli import main
from islr.data.kaggle import read_landmarks, read_sign_map, read_train_csv, write_landmarks
from islr.data.validate import validate_dataset
from islr.errors import DataError
from tiny_kaggle import checksums, good_dataset, sequence

BAD = "train_landmark_files/3/301.parquet"
GOOD_COUNT = 4


def _add_listed(root: Path, sign: str = "hello", sequence_id: int = 301, path: str = BAD) -> None:
    table = pd.read_csv(root / "train.csv")
    table.loc[len(table)] = [path, 3, sequence_id, sign]
    table.to_csv(root / "train.csv", index=False)


def _bad_table(root: Path, change: Callable[[pa.Table], pa.Table], frames: int = 4) -> Path:
    """Write a good file at BAD, list it, then rewrite it through ``change``."""
    path = root / BAD
    write_landmarks(path, sequence(frames, 9))
    pq.write_table(change(pq.read_table(path)), path)
    _add_listed(root)
    return path


def _bad_bytes(root: Path, content: Callable[[bytes], bytes]) -> Path:
    path = root / BAD
    write_landmarks(path, sequence(4, 9))
    path.write_bytes(content(path.read_bytes()))
    _add_listed(root)
    return path


def _with_frames(table: pa.Table, numbers: list[int]) -> pa.Table:
    column = pa.array(np.repeat(np.array(numbers, dtype=np.int16), 543))
    return table.set_column(table.schema.get_field_index("frame"), "frame", column)


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _types_swapped(table: pa.Table) -> pa.Table:
    # Frame 0 with its pose block (33 rows) moved in front of its left-hand block (21 rows).
    order = np.arange(table.num_rows)
    order[468:501], order[501:522] = np.arange(489, 522), np.arange(468, 489)
    return table.take(pa.array(order))


def _landmark_index_reversed(table: pa.Table) -> pa.Table:
    index = table.column("landmark_index").to_numpy().copy()
    index[2 * 543: 2 * 543 + 468] = index[2 * 543: 2 * 543 + 468][::-1]
    return _replace(table, "landmark_index", pa.array(index))


def _write_text(root: Path, name: str, text: str) -> Path:
    (root / name).write_text(text)
    return root / name


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Path]  # breaks the folder, returns the broken file
    reason: str  # regex the one-line error must contain
    api: str  # what raises it: read (read_landmarks), train, signmap, or validate (a report row)


CASES = [
    Case("truncated parquet", lambda r: _bad_bytes(r, lambda b: b[: len(b) // 2]),
         r"not a readable parquet file", "read"),
    Case("text file", lambda r: _bad_bytes(r, lambda b: b"frame,x\n0,0.5\n"),
         r"not a readable parquet file", "read"),
    Case("empty file", lambda r: _bad_bytes(r, lambda b: b""), r"not a readable parquet file", "read"),
    Case("missing column", lambda r: _bad_table(r, lambda t: t.drop_columns(["landmark_index"])),
         r"missing columns \['landmark_index'\]", "read"),
    Case("x is text", lambda r: _bad_table(r, lambda t: _replace(t, "x", pc.cast(t["x"], pa.string()))),
         r"column 'x' has type string, expected a float", "read"),
    Case("frame is float", lambda r: _bad_table(r, lambda t: _replace(t, "frame", pc.cast(t["frame"], pa.float64()))),
         r"column 'frame' has type double, expected an integer", "read"),
    Case("542 rows in a frame", lambda r: _bad_table(r, lambda t: pa.concat_tables([t.slice(0, 553), t.slice(554)])),
         r"frame 1 has 542 rows, expected 543", "read"),
    Case("zero frames", lambda r: _bad_table(r, lambda t: t.slice(0, 0)), r"zero frames", "read"),
    Case("frames out of order", lambda r: _bad_table(r, lambda t: _with_frames(t, [0, 2, 1, 3])),
         r"frame numbers are not increasing \(frame 1 follows 2\)", "read"),
    Case("duplicated frame", lambda r: _bad_table(r, lambda t: _with_frames(t, [0, 1, 1, 2])),
         r"frame 1 appears twice", "read"),
    Case("types in wrong order", lambda r: _bad_table(r, _types_swapped),
         r"frame 0 row 468 has type 'pose', expected 'left_hand'", "read"),
    Case("unknown type", lambda r: _bad_table(
        r, lambda t: _replace(t, "type", pc.replace_substring(t["type"], "right_hand", "hand"))),
         r"unknown landmark types \['hand'\]", "read"),
    Case("landmark_index wrong", lambda r: _bad_table(r, _landmark_index_reversed),
         r"frame 2 row 0 \(face\) has landmark_index 467, expected 0", "read"),
    Case("null frame number", lambda r: _bad_table(
        r, lambda t: _replace(t, "frame", pa.array(np.where(np.arange(t.num_rows) == 7, None, 0).tolist(), pa.int16()))),
         r"column 'frame' has 1 missing values", "read"),
    Case("all NaN", lambda r: _all_nan(r), r"every landmark is NaN", "validate"),
    Case("no hand anywhere", lambda r: _no_hand(r), r"no hand detected in any frame", "validate"),
    Case("unknown sign", lambda r: _listed_good(r, sign="zebra"),
         r"unknown sign 'zebra' \(not in sign_to_prediction_index_map.json\)", "validate"),
    Case("listed but missing", lambda r: (_add_listed(r), r / BAD)[1], r"file not found", "validate"),
    Case("duplicated sequence_id", lambda r: _listed_good(r, sequence_id=102),
         r"duplicated sequence_id 102 \(first on data row 2\)", "validate"),
    Case("empty train.csv", lambda r: _write_text(r, "train.csv", ""), r"empty file", "train"),
    Case("header-only train.csv", lambda r: _write_text(r, "train.csv", "path,participant_id,sequence_id,sign\n"),
         r"header only, no rows", "train"),
    Case("train.csv missing a column", lambda r: _write_text(
        r, "train.csv", "path,participant_id,sequence_id\ntrain_landmark_files/1/101.parquet,1,101\n"),
         r"missing columns \['sign'\]", "train"),
    Case("train.csv text id", lambda r: _write_text(
        r, "train.csv", "path,participant_id,sequence_id,sign\ntrain_landmark_files/1/101.parquet,one,101,hello\n"),
         r"column 'participant_id' must hold integers; data row 1 has 'one'", "train"),
    Case("bad sign map JSON", lambda r: _write_text(r, "sign_to_prediction_index_map.json", '{"hello": 0,'),
         r"not valid JSON", "signmap"),
    Case("sign map indices with a gap", lambda r: _write_text(
        r, "sign_to_prediction_index_map.json", json.dumps({"hello": 0, "bye": 1, "apple": 3})),
         r"indices must be the integers 0..n-1, each once", "signmap"),
    Case("sign map missing", lambda r: _unlink(r / "sign_to_prediction_index_map.json"),
         r"sign map not found", "signmap"),
]


def _all_nan(root: Path) -> Path:
    write_landmarks(root / BAD, sequence(5, 9, all_nan=True))
    _add_listed(root)
    return root / BAD


def _no_hand(root: Path) -> Path:
    write_landmarks(root / BAD, sequence(5, 9, no_hand=tuple(range(5))))
    _add_listed(root)
    return root / BAD


def _listed_good(root: Path, sign: str = "hello", sequence_id: int = 301) -> Path:
    write_landmarks(root / BAD, sequence(12, 9))
    _add_listed(root, sign=sign, sequence_id=sequence_id)
    return root / BAD


def _unlink(path: Path) -> Path:
    path.unlink()
    return path


def test_corpus_is_big_enough():
    assert len(CASES) >= 15 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_error(tmp_path, case):
    root = good_dataset(tmp_path / "data")
    broken = case.build(root)
    if case.api == "read":
        with pytest.raises(DataError, match=case.reason) as info:
            read_landmarks(broken)
        assert info.value.path == str(broken)
        assert str(info.value).startswith(str(broken))
        assert "\n" not in str(info.value)
    elif case.api == "train":
        with pytest.raises(DataError, match=case.reason) as info:
            read_train_csv(root)
        assert info.value.path == str(root / "train.csv")
    elif case.api == "signmap":
        with pytest.raises(DataError, match=case.reason) as info:
            read_sign_map(root)
        assert info.value.path == str(root / "sign_to_prediction_index_map.json")
    # However it fails, validation keeps the good rows and reports exactly one invalid row.
    report = validate_dataset(root, workers=1, progress=False)
    assert (report.n_valid, report.n_invalid) == (GOOD_COUNT, 1)
    (row,) = report.invalid
    assert row.path == str(broken.relative_to(root))
    assert re.search(case.reason, row.reason), row.reason


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_validate_skips_reports_and_changes_nothing(tmp_path, capsys, case):
    root = good_dataset(tmp_path / "data")
    broken = case.build(root)
    before = checksums(root)
    report = tmp_path / "out" / "report.csv"
    code = main(["validate", str(root), "--report", str(report), "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [f"{GOOD_COUNT} valid, 1 invalid (report: {report})"]
    relative = str(broken.relative_to(root))
    (line,) = [x for x in err.splitlines() if x.startswith("invalid:")]
    assert line.startswith(f"invalid: {relative}: ") and re.search(case.reason, line)
    table = pd.read_csv(report)
    assert (table["status"] == "valid").sum() == GOOD_COUNT
    bad = table[table["status"] == "invalid"]
    assert bad["path"].tolist() == [relative]
    assert checksums(root) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.api in ("read", "validate")],
                         ids=[c.name for c in CASES if c.api in ("read", "validate")])
def test_cli_clean_excludes_bad_rows_and_changes_nothing(tmp_path, capsys, case):
    root = good_dataset(tmp_path / "data")
    broken = case.build(root)
    before = checksums(root)
    out_csv = tmp_path / "out" / "exclusions.csv"
    code = main(["clean", str(root), "--out", str(out_csv), "--workers", "1"])
    capsys.readouterr()
    assert code == 0
    excluded = pd.read_csv(out_csv)
    if case.name in ("unknown sign", "duplicated sequence_id"):
        # Cleaning judges the files; table problems are validation's business.
        assert excluded.empty
    else:
        assert excluded["path"].tolist() == [str(broken.relative_to(root))]
        if case.name != "listed but missing":
            assert re.search(case.reason, excluded["reason"].iloc[0])
    assert checksums(root) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.api == "train"],
                         ids=[c.name for c in CASES if c.api == "train"])
def test_cli_clean_without_a_usable_train_csv_fails_in_one_line(tmp_path, capsys, case):
    root = good_dataset(tmp_path / "data")
    case.build(root)
    code = main(["clean", str(root), "--out", str(tmp_path / "exclusions.csv"), "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and re.search(case.reason, err) and "train.csv" in err
    assert not (tmp_path / "exclusions.csv").exists()
