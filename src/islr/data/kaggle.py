"""The Kaggle asl-signs layout: ``train.csv``, the sign map and one parquet per sequence.

A parquet file has one row per (frame, landmark) with columns ``frame, row_id, type,
landmark_index, x, y, z``; every frame has 543 rows in the order of
:data:`islr.data.landmarks.PART_ORDER`. :func:`read_landmarks` turns it into float32
``(frames, 543, 3)`` with NaN where a part was not detected, reading only the columns it needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from islr.data.landmarks import PART_ORDER, ROWS_PER_FRAME
from islr.errors import DataError

TRAIN_CSV = "train.csv"
SIGN_MAP_JSON = "sign_to_prediction_index_map.json"
LANDMARK_DIR = "train_landmark_files"
TRAIN_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
PARQUET_COLUMNS = ("frame", "row_id", "type", "landmark_index", "x", "y", "z")
COORDS = ("x", "y", "z")

_EXPECTED_TYPES = np.concatenate([np.full(n, i, dtype=np.int8) for i, (_, n) in enumerate(PART_ORDER)])
_TYPE_CODES = {name: i for i, (name, _) in enumerate(PART_ORDER)}
_EXPECTED_INDEX = np.concatenate([np.arange(n) for _, n in PART_ORDER])


@dataclass(frozen=True)
class Sample:
    """One row of train.csv, with its absolute parquet path."""

    path: Path
    participant_id: int
    sequence_id: int
    sign: str


def read_sign_map(data_dir: str | Path) -> dict[str, int]:
    """Read ``sign_to_prediction_index_map.json``: sign name -> class index (0..n-1, unique)."""
    path = Path(data_dir) / SIGN_MAP_JSON
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(path, "sign map not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(path, "expected a non-empty JSON object of sign -> index")
    values = sorted(mapping.values())
    if values != list(range(len(values))):
        raise DataError(path, "indices must be the integers 0..n-1, each once")
    return {str(k): int(v) for k, v in mapping.items()}


def read_train_csv(data_dir: str | Path, csv_name: str = TRAIN_CSV) -> list[Sample]:
    """Read train.csv into :class:`Sample` rows (paths made absolute; nothing is checked on disk)."""
    import pandas as pd

    data_dir = Path(data_dir)
    path = data_dir / csv_name
    try:
        frame = pd.read_csv(path, dtype={"path": str, "sign": str})
    except FileNotFoundError:
        raise DataError(path, "train.csv not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "train.csv is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse CSV ({exc})") from None
    missing = [c for c in TRAIN_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}; expected {list(TRAIN_COLUMNS)}")
    if frame.empty:
        raise DataError(path, "train.csv has a header but no rows")
    return [
        Sample(data_dir / str(p), int(pid), int(sid), str(sign))
        for p, pid, sid, sign in zip(
            frame["path"], frame["participant_id"], frame["sequence_id"], frame["sign"], strict=True
        )
    ]


def _column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    try:
        return table.column(name).to_numpy(zero_copy_only=False)
    except KeyError:
        raise DataError(path, f"missing column {name!r}") from None


def read_landmarks(path: str | Path, check: bool = True) -> np.ndarray:
    """Read one Kaggle parquet file into float32 ``(frames, 543, 3)`` (x, y, z; NaN kept).

    With ``check`` the layout is verified (543 rows a frame, part order, landmark indices,
    increasing frame numbers); any problem raises :class:`DataError` naming the file.
    """
    path = Path(path)
    columns = list(COORDS) + (["frame", "type", "landmark_index"] if check else [])
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "No match for FieldRef" in reason or "not in schema" in reason.lower():
            raise DataError(path, f"missing columns: {reason}") from None
        raise DataError(path, f"not a readable parquet file ({reason})") from None
    n = table.num_rows
    if n == 0:
        raise DataError(path, "zero frames")
    if n % ROWS_PER_FRAME:
        raise DataError(path, f"{n} rows is not a multiple of {ROWS_PER_FRAME} rows a frame")
    coords = []
    for name in COORDS:
        col = table.column(name)
        if not pa.types.is_floating(col.type):
            raise DataError(path, f"column {name!r} has type {col.type}, expected a float")
        coords.append(col.to_numpy(zero_copy_only=False))
    data = np.stack(coords, axis=-1).astype(np.float32, copy=False)
    frames = n // ROWS_PER_FRAME
    data = data.reshape(frames, ROWS_PER_FRAME, 3)
    if check:
        _check_layout(table, frames, path)
    return data


def _check_layout(table: pa.Table, frames: int, path: Path) -> None:
    frame_col = table.column("frame")
    if not pa.types.is_integer(frame_col.type):
        raise DataError(path, f"column 'frame' has type {frame_col.type}, expected an integer")
    frame = _column(table, "frame", path).reshape(frames, ROWS_PER_FRAME)
    if (frame != frame[:, :1]).any():
        raise DataError(path, f"frames do not have {ROWS_PER_FRAME} consecutive rows each")
    if frames > 1 and (np.diff(frame[:, 0]) <= 0).any():
        raise DataError(path, "frame numbers are not strictly increasing")
    types = table.column("type")
    if pa.types.is_dictionary(types.type):
        types = types.cast(pa.string())
    codes = np.array([_TYPE_CODES.get(t, -1) for t in types.unique().to_pylist()], dtype=np.int8)
    lookup = dict(zip(types.unique().to_pylist(), codes, strict=True))
    if -1 in codes:
        unknown = [t for t, c in lookup.items() if c == -1]
        raise DataError(path, f"unknown landmark types {unknown}")
    dict_type = pa.compute.dictionary_encode(types).combine_chunks()
    local = np.array([lookup[v] for v in dict_type.dictionary.to_pylist()], dtype=np.int8)
    type_codes = local[dict_type.indices.to_numpy(zero_copy_only=False)].reshape(frames, ROWS_PER_FRAME)
    if (type_codes != _EXPECTED_TYPES).any():
        raise DataError(path, "landmark types are not in the order face, left_hand, pose, right_hand")
    index = _column(table, "landmark_index", path).reshape(frames, ROWS_PER_FRAME)
    if (index != _EXPECTED_INDEX).any():
        raise DataError(path, "landmark_index does not count 0..n-1 within each part")


def write_landmarks(path: str | Path, landmarks: np.ndarray, first_frame: int = 0) -> None:
    """Write ``(frames, 543, 3)`` landmarks as a parquet file with the exact Kaggle schema.

    Columns ``frame`` int16, ``row_id`` str (``"{frame}-{type}-{index}"``), ``type`` str,
    ``landmark_index`` int16, ``x, y, z`` float64; NaN where a part is missing.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (ROWS_PER_FRAME, 3):
        raise ValueError(f"expected (frames, {ROWS_PER_FRAME}, 3), got {landmarks.shape}")
    frames = landmarks.shape[0]
    frame_ids = np.repeat(np.arange(first_frame, first_frame + frames, dtype=np.int16), ROWS_PER_FRAME)
    type_names = np.array([name for name, _ in PART_ORDER])
    types = np.tile(type_names[_EXPECTED_TYPES], frames)
    index = np.tile(_EXPECTED_INDEX.astype(np.int16), frames)
    row_id = [f"{f}-{t}-{i}" for f, t, i in zip(frame_ids.tolist(), types.tolist(), index.tolist(), strict=True)]
    flat = landmarks.reshape(-1, 3).astype(np.float64)
    table = pa.table(
        {
            "frame": pa.array(frame_ids, pa.int16()),
            "row_id": pa.array(row_id, pa.string()),
            "type": pa.array(types, pa.string()),
            "landmark_index": pa.array(index, pa.int16()),
            "x": flat[:, 0],
            "y": flat[:, 1],
            "z": flat[:, 2],
        }
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
