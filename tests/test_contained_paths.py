"""train.csv is not trusted: a row whose path leaves the data folder, or whose id is not an integer,
is refused by line and sequence id and its file is never opened, in every reader; the other rows
are kept. Symlinks the user made inside the folder keep working."""

from __future__ import annotations

import builtins
import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from islr.cli import main
from islr.config import ExperimentConfig, PreprocessConfig
from islr.data.cache import build_cache
from islr.data.cleaning import inspect_dataset
from islr.data.datamodule import build_datasets
from islr.data.kaggle import (
    SkippedRowsWarning,
    contained_relative_path,
    read_landmarks,
    read_train_csv,
    read_train_table,
    write_landmarks,
)
from islr.data.synthetic import generate
from islr.data.validate import validate_dataset
from islr.errors import DataError
from islr.viz.plots import sequence_table
from tiny_kaggle import checksums, good_dataset, sequence

ESCAPES = "path escapes the data folder"
SECRET = 0.123  # every coordinate of the readable parquet file outside the data folder
CFG = PreprocessConfig(landmarks="hands", length_mode="variable", normalization="none")


def _outside_file(tmp_path: Path) -> Path:
    """A perfectly readable Kaggle parquet file outside the data folder."""
    path = tmp_path / "secret" / "outside.parquet"
    write_landmarks(path, np.full((6, 543, 3), SECRET))
    return path


def _append_rows(root: Path, rows: list[tuple[str, object, object, str]]) -> None:
    table = pd.read_csv(root / "train.csv", dtype=str)
    extra = pd.DataFrame([[str(v) for v in row] for row in rows], columns=table.columns)
    pd.concat([table, extra]).to_csv(root / "train.csv", index=False)


def _hostile_rows(outside: Path) -> list[tuple[str, object, object, str]]:
    return [
        ("../secret/outside.parquet", 9, 901, "hello"),
        (str(outside), 9, 902, "hello"),  # absolute
        ("train_landmark_files/../../secret/outside.parquet", 9, 903, "hello"),
        ("../../../../etc/passwd", 9, 904, "hello"),
        ("/etc/passwd", 9, 905, "hello"),
        ("train_landmark_files\\..\\..\\secret\\outside.parquet", 9, 906, "hello"),  # Windows separators
    ]


class OpenRecorder:
    """Records every parquet open, file open and stat of a path outside the data folder."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, outside: Path):
        self.touched: list[str] = []
        self.outside = str(outside.parent)
        real_parquet, real_open, real_stat = pq.ParquetFile, builtins.open, os.stat

        def parquet(source, *args, **kwargs):
            self._note(source)
            return real_parquet(source, *args, **kwargs)

        def opener(file, *args, **kwargs):
            self._note(file)
            return real_open(file, *args, **kwargs)

        def stat(path, *args, **kwargs):
            self._note(path)
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(pq, "ParquetFile", parquet)
        monkeypatch.setattr(builtins, "open", opener)
        monkeypatch.setattr(os, "stat", stat)

    def _note(self, path: object) -> None:
        if isinstance(path, str | os.PathLike):
            text = os.fspath(path)
            if isinstance(text, str) and (self.outside in text or "secret" in text or "passwd" in text):
                self.touched.append(text)


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    """The four-row good dataset plus six rows whose paths escape it."""
    root = good_dataset(tmp_path / "data")
    outside = _outside_file(tmp_path)
    _append_rows(root, _hostile_rows(outside))
    return root, outside


@pytest.mark.parametrize(("raw", "kept"), [
    ("train_landmark_files/1/101.parquet", "train_landmark_files/1/101.parquet"),
    ("./train_landmark_files//1/./101.parquet", "train_landmark_files/1/101.parquet"),
    ("train_landmark_files/9/../1/101.parquet", "train_landmark_files/1/101.parquet"),
    ("~/x.parquet", "~/x.parquet"),  # no home expansion: a folder named "~" inside
])
def test_paths_inside_are_normalised(raw, kept):
    assert contained_relative_path(raw) == kept


@pytest.mark.parametrize(("raw", "why"), [
    ("../../../../etc/passwd", "'..' climbs above it"),
    ("train_landmark_files/../../x.parquet", "'..' climbs above it"),
    ("a/../../x.parquet", "'..' climbs above it"),
    ("a\\..\\..\\x.parquet", "'..' climbs above it"),
    ("/etc/passwd", "absolute path"),
    ("//server/share/x.parquet", "absolute path"),
    ("C:\\data\\x.parquet", "absolute path"),
    ("C:x.parquet", "absolute path"),
    ("\\\\server\\share\\x.parquet", "absolute path"),
])
def test_escaping_paths_are_refused(raw, why):
    with pytest.raises(ValueError, match=rf"^{ESCAPES} \({why}\)$"):
        contained_relative_path(raw)


def test_nul_in_a_path_is_refused():
    with pytest.raises(ValueError, match="NUL"):
        contained_relative_path("train_landmark_files/1/1\x00.parquet")


def test_reader_keeps_good_rows_and_names_each_refused_one(hostile):
    root, _ = hostile
    table = read_train_table(root)
    assert [s.sequence_id for s in table.samples] == [101, 102, 201, 202]
    assert all(s.path.is_relative_to(root) for s in table.samples)
    assert [r.line for r in table.rejected] == [6, 7, 8, 9, 10, 11]
    assert [r.sequence_id for r in table.rejected] == ["901", "902", "903", "904", "905", "906"]
    assert all(r.reason.startswith(ESCAPES) for r in table.rejected)
    assert table.rejected[0].describe() == (f"line 6 (sequence_id 901), path ../secret/outside.parquet: "
                                            f"{ESCAPES} ('..' climbs above it)")
    with pytest.warns(SkippedRowsWarning, match=r"skipped 6 unusable rows: line 6 \(sequence_id 901\)") as caught:
        samples = read_train_csv(root)
    assert samples == table.samples
    assert "and 1 more (islr validate lists them all)" in str(caught[0].message)


def test_validate_reports_every_refused_row_and_never_opens_it(hostile, monkeypatch):
    root, outside = hostile
    recorder = OpenRecorder(monkeypatch, outside)
    report = validate_dataset(root, workers=1, progress=False)
    monkeypatch.undo()
    assert recorder.touched == []
    assert (report.n_valid, report.n_invalid) == (4, 6)
    bad = report.invalid
    assert [r.sequence_id for r in bad] == [901, 902, 903, 904, 905, 906]
    assert [r.path for r in bad][:2] == ["../secret/outside.parquet", str(outside)]
    assert bad[0].reason == f"line 6 (sequence_id 901): {ESCAPES} ('..' climbs above it)"
    assert bad[1].reason == f"line 7 (sequence_id 902): {ESCAPES} (absolute path)"
    assert all(r.frames is None for r in bad)


def test_cli_validate_lists_them_and_changes_nothing(hostile, tmp_path, capsys):
    root, _ = hostile
    before = checksums(root)
    code = main(["validate", str(root), "--report", str(tmp_path / "r.csv"), "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith("4 valid, 6 invalid")
    assert "invalid: /etc/passwd: line 10 (sequence_id 905): path escapes the data folder (absolute path)" in err
    assert checksums(root) == before


def test_every_batch_reader_skips_and_reports_without_opening(hostile, tmp_path, monkeypatch):
    root, outside = hostile
    recorder = OpenRecorder(monkeypatch, outside)
    with pytest.warns(SkippedRowsWarning, match="skipped 6 unusable rows"):
        table = inspect_dataset(root, workers=1, progress=False)  # islr clean
    assert table["sequence_id"].tolist() == [101, 102, 201, 202] and (table["problem"] == "").all()
    with pytest.warns(SkippedRowsWarning):
        lengths = sequence_table(root)  # islr plot
    assert lengths["sequence_id"].tolist() == [101, 102, 201, 202] and (lengths["frames"] == 12).all()
    with pytest.warns(SkippedRowsWarning):
        samples = read_train_csv(root)
    store = build_cache(samples, CFG, tmp_path / "cache", workers=1, progress=False)
    monkeypatch.undo()
    assert recorder.touched == []
    assert len(store) == 4 and not store.errors
    assert not np.isclose(store.data, SECRET).any()


def test_preprocess_command_names_refused_rows(hostile, tmp_path, capsys, monkeypatch):
    root, outside = hostile
    recorder = OpenRecorder(monkeypatch, outside)
    code = main(["preprocess", str(root), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                 "--workers", "1", "--preprocess.landmarks", "hands"])
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert code == 0 and recorder.touched == []
    assert "sequences: 4 " in out and "refused train.csv rows: 6 (never opened)" in out
    assert f"  line 6 (sequence_id 901), path ../secret/outside.parquet: {ESCAPES}" in out
    assert "skipped: 0" in out


def test_training_data_skips_refused_rows_with_a_report(tmp_path, monkeypatch):
    root = tmp_path / "synth"
    generate(root, signs=3, participants=5, per_sign=2, seed=3, min_frames=6, max_frames=12)
    listed = len(pd.read_csv(root / "train.csv"))
    outside = _outside_file(tmp_path)
    _append_rows(root, [(str(outside), 1, 990, "sign000"),
                        ("train_landmark_files/1/991.parquet", "one", 991, "sign000"),
                        ("../secret/outside.parquet", 1, "9x2", "sign001")])
    cfg = ExperimentConfig()
    cfg.data = dataclasses.replace(cfg.data, data_dir=str(root), cache_dir=str(tmp_path / "cache"), workers=1,
                                   valid_size=0.2, test_size=0.2)
    cfg.preprocess = CFG
    recorder = OpenRecorder(monkeypatch, outside)
    with pytest.warns(SkippedRowsWarning) as caught:
        ds = build_datasets(cfg, progress=False)
    monkeypatch.undo()
    assert recorder.touched == []
    assert len(ds.store) == listed and not ds.errors
    message = str(caught[0].message)
    assert "skipped 3 unusable rows" in message
    assert f"line {listed + 2} (sequence_id 990)" in message
    assert f"line {listed + 3} (sequence_id 991)" in message and "data row" in message and "'one'" in message
    assert f"line {listed + 4} (sequence_id 9x2)" in message


def test_non_integer_ids_are_named_and_the_other_rows_still_checked(tmp_path):
    root = good_dataset(tmp_path / "data")
    write_landmarks(root / "train_landmark_files/3/302.parquet", sequence(12, 7))
    _append_rows(root, [("train_landmark_files/3/301.parquet", "three", 301, "hello"),
                        ("train_landmark_files/3/302.parquet", 3, "3O2", "bye"),  # letter O
                        ("train_landmark_files/3/303.parquet", 3.5, 303, "bye"),
                        ("train_landmark_files/3/304.parquet", 3, 99999999999999999999, "bye")])
    report = validate_dataset(root, workers=1, progress=False)
    assert (report.n_valid, report.n_invalid) == (4, 4)
    reasons = [r.reason for r in report.invalid]
    assert reasons == [
        "line 6 (sequence_id 301): column 'participant_id' must hold integers; data row 5 has 'three'",
        "line 7 (sequence_id 3O2): column 'sequence_id' must hold integers; data row 6 has '3O2'",
        "line 8 (sequence_id 303): column 'participant_id' must hold integers; data row 7 has '3.5'",
        "line 9 (sequence_id 99999999999999999999): column 'sequence_id' must hold integers; "
        "data row 8 has '99999999999999999999'",
    ]
    assert [r.sequence_id for r in report.invalid] == [301, None, 303, None]
    assert [r.participant_id for r in report.invalid] == [None, 3, None, 3]


def test_line_numbers_count_blank_lines_and_ids_like_12_point_0_are_integers(tmp_path):
    root = good_dataset(tmp_path / "data")
    text = (root / "train.csv").read_text().splitlines()
    text.insert(2, "")  # a blank line 3
    text.append("train_landmark_files/1/101.parquet,1.0,777,hello")
    text.append("train_landmark_files/1/101.parquet,x,778,hello")
    (root / "train.csv").write_text("\n".join(text) + "\n")
    table = read_train_table(root)
    assert [s.sequence_id for s in table.samples] == [101, 102, 201, 202, 777]
    assert table.lines == [2, 4, 5, 6, 7] and table.data_rows == [1, 2, 3, 4, 5]
    assert [(r.line, r.sequence_id) for r in table.rejected] == [(8, "778")]


def test_control_characters_are_escaped_in_reports(tmp_path):
    root = good_dataset(tmp_path / "data")
    _append_rows(root, [("../\x1b[2Jevil.parquet", 1, "1\x1b[31m", "hello")])
    (row,) = validate_dataset(root, workers=1, progress=False).invalid
    assert row.path == "../\\x1b[2Jevil.parquet" and "\x1b" not in row.reason
    assert row.reason.startswith("line 6 (sequence_id 1\\x1b[31m): column 'sequence_id' must hold integers")
    assert row.reason.endswith(f"{ESCAPES} ('..' climbs above it)")


def test_no_usable_row_is_a_table_error(tmp_path):
    root = good_dataset(tmp_path / "data")
    pd.DataFrame([["/etc/passwd", 1, 1, "hello"]], columns=["path", "participant_id", "sequence_id", "sign"]).to_csv(
        root / "train.csv", index=False)
    with pytest.raises(DataError, match=r"no usable rows \(1 refused\); first: line 2 \(sequence_id 1\): "
                                        r"path escapes the data folder \(absolute path\)"):
        read_train_table(root)


def test_symlinks_made_inside_the_folder_keep_working(tmp_path):
    """A participant folder on another disk, a file linked to another file inside: both read."""
    root = good_dataset(tmp_path / "data")
    other_disk = tmp_path / "other_disk" / "7"
    write_landmarks(other_disk / "701.parquet", sequence(12, 70))
    (root / "train_landmark_files" / "7").symlink_to(other_disk, target_is_directory=True)
    (root / "train_landmark_files" / "2" / "203.parquet").symlink_to(root / "train_landmark_files" / "2" / "201.parquet")
    _append_rows(root, [("train_landmark_files/7/701.parquet", 7, 701, "hello"),
                        ("train_landmark_files/2/203.parquet", 2, 203, "hello")])
    report = validate_dataset(root, workers=1, progress=False)
    assert report.ok and report.n_valid == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is refused
        samples = read_train_csv(root)
    store = build_cache(samples, CFG, tmp_path / "cache", workers=1, progress=False)
    assert len(store) == 6 and not store.errors


def test_a_whole_landmark_folder_on_another_disk(tmp_path):
    disk = good_dataset(tmp_path / "disk2")
    root = tmp_path / "data"
    root.mkdir()
    for name in ("train.csv", "sign_to_prediction_index_map.json"):
        (root / name).write_bytes((disk / name).read_bytes())
    (root / "train_landmark_files").symlink_to(disk / "train_landmark_files", target_is_directory=True)
    assert validate_dataset(root, workers=1, progress=False).ok


def test_dot_dot_after_a_symlink_is_resolved_lexically(tmp_path):
    """``link/../x`` means the folder's own ``x``, never the parent of wherever ``link`` points."""
    root = good_dataset(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    write_landmarks(elsewhere / "1" / "101.parquet", np.full((6, 543, 3), SECRET))  # the decoy
    (elsewhere / "deep").mkdir()
    (root / "train_landmark_files" / "9").symlink_to(elsewhere / "deep", target_is_directory=True)
    # The OS would resolve this to elsewhere/1/101.parquet; islr opens data's own file.
    assert os.path.exists(root / "train_landmark_files/9/../1/101.parquet")
    assert np.isclose(read_landmarks(root / "train_landmark_files/9/../1/101.parquet"), SECRET).all()
    _append_rows(root, [("train_landmark_files/9/../1/101.parquet", 1, 111, "hello")])
    samples = read_train_csv(root)
    assert samples[-1].path == root / "train_landmark_files/1/101.parquet"
    assert not np.isclose(read_landmarks(samples[-1].path), SECRET).any()


def test_the_vectorised_fast_path_agrees_with_the_exact_checks(tmp_path):
    """Plain rows skip the per-row checks; every kind of row must come out as the exact check says."""
    root = good_dataset(tmp_path / "data")
    raws = ["train_landmark_files/1/101.parquet", ".hidden/a.parquet", "a..b/c.parquet", "a/./b.parquet",
            "a//b.parquet", "a/b/", "./a.parquet", "a/../b.parquet", "..", "a/..", "/abs.parquet", "C:x.parquet",
            "a\\b.parquet", "x\x00y", "ü/ß.parquet", " spaced /x.parquet"]
    ids = ["7", "+7", "-7", "007", "7.0", "1e3", "999999999999999999", "9999999999999999999", "7x", "nan", "inf",
           " 7", "0x7", "7.5", "-0", "1_000"]
    _append_rows(root, [(raw, pid, 5000 + i, "hello") for i, (raw, pid) in enumerate(zip(raws, ids, strict=True))])
    table = read_train_table(root)
    kept = {s.sequence_id: s for s in table.samples}
    refused = {int(r.sequence_id): r for r in table.rejected}
    for i, (raw, pid) in enumerate(zip(raws, ids, strict=True)):
        try:
            expected_path = root / contained_relative_path(raw)
        except ValueError:
            expected_path = None
        try:
            expected_id = int(float(pid)) if float(pid).is_integer() and abs(float(pid)) < 2**63 else None
        except ValueError:
            expected_id = None
        if pid in ("9999999999999999999",):
            expected_id = None  # beyond int64
        if pid == "999999999999999999":
            expected_id = 999999999999999999  # exact, not rounded through float
        if expected_path is None or expected_id is None:
            assert 5000 + i in refused and 5000 + i not in kept, (raw, pid)
        else:
            assert kept[5000 + i].path == expected_path and kept[5000 + i].participant_id == expected_id, (raw, pid)
