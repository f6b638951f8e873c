"""Add sequences to a Kaggle-layout dataset: ``train.csv`` rows and sign-map entries, atomically.

The same format as ``islr extract`` writes: a ``path,participant_id,sequence_id,sign`` header,
one row per sequence (a row with the same ``sequence_id`` is replaced, so importing the same
source again does not duplicate it), and a sign map extended with new signs at the next free
indices (existing indices never change). Both files are replaced atomically; the sign map is
written first so train.csv never names a sign the map lacks.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from islr.data.kaggle import SIGN_MAP_JSON, TRAIN_COLUMNS, TRAIN_CSV, read_sign_map
from islr.errors import DataError
from islr.fileio import atomic_write_text


@dataclass(frozen=True)
class TrainRow:
    """One row of train.csv; ``path`` relative to the dataset folder, POSIX separators."""

    path: str
    participant_id: int
    sequence_id: int
    sign: str


def read_rows(out: str | Path) -> list[dict[str, str]]:
    """The rows of ``out/train.csv`` as strings (empty list when the file does not exist)."""
    path = Path(out) / TRAIN_CSV
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in TRAIN_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(path, f"missing columns {missing}; cannot add rows to it")
        return list(reader)


def existing_sign_map(out: str | Path) -> dict[str, int] | None:
    """The dataset's sign map, or None when it has none yet."""
    return read_sign_map(out) if (Path(out) / SIGN_MAP_JSON).exists() else None


def _cell(value: object) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def write_sign_map(out: str | Path, sign_map: dict[str, int]) -> None:
    """Write ``sign_to_prediction_index_map.json`` (entries in index order), atomically."""
    ordered = dict(sorted(sign_map.items(), key=lambda kv: kv[1]))
    atomic_write_text(Path(out) / SIGN_MAP_JSON, json.dumps(ordered, indent=1) + "\n")


def add_rows(out: str | Path, rows: Iterable[TrainRow], sign_map: dict[str, int] | None = None) -> dict[str, int]:
    """Add ``rows`` to ``out/train.csv`` and their new signs to the sign map; return the map.

    ``sign_map`` is the map to start from when the dataset has none yet (default: empty, so the
    signs get indices in the order of ``rows``). Rows whose ``sequence_id`` is already listed
    replace the old row.
    """
    out = Path(out)
    rows = list(rows)
    current = existing_sign_map(out)
    mapping = dict(current if current is not None else (sign_map or {}))
    for row in rows:
        if row.sign not in mapping:
            mapping[row.sign] = len(mapping)
    new_ids = {str(r.sequence_id) for r in rows}
    kept = [r for r in read_rows(out) if str(r["sequence_id"]) not in new_ids]
    lines = [",".join(TRAIN_COLUMNS)]
    lines += [",".join(_cell(r[c]) for c in TRAIN_COLUMNS) for r in kept]
    lines += [",".join(_cell(getattr(r, c)) for c in TRAIN_COLUMNS) for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    if mapping != current:
        write_sign_map(out, mapping)
    atomic_write_text(out / TRAIN_CSV, "\n".join(lines) + "\n")
    return mapping
