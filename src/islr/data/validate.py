"""Check a Kaggle-layout folder: train.csv, the sign map and every parquet file, and report.

:func:`validate_dataset` never raises for bad data: every problem becomes an ``invalid`` row of the
:class:`ValidationReport` (one per train.csv row, plus one per unusable table such as the sign
map), so a batch job can skip the bad rows and keep the good ones. Files are inspected in a
process pool; :func:`inspect_file` and :func:`map_files` are shared with :mod:`islr.data.cleaning`.

Nothing from outside is trusted: a train.csv row with a non-integer id or a path that escapes the
data folder is reported by line and sequence id and its file is never opened (the other rows are
still checked); a file with inf, -inf or absurd coordinates (``|v| >`` :data:`COORD_LIMIT`) is
reported with how many such values it holds. NaN is legal: it means "not detected".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from islr.data.kaggle import (
    LANDMARK_DIR,
    SIGN_MAP_JSON,
    TRAIN_CSV,
    RejectedRow,
    Sample,
    parse_id,
    printable,
    read_landmarks,
    read_sign_map,
    read_train_table,
)
from islr.data.landmarks import HANDS
from islr.errors import DataError
from islr.fileio import atomic_path

VALID, INVALID = "valid", "invalid"
NO_HAND_ANYWHERE = "no hand detected in any frame"
ALL_NAN = "every landmark is NaN"
REPORT_COLUMNS = ("path", "participant_id", "sequence_id", "sign", "status", "reason", "frames")
COORD_LIMIT = 1e3
"""Largest believable ``|x|``, ``|y|`` or ``|z|`` of a raw landmark; larger values are reported.
MediaPipe x/y are image coordinates (about 0..1, somewhat outside for points beyond the frame) and
z is relative to the hips or wrist: the 522 genuine asl-signs files stay within 5.0 (x -0.6..1.5,
y 0..3.1, z -5.0..3.6), so 1000 leaves a 200-fold margin and still catches pixel units, overflowed
or garbage values. Only reported: preprocessing keeps finite values and treats inf as missing."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class FileInfo:
    """What one parquet file holds, as far as validation and cleaning care."""

    frames: int = 0
    no_hand_frames: int = 0
    """Frames in which neither hand was detected."""
    max_no_hand_run: int = 0
    """Longest run of consecutive frames without any hand."""
    all_nan: bool = False
    error: str | None = None
    """Why the file cannot be read (the :class:`DataError` reason), or None."""
    infinite: int = 0
    """Coordinate values that are inf or -inf."""
    absurd: int = 0
    """Finite coordinate values with ``|v| >`` :data:`COORD_LIMIT`."""

    @property
    def value_problem(self) -> str | None:
        """How many impossible coordinate values the file holds, or None.

        Validation reports these; they do not make the file unusable for training
        (:attr:`problem`), because preprocessing treats them as missing.
        """
        parts = []
        if self.infinite:
            parts.append(f"{self.infinite} non-finite (inf/-inf)")
        if self.absurd:
            parts.append(f"{self.absurd} absurd (|value| > {COORD_LIMIT:g})")
        return " and ".join(parts) + " coordinate values" if parts else None

    @property
    def problem(self) -> str | None:
        """Why the file is unusable for training, or None when it is usable."""
        if self.error:
            return self.error
        if self.all_nan:
            return ALL_NAN
        if self.no_hand_frames == self.frames:
            return NO_HAND_ANYWHERE
        return None


def longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean array."""
    padded = np.concatenate([[0], np.asarray(flags, dtype=np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max()) if len(edges) else 0


def inspect_file(path: str | Path) -> FileInfo:
    """Read one parquet file with every layout check; never raises for bad data."""
    try:
        data = read_landmarks(path, check=True)
    except DataError as exc:
        return FileInfo(error=exc.reason)
    # Kaggle hands are all-or-nothing per frame, so "any x present" means "hand detected".
    no_hand = np.isnan(data[:, HANDS, 0]).all(axis=1)
    bad = np.abs(data) > COORD_LIMIT  # inf too; NaN compares False
    infinite = int(np.isinf(data).sum()) if bad.any() else 0
    return FileInfo(
        frames=len(data),
        no_hand_frames=int(no_hand.sum()),
        max_no_hand_run=longest_run(no_hand),
        all_nan=bool(np.isnan(data).all()),
        infinite=infinite,
        absurd=int(bad.sum()) - infinite,
    )


def resolve_workers(workers: int) -> int:
    """``0`` means every core; anything else is taken as is (at least 1)."""
    return max(1, os.cpu_count() or 1) if workers <= 0 else workers


def map_files(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 0,
    progress: bool = True,
    desc: str = "files",
) -> list[R]:
    """``[fn(x) for x in items]`` in order, in a process pool when ``workers`` resolves to > 1.

    ``fn`` must be a module-level function (it is pickled to the workers).
    """
    items = list(items)
    workers = min(resolve_workers(workers), max(1, len(items)))
    bar = None
    from islr.progress import bars_enabled

    if bars_enabled(progress):
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="file", leave=False)
    try:
        if workers == 1:
            out = []
            for item in items:
                out.append(fn(item))
                if bar is not None:
                    bar.update()
            return out
        from concurrent.futures import ProcessPoolExecutor

        # Files take about a millisecond each: send them in chunks so the pool is not all overhead.
        chunk = max(1, min(64, len(items) // (workers * 8)))
        out = []
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(fn, items, chunksize=chunk):
                out.append(result)
                if bar is not None:
                    bar.update()
        return out
    finally:
        if bar is not None:
            bar.close()


@dataclass
class ValidationRow:
    """One line of the report: a train.csv row, or a table-level problem (ids left empty)."""

    path: str
    participant_id: int | None
    sequence_id: int | None
    sign: str
    status: str
    reason: str = ""
    frames: int | None = None


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_dataset`: one row per train.csv row plus table-level problems."""

    data_dir: Path
    rows: list[ValidationRow] = field(default_factory=list)

    @property
    def n_valid(self) -> int:
        return sum(r.status == VALID for r in self.rows)

    @property
    def n_invalid(self) -> int:
        return sum(r.status != VALID for r in self.rows)

    @property
    def invalid(self) -> list[ValidationRow]:
        return [r for r in self.rows if r.status != VALID]

    @property
    def ok(self) -> bool:
        return self.n_invalid == 0 and self.n_valid > 0

    def summary(self) -> str:
        """``"N valid, M invalid"``."""
        return f"{self.n_valid} valid, {self.n_invalid} invalid"

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame with the columns of :data:`REPORT_COLUMNS`."""
        import pandas as pd

        frame = pd.DataFrame([asdict(r) for r in self.rows], columns=list(REPORT_COLUMNS))
        for name in ("participant_id", "sequence_id", "frames"):
            frame[name] = frame[name].astype("Int64")
        return frame

    def write_csv(self, path: str | Path) -> Path:
        """Write the report as CSV (parent folders are created; atomic, see ``islr.fileio``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            self.to_frame().to_csv(tmp, index=False)
        return path


def _table_problem(path: Path, data_dir: Path, exc: DataError) -> ValidationRow:
    return ValidationRow(_relative(path, data_dir), None, None, "", INVALID, exc.reason)


def _relative(path: Path, data_dir: Path) -> str:
    try:
        return str(Path(path).relative_to(data_dir))
    except ValueError:
        return str(path)


def _rejected_row(row: RejectedRow) -> ValidationRow:
    """A refused train.csv row: named by line and sequence id; its file is never opened."""
    return ValidationRow(printable(row.path), parse_id(row.participant_id), parse_id(row.sequence_id),
                         printable(row.sign), INVALID, f"{row.where()}: {row.reason}")


def _samples_on_disk(data_dir: Path) -> list[Sample]:
    """Without a usable train.csv: every ``train_landmark_files/<participant>/<sequence>.parquet``."""
    samples = []
    for path in sorted((data_dir / LANDMARK_DIR).glob("*/*.parquet")):
        try:
            pid, sid = int(path.parent.name), int(path.stem)
        except ValueError:
            pid = sid = None
        samples.append(Sample(path, pid, sid, ""))  # type: ignore[arg-type]
    return samples


def validate_dataset(data_dir: str | Path, workers: int = 0, progress: bool = True) -> ValidationReport:
    """Check train.csv, the sign map and every listed parquet file of a Kaggle-layout folder.

    train.csv: readable, expected columns, not empty, no duplicated ``sequence_id``, every sign in
    the sign map, integer ids and a path inside the data folder on every row (a row that fails
    these is reported and its file never opened). Each listed file: present and readable with
    every layout check, at least one frame, not all NaN, a hand in at least one frame, no inf or
    absurd coordinate. When train.csv itself is unusable the parquet files found on disk are still
    checked. Rows are reported in train.csv order. ``workers``: processes (0 = all cores).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found")
    report = ValidationReport(data_dir)
    try:
        sign_map: dict[str, int] | None = read_sign_map(data_dir)
    except DataError as exc:
        report.rows.append(_table_problem(data_dir / SIGN_MAP_JSON, data_dir, exc))
        sign_map = None
    rejected: list[RejectedRow] = []
    try:
        table = read_train_table(data_dir)
        samples, data_rows, lines, rejected = table.samples, table.data_rows, table.lines, table.rejected
    except DataError as exc:
        report.rows.append(_table_problem(data_dir / TRAIN_CSV, data_dir, exc))
        samples = _samples_on_disk(data_dir)
        data_rows = lines = list(range(1, len(samples) + 1))

    # Table-level reasons per row, decided before any file is opened.
    reasons: list[list[str]] = [[] for _ in samples]
    first_row: dict[int, int] = {}
    for i, sample in enumerate(samples):
        if sample.sequence_id is not None:
            if sample.sequence_id in first_row:
                reasons[i].append(
                    f"duplicated sequence_id {sample.sequence_id} (first on data row {first_row[sample.sequence_id]})"
                )
            else:
                first_row[sample.sequence_id] = data_rows[i]
        if sign_map is not None and sample.sign and sample.sign not in sign_map:
            reasons[i].append(f"unknown sign {sample.sign!r} (not in {SIGN_MAP_JSON})")

    infos = map_files(inspect_file, [s.path for s in samples], workers, progress, desc="validate")
    ordered: list[tuple[int, ValidationRow]] = [(r.line, _rejected_row(r)) for r in rejected]
    for sample, line, why, info in zip(samples, lines, reasons, infos, strict=True):
        why += [p for p in (info.problem, info.value_problem) if p]
        row = ValidationRow(
            path=_relative(sample.path, data_dir),
            participant_id=sample.participant_id,
            sequence_id=sample.sequence_id,
            sign=sample.sign,
            status=INVALID if why else VALID,
            reason="; ".join(why),
            frames=info.frames if info.error is None else None,
        )
        ordered.append((line, row))
    report.rows += [row for _, row in sorted(ordered, key=lambda item: item[0])]
    return report
