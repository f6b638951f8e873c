"""Reading and writing the Kaggle layout: schema, values, NaN, variants the reader must accept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from islr.data.kaggle import (
    PARQUET_COLUMNS,
    parquet_frame_count,
    read_landmarks,
    read_sign_map,
    read_train_csv,
    write_landmarks,
)
from islr.data.landmarks import PART_ORDER
from islr.errors import DataError
from tiny_kaggle import sequence


def test_write_then_read_round_trip(tmp_path):
    data = sequence(7, seed=3, no_hand=(2, 3))
    path = tmp_path / "a" / "1.parquet"
    write_landmarks(path, data, first_frame=20)
    back = read_landmarks(path)
    assert back.dtype == np.float32 and back.shape == (7, 543, 3)
    assert np.array_equal(back, data.astype(np.float32), equal_nan=True)
    assert np.array_equal(read_landmarks(path, check=False), back, equal_nan=True)
    assert parquet_frame_count(path) == 7


def test_written_schema_is_kaggles(tmp_path):
    path = tmp_path / "1.parquet"
    write_landmarks(path, sequence(2), first_frame=5)
    table = pq.read_table(path)
    assert tuple(table.column_names) == PARQUET_COLUMNS
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {"frame": "int16", "row_id": "string", "type": "string", "landmark_index": "int16",
                     "x": "double", "y": "double", "z": "double"}
    rows = table.to_pandas()
    assert rows["frame"].tolist() == [5] * 543 + [6] * 543
    assert rows["row_id"].iloc[0] == "5-face-0" and rows["row_id"].iloc[543 + 470] == "6-left_hand-2"
    assert rows["type"].iloc[:543].value_counts().to_dict() == dict(PART_ORDER)


@pytest.mark.real
def test_real_files_match_a_pandas_reading(real_data_dir):
    files = sorted((real_data_dir / "train_landmark_files").glob("*/*.parquet"))
    for path in files[::40]:
        frame = pd.read_parquet(path)
        expected = frame[["x", "y", "z"]].to_numpy(np.float32).reshape(-1, 543, 3)
        got = read_landmarks(path)
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(read_landmarks(path, check=False), expected, equal_nan=True)
        assert parquet_frame_count(path) == len(got) == frame["frame"].nunique()
        # A real file keeps NaN where a part was not detected (here: at least one hand).
        assert np.isnan(got[:, 468:489]).all(axis=(1, 2)).any() or np.isnan(got[:, 522:543]).all(axis=(1, 2)).any()


@pytest.mark.real
def test_real_schema_equals_written_schema(real_data_dir, tmp_path):
    real = next((real_data_dir / "train_landmark_files").glob("*/*.parquet"))
    ours = tmp_path / "1.parquet"
    write_landmarks(ours, sequence(1))
    strip = lambda s: [(f.name, f.type) for f in s]  # noqa: E731
    assert strip(pq.read_schema(real)) == strip(pq.read_schema(ours))


@pytest.mark.real
def test_real_tables(real_data_dir):
    sign_map = read_sign_map(real_data_dir)
    assert len(sign_map) == 250 and sorted(sign_map.values()) == list(range(250))
    samples = read_train_csv(real_data_dir)
    assert len(samples) == 522
    assert all(s.path.exists() and s.sign in sign_map for s in samples)
    first = samples[0]
    assert (first.participant_id, first.sequence_id, first.sign) == (26734, 1000035562, "blow")
    assert first.path == real_data_dir / "train_landmark_files/26734/1000035562.parquet"


def _rewrite(path, change):
    pq.write_table(change(pq.read_table(path)), path)


def test_reader_accepts_schema_variants(tmp_path):
    """Nulls for NaN, a dictionary-encoded type column, float32/int32 columns, several row groups."""
    data = sequence(6, seed=5, no_hand=(1,))
    path = tmp_path / "1.parquet"
    write_landmarks(path, data)
    table = pq.read_table(path)
    x = table.column("x").to_numpy()
    variants = {
        "nulls": table.set_column(4, "x", pa.array(np.where(np.isnan(x), None, x).tolist(), pa.float64())),
        "dictionary": table.set_column(2, "type", table.column("type").dictionary_encode()),
        "narrow": table.set_column(4, "x", table.column("x").cast(pa.float32()))
                       .set_column(0, "frame", table.column("frame").cast(pa.int32())),
    }
    for name, variant in variants.items():
        pq.write_table(variant, path)
        assert np.array_equal(read_landmarks(path), data.astype(np.float32), equal_nan=True), name
    pq.write_table(table, path, row_group_size=1000)
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    assert np.array_equal(read_landmarks(path), data.astype(np.float32), equal_nan=True)


def test_all_nan_file_is_readable(tmp_path):
    path = tmp_path / "1.parquet"
    write_landmarks(path, sequence(3, all_nan=True))
    assert np.isnan(read_landmarks(path)).all()


def test_unchecked_read_still_rejects_what_it_cannot_shape(tmp_path):
    path = tmp_path / "1.parquet"
    write_landmarks(path, sequence(2))
    _rewrite(path, lambda t: t.slice(0, 1000))
    with pytest.raises(DataError, match="1000 rows is not a multiple of 543"):
        read_landmarks(path, check=False)
    with pytest.raises(DataError, match="file not found"):
        read_landmarks(tmp_path / "nope.parquet", check=False)
    with pytest.raises(DataError, match="is a directory"):
        read_landmarks(tmp_path)


def test_checked_read_finds_interleaved_frames(tmp_path):
    path = tmp_path / "1.parquet"
    write_landmarks(path, sequence(2))
    # Same row counts per frame, but frame 0 and 1 alternate row by row.
    frame = np.tile(np.array([0, 1], dtype=np.int16), 543)
    _rewrite(path, lambda t: t.set_column(0, "frame", pa.array(frame)))
    with pytest.raises(DataError, match="rows of each frame are not contiguous"):
        read_landmarks(path)
    assert read_landmarks(path, check=False).shape == (2, 543, 3)


def test_write_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match=r"expected \(frames, 543, 3\)"):
        write_landmarks(tmp_path / "x.parquet", np.zeros((2, 542, 3)))


def test_train_csv_blank_values(tmp_path):
    (tmp_path / "train.csv").write_text("path,participant_id,sequence_id,sign\na.parquet,1,2,hello\nb.parquet,1,3,\n")
    with pytest.raises(DataError, match=r"column 'sign' is empty in 1 rows \(first at data row 2\)"):
        read_train_csv(tmp_path)
