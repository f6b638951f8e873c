"""inf, -inf and absurd coordinates: `islr validate` reports them with the file and how many,
preprocessing treats inf as missing (the cache holds none) and counts it; NaN stays legal."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from islr.cli import main
from islr.config import PreprocessConfig
from islr.data.cache import build_cache
from islr.data.cleaning import inspect_dataset
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.landmarks import RIGHT_HAND, ROWS_PER_FRAME
from islr.data.preprocess import featurize, prepare
from islr.data.validate import COORD_LIMIT, inspect_file, validate_dataset
from tiny_kaggle import good_dataset

CFG = PreprocessConfig(landmarks="hands", length_mode="variable", normalization="none")
HAND0 = int(np.arange(ROWS_PER_FRAME)[RIGHT_HAND][0])  # first right-hand row


def _set_x(path, rows: dict[int, float]) -> None:
    """Overwrite column x of the parquet file at the given table rows."""
    table = pq.read_table(path)
    x = table.column("x").to_numpy().copy()
    for row, value in rows.items():
        x[row] = value
    pq.write_table(table.set_column(table.schema.get_field_index("x"), "x", pa.array(x)), path)


def _row(frame: int, landmark: int) -> int:
    return frame * ROWS_PER_FRAME + landmark


@pytest.fixture
def broken(tmp_path):
    """good_dataset with x = inf / -inf in 3 rows of 101 and two absurd values in 201."""
    root = good_dataset(tmp_path / "data")
    _set_x(root / "train_landmark_files/1/101.parquet",
           {_row(2, HAND0): np.inf, _row(2, HAND0 + 1): -np.inf, _row(5, HAND0 + 3): np.inf})
    _set_x(root / "train_landmark_files/2/201.parquet", {_row(0, 0): 5e3, _row(1, 1): -2.5e4})
    return root


def test_validate_reports_the_file_and_how_many_values(broken):
    report = validate_dataset(broken, workers=1, progress=False)
    assert (report.n_valid, report.n_invalid) == (2, 2)
    reasons = {r.path: r.reason for r in report.invalid}
    assert reasons == {
        "train_landmark_files/1/101.parquet": "3 non-finite (inf/-inf) coordinate values",
        "train_landmark_files/2/201.parquet": "2 absurd (|value| > 1000) coordinate values",
    }
    info = inspect_file(broken / "train_landmark_files/1/101.parquet")
    assert (info.infinite, info.absurd, info.frames, info.problem) == (3, 0, 12, None)


def test_cli_validate_names_them(broken, tmp_path, capsys):
    code = main(["validate", str(broken), "--report", str(tmp_path / "r.csv"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "invalid: train_landmark_files/1/101.parquet: 3 non-finite (inf/-inf) coordinate values" in err


def test_nan_is_legal_and_values_at_the_bound_are_fine(tmp_path):
    root = good_dataset(tmp_path / "data")  # every file has an all-NaN left hand
    _set_x(root / "train_landmark_files/1/101.parquet", {_row(0, 0): COORD_LIMIT, _row(0, 1): -COORD_LIMIT,
                                                        _row(0, 2): np.nan})
    report = validate_dataset(root, workers=1, progress=False)
    assert report.ok and report.n_valid == 4


def test_a_double_beyond_float32_is_reported_as_non_finite(tmp_path):
    root = good_dataset(tmp_path / "data")
    _set_x(root / "train_landmark_files/1/102.parquet", {_row(0, HAND0): 1e300})
    (row,) = validate_dataset(root, workers=1, progress=False).invalid
    assert row.reason == "1 non-finite (inf/-inf) coordinate values"


def test_cleaning_keeps_such_files(broken):
    # Value problems are reported, not grounds for exclusion: preprocessing treats them as missing.
    table = inspect_dataset(broken, workers=1, progress=False)
    assert (table["problem"] == "").all()


def test_prepare_treats_inf_exactly_like_nan():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.2, 0.8, size=(10, ROWS_PER_FRAME, 3)).astype(np.float32)
    with_inf, with_nan = raw.copy(), raw.copy()
    spots = (np.array([3, 3, 4, 9]), RIGHT_HAND[np.array([0, 5, 5, 2])], np.array([0, 1, 2, 0]))
    with_inf[spots] = [np.inf, -np.inf, np.inf, -np.inf]
    with_nan[spots] = np.nan
    for cfg in (CFG, PreprocessConfig(max_gap=0), PreprocessConfig(landmarks="kaggle118", normalization="center_std")):
        a, b = prepare(with_inf, cfg), prepare(with_nan, cfg)
        np.testing.assert_array_equal(a, b)
        assert not np.isinf(a).any()
        assert np.isfinite(featurize(a, cfg)).all()


def test_a_hand_that_is_only_inf_counts_as_missing():
    raw = np.full((3, ROWS_PER_FRAME, 3), 0.5, dtype=np.float32)
    raw[1, RIGHT_HAND] = np.inf
    raw[:, np.arange(ROWS_PER_FRAME)[468:489]] = np.nan  # left hand never seen
    cfg = PreprocessConfig(landmarks="seed96", drop_empty_frames="hands", normalization="none", max_gap=0)
    assert len(prepare(raw, cfg)) == 2  # the inf-hand frame is dropped like a hand-less frame


def test_the_cache_holds_no_inf_and_counts_it(broken, tmp_path):
    samples = read_train_csv(broken)
    store = build_cache(samples, CFG, tmp_path / "cache", workers=1, progress=False)
    assert len(store) == 4 and not store.errors
    assert not np.isinf(store.data).any()
    assert (store.nonfinite_values, store.nonfinite_files) == (3, 1)
    raw = read_landmarks(samples[0].path)
    raw[np.isinf(raw)] = np.nan
    np.testing.assert_array_equal(store[0], prepare(raw, CFG))


def test_preprocess_command_summary_line(broken, tmp_path, capsys):
    args = ["preprocess", str(broken), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--workers", "1",
            "--preprocess.landmarks", "hands"]
    assert main(args) == 0
    assert "non-finite values treated as missing: 3 in 1 files" in capsys.readouterr().out.splitlines()
    assert main(args) == 0  # a cache hit reports the same counts
    out = capsys.readouterr().out
    assert "hit" in out and "non-finite values treated as missing: 3 in 1 files" in out


@pytest.mark.real
def test_no_genuine_file_comes_near_the_bound(real_data_dir):
    largest = 0.0
    for sample in read_train_csv(real_data_dir):
        raw = read_landmarks(sample.path)
        assert not np.isinf(raw).any(), sample.path
        largest = max(largest, float(np.nanmax(np.abs(raw))))
    # Measured: 4.99 (a pose z). The bound leaves a 200-fold margin.
    assert 1.0 < largest < COORD_LIMIT / 100
