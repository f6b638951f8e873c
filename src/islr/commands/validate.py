"""Check a Kaggle-layout folder (train.csv, sign map, every parquet file) and write a report CSV.

Prints ``N valid, M invalid`` and where the report went; lists the invalid rows on stderr;
exits 1 when anything is invalid. The data folder is only read, never written. A train.csv row
with a non-integer id or a path that escapes DATA_DIR is listed by line and sequence id and its
file is never opened; a file with inf, -inf or ``|value| > 1000`` coordinates is listed with how
many. The report is written atomically: a full disk keeps the previous report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_REPORT = "validation_report.csv"
MAX_LISTED = 20


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``islr validate``."""
    parser.add_argument("data_dir", type=Path, help="folder with train.csv and train_landmark_files/")
    parser.add_argument("--report", type=Path, default=Path(DEFAULT_REPORT),
                        help=f"report CSV (default: ./{DEFAULT_REPORT}; never inside DATA_DIR)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default 0 = all cores)")


def run(args: argparse.Namespace) -> int:
    """Validate, write the report, print the summary; 1 if anything is invalid."""
    from islr.data.cleaning import is_inside
    from islr.data.validate import validate_dataset
    from islr.errors import ConfigError

    if is_inside(args.report, args.data_dir):
        raise ConfigError(f"{args.report}: refusing to write the report inside the data folder {args.data_dir}")
    report = validate_dataset(args.data_dir, workers=args.workers, progress=sys.stderr.isatty())
    path = report.write_csv(args.report)
    invalid = report.invalid
    for row in invalid[:MAX_LISTED]:
        print(f"invalid: {row.path}: {row.reason}", file=sys.stderr)
    if len(invalid) > MAX_LISTED:
        print(f"... and {len(invalid) - MAX_LISTED} more invalid rows (see {path})", file=sys.stderr)
    print(f"{report.summary()} (report: {path})")
    return 0 if report.ok else 1
