"""A full-size synthetic replica of a real train.csv: same participants, signs and counts.

``generate_replica(out_dir, like_csv)`` reads a Kaggle ``train.csv`` (for instance the full
competition metadata, 94,477 rows) and writes, in Kaggle layout, one synthetic recording for each
of its rows: the same ``participant_id``, ``sequence_id`` (so the same paths) and sign, hence the
same per-(participant, sign) counts, signer-grouped folds and class balance. The landmarks come
from the learnable generator of :mod:`islr.data.synthetic` (one motion per sign, one style per
participant); only the structure is real.

Sequence lengths are drawn from the frame counts measured on genuine files, shipped as data in
:mod:`islr.data.real_lengths` (a histogram ``{frames: files}``, written by
:func:`write_length_module` from :func:`measure_lengths`; see that module's header for the source
and the command that rebuilt it). Each recording's length is an independent draw, deterministic
in ``seed`` and the row's position.

``fraction`` < 1 keeps a stratified sample: each (participant, sign) cell keeps
``fraction * count`` rows, rounded stochastically (``floor`` plus one with probability equal to
the remainder, so the total is ``fraction * N`` on average and no cell is systematically
rounded away); a sign or a participant left with no row then gets one row from its largest cell,
so the replica always has every sign and every participant of the CSV. Cells may be empty at
small fractions: keeping one row per cell would make the smallest replica of the full CSV
thousands of files whatever the fraction asked.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from islr.data.kaggle import SIGN_MAP_JSON, TRAIN_CSV, Sample, parquet_frame_count, read_train_table
from islr.data.synthetic import (
    _face_template,
    _pose_template,
    _sign_specs,
    _signers,
    _World,
    _write_jobs,
)
from islr.errors import ConfigError, DataError
from islr.fileio import atomic_path, atomic_write_text

__all__ = [
    "ReplicaInfo",
    "draw_lengths",
    "generate_replica",
    "length_histogram",
    "measure_lengths",
    "plan_replica",
    "write_length_module",
]


@dataclass
class ReplicaInfo:
    """Summary of a written replica."""

    out_dir: Path
    files: int
    signs: list[str]
    participants: list[int]
    lengths: tuple[int, int]
    """Shortest and longest recording written (frames)."""


def length_histogram() -> dict[int, int]:
    """The shipped histogram ``{frames: number of genuine files}``."""
    from islr.data.real_lengths import LENGTH_HISTOGRAM

    return dict(LENGTH_HISTOGRAM)


def draw_lengths(n: int, seed: int, histogram: dict[int, int] | None = None) -> np.ndarray:
    """``n`` lengths (int64) drawn with replacement from ``histogram`` (default: the shipped one)."""
    histogram = histogram or length_histogram()
    values = np.array(sorted(histogram), dtype=np.int64)
    weights = np.array([histogram[v] for v in values], dtype=np.float64)
    rng = np.random.default_rng([seed, 5])
    return rng.choice(values, size=n, p=weights / weights.sum())


def plan_replica(samples: list[Sample], fraction: float = 1.0, seed: int = 0) -> list[Sample]:
    """The rows a replica writes, in CSV order (see the module docstring for the rounding)."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(samples)
    cells: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        cells[(s.participant_id, s.sign)].append(i)
    rng = np.random.default_rng([seed, 6])
    kept: set[int] = set()
    for key in sorted(cells):
        rows = cells[key]
        want = fraction * len(rows)
        take = int(np.floor(want)) + int(rng.random() < want - np.floor(want))
        kept.update(rng.choice(rows, size=take, replace=False).tolist())
    # Every sign and every participant keeps at least one row: one from its largest cell.
    for field_index in (1, 0):  # signs first, then participants (a sign row may cover one)
        present = {key[field_index] for key in cells if any(i in kept for i in cells[key])}
        for value in sorted({key[field_index] for key in cells} - present, key=str):
            largest = max((k for k in cells if k[field_index] == value), key=lambda k: (len(cells[k]), str(k)))
            kept.add(int(rng.choice(cells[largest])))
    return [samples[i] for i in sorted(kept)]


def _read_like(like_csv: Path) -> list[Sample]:
    table = read_train_table(like_csv.parent, like_csv.name)
    if table.rejected:
        first = table.rejected[0]
        raise DataError(like_csv, f"{len(table.rejected)} unusable rows; first: {first.describe()}")
    seen: set[tuple[int, int]] = set()
    for s in table.samples:
        if (s.participant_id, s.sequence_id) in seen:
            raise DataError(like_csv, f"sequence {s.sequence_id} of participant {s.participant_id} listed twice")
        seen.add((s.participant_id, s.sequence_id))
    return table.samples


def generate_replica(
    out_dir: str | Path,
    like_csv: str | Path,
    fraction: float = 1.0,
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
    sign_names: list[str] | None = None,
) -> ReplicaInfo:
    """Write a replica of ``like_csv`` to ``out_dir`` (train.csv, sign map, parquet files).

    ``sign_names`` orders the sign map (it must name every sign of the CSV); by default the signs
    are indexed alphabetically. ``workers`` processes write the files (0 = all cores); the output
    does not depend on it. Deterministic in ``seed``.
    """
    like_csv = Path(like_csv)
    samples = plan_replica(_read_like(like_csv), fraction, seed)
    signs = sorted({s.sign for s in samples})
    if sign_names is not None:
        missing = sorted(set(signs) - set(sign_names))
        if missing:
            raise ConfigError(f"the sign map lacks {len(missing)} signs of {like_csv}, e.g. {missing[:3]}")
        names = list(dict.fromkeys(sign_names))
    else:
        names = signs
    participants = sorted({s.participant_id for s in samples})
    people = _signers(len(participants), np.random.default_rng([seed, 3]))
    for who, pid in zip(people, participants, strict=True):
        who.participant_id = pid
    out_dir = Path(out_dir)
    world = _World(
        out_dir=out_dir,
        seed=seed,
        face=_face_template(np.random.default_rng([seed, 1])),
        pose=_pose_template(),
        specs=_sign_specs(len(names), np.random.default_rng([seed, 2])),
        people=people,
        names=names,
        min_frames=1,
        max_frames=10**6,
    )
    person = {pid: i for i, pid in enumerate(participants)}
    sign_index = {name: i for i, name in enumerate(names)}
    lengths = draw_lengths(len(samples), seed)
    jobs = [
        (k, person[s.participant_id], sign_index[s.sign], s.sequence_id, int(lengths[k]))
        for k, s in enumerate(samples)
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _run_with_progress(world, jobs, workers, progress)
    with atomic_path(out_dir / TRAIN_CSV) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "participant_id", "sequence_id", "sign"])
        writer.writerows(rows)
    atomic_write_text(out_dir / SIGN_MAP_JSON, json.dumps({name: i for i, name in enumerate(names)}))
    return ReplicaInfo(out_dir, len(rows), signs, participants, (int(lengths.min()), int(lengths.max())))


def _run_with_progress(world: _World, jobs: list[tuple[int, ...]], workers: int,
                       progress: bool) -> list[tuple[str, int, int, str]]:
    """Write every job in chunks, in worker processes when that pays; rows in job order."""
    from tqdm.auto import tqdm

    from islr.data.cache import _mp_context, default_workers
    from islr.progress import bars_enabled

    workers = workers or default_workers()
    chunk = max(1, min(32, len(jobs) // (4 * workers)))  # small enough to keep every worker busy
    parts = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    bar = tqdm(total=len(jobs), unit="file", desc="replica", disable=not bars_enabled(progress))
    done: list[list[tuple[str, int, int, str]]] = []
    try:
        if workers <= 1 or len(parts) < 2:
            for part in parts:
                done.append(_write_jobs(world, part))
                bar.update(len(part))
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as pool:
                # map keeps the order; it yields each chunk once it and those before it are done.
                for part, rows in zip(parts, pool.map(_write_jobs, [world] * len(parts), parts), strict=True):
                    done.append(rows)
                    bar.update(len(part))
    finally:
        bar.close()
    return [row for rows in done for row in rows]


def measure_lengths(data_dir: str | Path, keep: Iterable[tuple[int, int]] | None = None) -> list[int]:
    """Frames of every parquet file listed in ``data_dir``'s train.csv (from the parquet footers).

    ``keep`` restricts the count to those ``(participant_id, sequence_id)`` pairs.
    """
    table = read_train_table(data_dir)
    wanted = None if keep is None else set(keep)
    return [
        parquet_frame_count(s.path)
        for s in table.samples
        if wanted is None or (s.participant_id, s.sequence_id) in wanted
    ]


def write_length_module(path: str | Path, lengths: list[int], source: str) -> None:
    """Write :mod:`islr.data.real_lengths` (histogram and quantiles of ``lengths``) to ``path``."""
    values = np.asarray(lengths)
    if values.size == 0:
        raise ConfigError("no lengths to write")
    counts = dict(sorted(zip(*np.unique(values, return_counts=True), strict=True)))
    quantiles = {q: round(float(np.percentile(values, q)), 2) for q in (0, 5, 25, 50, 75, 95, 100)}
    histogram = ",\n".join(f"    {int(k)}: {int(v)}" for k, v in counts.items())
    text = (
        f'"""Frames per file measured on genuine asl-signs recordings (generated; do not edit).\n\n'
        f"{source}\n"
        f'"""\n\n'
        f"FILES = {values.size}\n"
        f"QUANTILES = {{{', '.join(f'{q}: {v}' for q, v in quantiles.items())}}}\n"
        f"LENGTH_HISTOGRAM = {{\n{histogram},\n}}\n"
    )
    atomic_write_text(Path(path), text)
