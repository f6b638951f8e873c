"""The Kaggle asl-signs layout: ``train.csv``, the sign map and one parquet per sequence.

A parquet file has one row per (frame, landmark) with columns ``frame, row_id, type,
landmark_index, x, y, z``; every frame has 543 rows in the order of
:data:`islr.data.landmarks.PART_ORDER`. :func:`read_landmarks` turns it into float32
``(frames, 543, 3)`` with NaN where a part was not detected, reading only the columns it needs.

train.csv comes from outside and is not trusted: :func:`read_train_table` judges every row on its
own and refuses (by line and sequence id, without opening anything) a non-integer id or a path
that escapes the data folder (:func:`contained_relative_path`); :func:`read_train_csv`, which
every batch job uses, skips those rows with one :class:`SkippedRowsWarning`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
    """Read ``sign_to_prediction_index_map.json``: sign name -> class index (0..n-1, unique).

    ``data_dir`` is the dataset folder, or the JSON file itself (any name).
    """
    path = Path(data_dir) if Path(data_dir).is_file() else Path(data_dir) / SIGN_MAP_JSON
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


ESCAPES = "path escapes the data folder"
_INT64_LIMIT = 2**63
_PLAIN_ID = r"[+-]?\d{1,18}"  # fits int64 for sure
_PLAIN_PATH = r"(?:[^/\\:\x00]+/)*[^/\\:\x00]+"
_DOT_PART = r"(?:^|/)\.\.?(?:/|$)"


def contained_relative_path(raw: str) -> str:
    """The lexically normalised form of a train.csv ``path``; ValueError(reason) if it may leave the folder.

    Refused: an absolute or drive/UNC path (under POSIX *or* Windows rules), a NUL character, and
    any path whose ``..`` parts climb above the folder (``/`` and ``\\`` both count as separators
    here, so a file written on either system is judged the same). The check is lexical on
    purpose: the rows of train.csv come from outside and are not trusted, but the folder's own
    layout is the user's. A symlink the user made inside the folder (``train_landmark_files`` on
    another disk, a participant folder linked elsewhere) keeps working wherever it points, because
    a CSV row cannot create a symlink. The caller opens the *normalised* path, which holds no
    ``..``, so ``link/../x`` cannot reach the parent of the link's target either. Datasets
    unpacked from untrusted archives should be extracted with a filter that refuses links
    pointing outside (``tarfile`` ``filter="data"``).
    """
    if "\x00" in raw:
        raise ValueError("path holds a NUL character")
    for flavour in (PurePosixPath, PureWindowsPath):
        pure = flavour(raw)
        if pure.is_absolute() or pure.anchor:
            raise ValueError(f"{ESCAPES} (absolute path)")
    depth = 0
    for part in re.split(r"[\\/]", raw):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise ValueError(f"{ESCAPES} ('..' climbs above it)")
    return os.path.normpath(raw)


@dataclass(frozen=True)
class RejectedRow:
    """A train.csv row that no reader may use; ids stay as written (they may not be numbers)."""

    line: int
    """Line of train.csv (the header is line 1)."""
    path: str
    participant_id: str
    sequence_id: str
    sign: str
    reason: str

    def where(self) -> str:
        """``line N (sequence_id S)``, with the sequence id printable whatever it holds."""
        return f"line {self.line} (sequence_id {printable(self.sequence_id)})"

    def describe(self) -> str:
        """One line naming the row, its path and why it was refused."""
        return f"{self.where()}, path {printable(self.path)}: {self.reason}"


@dataclass
class TrainTable:
    """train.csv split into usable :class:`Sample` rows and :class:`RejectedRow` rows."""

    csv_path: Path
    samples: list[Sample]
    lines: list[int]
    """train.csv line of each sample."""
    data_rows: list[int]
    """1-based position of each sample among the non-blank data rows."""
    rejected: list[RejectedRow]


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a hostile value cannot drive a terminal."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def parse_id(value: str) -> int | None:
    """An integer id written as ``12`` or ``12.0``; None if it is not one (or does not fit int64)."""
    try:
        number = int(value)
    except ValueError:
        try:
            as_float = float(value)
        except ValueError:
            return None
        if not as_float.is_integer():
            return None
        number = int(as_float)
    return number if -_INT64_LIMIT <= number < _INT64_LIMIT else None


def read_train_table(data_dir: str | Path, csv_name: str = TRAIN_CSV) -> TrainTable:
    """Read train.csv, judging each row on its own; nothing is opened but the CSV.

    Table-level problems raise :class:`DataError` naming the CSV: unreadable, missing columns,
    no rows, empty cells (a broken export), or no usable row at all. A row whose id is not an
    integer or whose path escapes the data folder (:func:`contained_relative_path`) becomes a
    :class:`RejectedRow` naming its line and sequence id; the other rows are kept.
    """
    import pandas as pd

    data_dir = Path(data_dir)
    path = data_dir / csv_name
    try:
        # Every column as text: ids are judged per row (and kept exact), blank lines keep their
        # place so each row knows its line.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty file (not even a header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse CSV ({_short(exc)})") from None
    missing = [c for c in TRAIN_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}; expected {list(TRAIN_COLUMNS)}")
    frame = frame[~frame[list(frame.columns)].isna().all(axis=1)]  # blank lines
    if frame.empty:
        raise DataError(path, "header only, no rows")
    for name in TRAIN_COLUMNS:
        blank = frame[name].isna()
        if blank.any():
            raise DataError(path, f"column {name!r} is empty in {int(blank.sum())} rows "
                                  f"(first at data row {int(blank.to_numpy().argmax()) + 1})")
    table = TrainTable(path, [], [], [], [])
    # Vectorised fast paths (the exact per-row checks cost ~50 µs a row): plain decimal ids, and paths
    # that are already normalised and contained (no '.' or '..' part, no separator at either end,
    # no backslash, colon or NUL). Anything else goes through the exact per-row checks.
    paths = frame["path"]
    plain_path = (paths.str.fullmatch(_PLAIN_PATH) & ~paths.str.contains(_DOT_PART)).to_numpy()
    ids = {}
    for name in ("participant_id", "sequence_id"):
        plain = frame[name].str.fullmatch(_PLAIN_ID).to_numpy()
        ids[name] = (plain, frame[name].where(plain, "0").astype(np.int64).tolist())
    columns = [frame[c].tolist() for c in TRAIN_COLUMNS]
    lines = (frame.index.to_numpy() + 2).tolist()  # the header is line 1
    for i, (line, raw_path, pid, sid, sign) in enumerate(zip(lines, *columns, strict=True)):
        reasons = []
        numbers = []
        for name, value in (("participant_id", pid), ("sequence_id", sid)):
            plain, parsed = ids[name]
            number = parsed[i] if plain[i] else parse_id(value)
            if number is None:
                reasons.append(f"column {name!r} must hold integers; data row {i + 1} has {printable(value)!r}")
            numbers.append(number)
        relative = raw_path
        if not plain_path[i]:
            try:
                relative = contained_relative_path(raw_path)
            except ValueError as exc:
                reasons.append(str(exc))
        if reasons:
            table.rejected.append(RejectedRow(line, raw_path, pid, sid, sign, "; ".join(reasons)))
            continue
        table.samples.append(Sample(data_dir / relative, numbers[0], numbers[1], sign))
        table.lines.append(line)
        table.data_rows.append(i + 1)
    if not table.samples:
        first = table.rejected[0]
        raise DataError(path, f"no usable rows ({len(table.rejected)} refused); first: {first.where()}: {first.reason}")
    return table


class SkippedRowsWarning(UserWarning):
    """Rows of train.csv were refused and left out (see :func:`read_train_csv`)."""


MAX_NAMED = 5


def read_train_csv(data_dir: str | Path, csv_name: str = TRAIN_CSV) -> list[Sample]:
    """The usable rows of train.csv as :class:`Sample` (paths made absolute; no file is opened).

    Rows that :func:`read_train_table` refuses (a non-integer id, a path that escapes the data
    folder) are left out and named in one :class:`SkippedRowsWarning`, so every batch job (clean,
    preprocess, plot, training, evaluation) skips them, reports them and loses nothing else.
    """
    table = read_train_table(data_dir, csv_name)
    if table.rejected:
        named = "; ".join(r.describe() for r in table.rejected[:MAX_NAMED])
        more = len(table.rejected) - MAX_NAMED
        warnings.warn(f"{table.csv_path}: skipped {len(table.rejected)} unusable rows: {named}"
                      + (f"; and {more} more (islr validate lists them all)" if more > 0 else ""),
                      SkippedRowsWarning, stacklevel=2)
    return table.samples


_PART_NAMES = tuple(name for name, _ in PART_ORDER)
_INTEGER_COLUMNS = ("frame", "landmark_index")


def _schema_problem(schema: pa.Schema, columns: list[str]) -> str | None:
    """The reason the file's schema cannot hold Kaggle landmarks, or None when it can."""
    missing = [c for c in columns if c not in schema.names]
    if missing:
        return f"missing columns {missing}; expected {list(PARQUET_COLUMNS)}"
    for name in columns:
        kind = schema.field(name).type
        if name in COORDS and not pa.types.is_floating(kind):
            return f"column {name!r} has type {kind}, expected a float"
        if name in _INTEGER_COLUMNS and not pa.types.is_integer(kind):
            return f"column {name!r} has type {kind}, expected an integer"
        if name == "type":
            value = kind.value_type if pa.types.is_dictionary(kind) else kind
            if not (pa.types.is_string(value) or pa.types.is_large_string(value)):
                return f"column 'type' has type {kind}, expected a string"
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_landmarks(path: str | Path, check: bool = True) -> np.ndarray:
    """Read one Kaggle parquet file into float32 ``(frames, 543, 3)`` (x, y, z; NaN kept).

    Columns are checked for presence and dtype (x, y, z float; frame, landmark_index integer;
    type string). With ``check`` the row layout is verified too: 543 rows a frame, parts in the
    order face, left_hand, pose, right_hand, landmark_index counting 0..n-1 within each part and
    strictly increasing frame numbers. Any problem raises :class:`DataError` naming the file and
    the first offending frame. A file whose landmarks are all NaN is readable (validation flags it).
    """
    path = Path(path)
    columns = list(COORDS) + (["frame", "type", "landmark_index"] if check else [])
    try:
        # ParquetFile.read skips the dataset layer of pq.read_table (about 0.3-0.5 ms a file),
        # reading `type` dictionary-encoded avoids materialising 543 strings a frame, and
        # pre_buffer=False skips a coalescing pass that only pays on remote storage (~0.17 ms a file).
        with pq.ParquetFile(path, read_dictionary=["type"] if check else None, pre_buffer=False) as parquet:
            problem = _schema_problem(parquet.schema_arrow, columns)
            if problem:
                raise DataError(path, problem)
            # One thread: a file is a few thousand rows, and batch jobs parallelise over files.
            table = parquet.read(columns=columns, use_threads=False)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not a parquet file") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable parquet file ({_short(exc)})") from None
    n = table.num_rows
    if n == 0:
        raise DataError(path, "zero frames")
    if check:
        _check_layout(table, path)
    elif n % ROWS_PER_FRAME:
        raise DataError(path, f"{n} rows is not a multiple of {ROWS_PER_FRAME} rows a frame")
    data = np.empty((n, 3), dtype=np.float32)
    # Nulls (how some files store "not detected") become NaN here; a double beyond float32's range
    # becomes inf, which validation reports and preprocessing treats as missing.
    with np.errstate(over="ignore"):
        for i, name in enumerate(COORDS):
            data[:, i] = table.column(name).to_numpy()
    return data.reshape(n // ROWS_PER_FRAME, ROWS_PER_FRAME, 3)


def _int_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        raise DataError(path, f"column {name!r} has {column.null_count} missing values")
    return column.to_numpy()


def _type_codes(table: pa.Table, path: Path) -> np.ndarray:
    """The ``type`` column as int8 part codes (index into PART_ORDER; -1 = unknown name)."""
    column = table.column("type")
    if column.null_count:
        raise DataError(path, f"column 'type' has {column.null_count} missing values")
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    # Only the few dictionary entries go through Python; the rows stay in numpy.
    names = array.dictionary.to_pylist()
    lookup = np.array([_TYPE_CODES.get(name, -1) for name in names], dtype=np.int8)
    codes = lookup[array.indices.to_numpy()]
    if (codes < 0).any():
        unknown = sorted({name for name, code in zip(names, lookup, strict=True) if code < 0})
        raise DataError(path, f"unknown landmark types {unknown}; expected {list(_PART_NAMES)}")
    return codes


def _frame_row_problem(frame: np.ndarray) -> str:
    """Explain why the frame column does not form blocks of 543 rows (slow path, errors only)."""
    values, counts = np.unique(frame, return_counts=True)
    wrong = np.flatnonzero(counts != ROWS_PER_FRAME)
    if len(wrong):
        i = wrong[0]
        return (f"frame {values[i]} has {counts[i]} rows, expected {ROWS_PER_FRAME} "
                f"({len(wrong)} of {len(values)} frames are wrong)")
    return f"the rows of each frame are not contiguous (rows of frame {frame[0]} are interleaved)"


def _check_layout(table: pa.Table, path: Path) -> None:
    """Vectorised check of the row layout; raises DataError with the first problem found."""
    n = table.num_rows
    frame = _int_column(table, "frame", path)
    if n % ROWS_PER_FRAME:
        raise DataError(path, f"{n} rows is not a multiple of {ROWS_PER_FRAME}: {_frame_row_problem(frame)}")
    frames = n // ROWS_PER_FRAME
    frame = frame.reshape(frames, ROWS_PER_FRAME)
    if (frame != frame[:, :1]).any():
        raise DataError(path, _frame_row_problem(frame.ravel()))
    starts = frame[:, 0].astype(np.int64)
    step = np.diff(starts)
    if (step <= 0).any():
        i = int(np.flatnonzero(step <= 0)[0])
        if step[i] == 0:
            raise DataError(path, f"frame {starts[i]} appears twice (frames {i} and {i + 1} of the file)")
        raise DataError(path, f"frame numbers are not increasing (frame {starts[i + 1]} follows {starts[i]})")
    codes = _type_codes(table, path).reshape(frames, ROWS_PER_FRAME)
    bad = codes != _EXPECTED_TYPES
    if bad.any():
        f, r = np.argwhere(bad)[0]
        raise DataError(
            path,
            f"frame {starts[f]} row {r} has type {_PART_NAMES[codes[f, r]]!r}, expected "
            f"{_PART_NAMES[_EXPECTED_TYPES[r]]!r} (parts must come in the order {', '.join(_PART_NAMES)})",
        )
    index = _int_column(table, "landmark_index", path).reshape(frames, ROWS_PER_FRAME)
    bad = index != _EXPECTED_INDEX
    if bad.any():
        f, r = np.argwhere(bad)[0]
        raise DataError(
            path,
            f"frame {starts[f]} row {r} ({_PART_NAMES[_EXPECTED_TYPES[r]]}) has landmark_index "
            f"{index[f, r]}, expected {_EXPECTED_INDEX[r]} (0..n-1 within each part)",
        )


def parquet_frame_count(path: str | Path) -> int:
    """Frames in a parquet file from its footer alone (rows / 543), without reading any data."""
    path = Path(path)
    try:
        with pq.ParquetFile(path) as parquet:
            rows = parquet.metadata.num_rows
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable parquet file ({_short(exc)})") from None
    return rows // ROWS_PER_FRAME


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
