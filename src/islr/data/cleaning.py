"""Sequence-length statistics and the seed's exclusion rules, as a report (nothing is deleted).

The seed deleted files and rewrote train.csv; here the outcome is an exclusion CSV
(``path, participant_id, sequence_id, sign, reason``) that the data pipeline reads through
``DataConfig.exclusions`` (:func:`read_exclusions`). Raw files are only ever opened for reading.

Rules (the seed's ``remove_unusable_data`` and ``remove_outlier_or_missing_data``):

* the file is missing or unreadable, all NaN, or has no hand in any frame;
* fewer than ``min_frames`` frames (the seed's ``MIN_SEQUEENCES = 8``);
* a length outlier of its sign: below median / 3, or above mean + 2 * std (population std; the
  seed says "two standard deviations away from the mean": the short side is median / 3's job);
* more than ``max_no_hand_run`` consecutive frames without any hand (``SKIP_CONSECUTIVE_ZEROS = 4``).

Per-sign statistics are taken over every readable sequence of the sign, before any exclusion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from islr.data.kaggle import read_train_csv
from islr.data.validate import FileInfo, inspect_file, map_files
from islr.errors import DataError
from islr.fileio import atomic_path

EXCLUSION_COLUMNS = ("path", "participant_id", "sequence_id", "sign", "reason")
STATS_COLUMNS = ("sign", "count", "min", "max", "mean", "median", "std")


def inspect_dataset(data_dir: str | Path, workers: int = 0, progress: bool = True) -> pd.DataFrame:
    """One row per train.csv row: ids, ``frames``, ``no_hand_frames``, ``max_no_hand_run``, ``problem``.

    ``problem`` is empty for a usable file, else why it is unusable (missing, unreadable,
    all NaN, no hand anywhere); ``frames`` is 0 when the file cannot be read.
    """
    data_dir = Path(data_dir)
    samples = read_train_csv(data_dir)
    infos = map_files(inspect_file, [s.path for s in samples], workers, progress, desc="inspect")
    return pd.DataFrame(
        {
            "path": [str(s.path.relative_to(data_dir)) for s in samples],
            "participant_id": [s.participant_id for s in samples],
            "sequence_id": [s.sequence_id for s in samples],
            "sign": [s.sign for s in samples],
            "frames": [i.frames for i in infos],
            "no_hand_frames": [i.no_hand_frames for i in infos],
            "max_no_hand_run": [i.max_no_hand_run for i in infos],
            "readable": [i.error is None for i in infos],
            "problem": [_problem_text(i) for i in infos],
        }
    )


def _problem_text(info: FileInfo) -> str:
    if info.error == "file not found":
        return "missing file"
    if info.error:
        return f"unreadable file ({info.error})"
    return info.problem or ""


def length_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Per-sign frame counts of the readable rows of ``table`` (columns ``sign``, ``frames``).

    Returns columns ``sign, count, min, max, mean, median, std`` (std with ddof=0, as numpy's),
    sorted by sign. Rows with a ``readable`` column set to False are left out.
    """
    if "readable" in table.columns:
        table = table[table["readable"]]
    grouped = table.groupby("sign")["frames"]
    stats = grouped.agg(
        count="count",
        min="min",
        max="max",
        mean="mean",
        median="median",
        std=lambda x: float(np.std(x.to_numpy(dtype=np.float64))),
    )
    return stats.reset_index()[list(STATS_COLUMNS)].sort_values("sign", ignore_index=True)


#: Rule name -> what the flag means (the columns of :func:`exclusion_flags`; ``str.format``
#: fills in ``min_frames`` and ``max_no_hand_run``).
RULES = {
    "unusable": "missing or unreadable file, all NaN, or no hand in any frame",
    "too_short": "fewer than {min_frames} frames",
    "below_median_third": "shorter than a third of its sign's median length",
    "above_mean_2std": "longer than its sign's mean + 2 * std",
    "no_hand_run": "more than {max_no_hand_run} consecutive frames without a hand",
}


def exclusion_flags(
    table: pd.DataFrame,
    stats: pd.DataFrame,
    min_frames: int = 8,
    max_no_hand_run: int | None = 4,
) -> pd.DataFrame:
    """One boolean column per rule of :data:`RULES` for each row of an inspected table."""
    merged = table.merge(stats[["sign", "mean", "median", "std"]], on="sign", how="left")
    frames = merged["frames"].to_numpy()
    unusable = (merged["problem"].astype(str) != "").to_numpy()
    usable = ~unusable
    flags = {
        "unusable": unusable,
        "too_short": usable & (frames < min_frames),
        "below_median_third": usable & (frames < merged["median"].to_numpy() / 3),
        "above_mean_2std": usable & (frames > merged["mean"].to_numpy() + 2 * merged["std"].to_numpy()),
        "no_hand_run": np.zeros(len(merged), dtype=bool),
    }
    if max_no_hand_run is not None and max_no_hand_run >= 0:
        flags["no_hand_run"] = usable & (merged["max_no_hand_run"].to_numpy() > max_no_hand_run)
    return pd.DataFrame(flags, index=table.index)


def exclusion_reasons(
    table: pd.DataFrame,
    stats: pd.DataFrame,
    min_frames: int = 8,
    max_no_hand_run: int | None = 4,
) -> pd.Series:
    """The reasons (joined with ``"; "``, empty when kept) for each row of an inspected table."""
    flags = exclusion_flags(table, stats, min_frames, max_no_hand_run)
    merged = table[["sign"]].merge(stats[["sign", "mean", "median", "std"]], on="sign", how="left")
    third = merged["median"].to_numpy() / 3
    upper = (merged["mean"] + 2 * merged["std"]).to_numpy()
    frames, runs = table["frames"].to_numpy(), table["max_no_hand_run"].to_numpy()
    problems = table["problem"].astype(str).to_numpy()
    hits = {name: flags[name].to_numpy() for name in RULES}
    out = [""] * len(table)
    for i in np.flatnonzero(flags.to_numpy().any(axis=1)):  # only the excluded rows cost Python time
        texts = []
        if hits["unusable"][i]:
            texts.append(problems[i])
        if hits["too_short"][i]:
            texts.append(f"{frames[i]} frames < min_frames {min_frames}")
        if hits["below_median_third"][i]:
            texts.append(f"{frames[i]} frames < median/3 of its sign ({third[i]:.1f})")
        if hits["above_mean_2std"][i]:
            texts.append(f"{frames[i]} frames > mean+2*std of its sign ({upper[i]:.1f})")
        if hits["no_hand_run"][i]:
            texts.append(f"{runs[i]} consecutive frames without a hand > {max_no_hand_run}")
        out[i] = "; ".join(texts)
    return pd.Series(out, index=table.index, dtype=str)


def find_exclusions(
    data_dir: str | Path,
    min_frames: int = 8,
    max_no_hand_run: int | None = 4,
    workers: int = 0,
    progress: bool = True,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per excluded sequence: ``path, participant_id, sequence_id, sign, reason``.

    ``table`` (from :func:`inspect_dataset`) skips reading the files again. ``max_no_hand_run``
    None (or negative) disables the no-hand rule.
    """
    if table is None:
        table = inspect_dataset(data_dir, workers, progress)
    reasons = exclusion_reasons(table, length_stats(table), min_frames, max_no_hand_run)
    excluded = table.loc[reasons != "", list(EXCLUSION_COLUMNS[:-1])].copy()
    excluded["reason"] = reasons[reasons != ""]
    return excluded.reset_index(drop=True)


def write_exclusions(exclusions: pd.DataFrame, path: str | Path) -> Path:
    """Write an exclusion table as CSV with exactly :data:`EXCLUSION_COLUMNS`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        exclusions[list(EXCLUSION_COLUMNS)].to_csv(tmp, index=False)
    return path


def read_exclusions(path: str | Path) -> set[int]:
    """The ``sequence_id`` values listed in an exclusion CSV written by ``islr clean``."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(path, "exclusion file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "exclusion file is empty (expected at least a header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot parse CSV ({exc})") from None
    if "sequence_id" not in table.columns:
        raise DataError(path, f"no 'sequence_id' column; expected {list(EXCLUSION_COLUMNS)}")
    ids = pd.to_numeric(table["sequence_id"], errors="coerce")
    if ids.isna().any() or (ids % 1 != 0).any():
        raise DataError(path, "column 'sequence_id' must hold integers")
    return {int(v) for v in ids}


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` resolves to ``folder`` or somewhere below it (outputs must not go there)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True

