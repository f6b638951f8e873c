"""Find sequences to leave out (unreadable, too short, length outliers, long hand gaps): a report.

Writes the exclusion CSV (``path, participant_id, sequence_id, sign, reason``; give it to
training as ``data.exclusions``) and a per-sign length statistics CSV. Raw files and train.csv
are only read: nothing is deleted or rewritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``islr clean``."""
    parser.add_argument("data_dir", type=Path, help="folder with train.csv and train_landmark_files/")
    parser.add_argument("--out", type=Path, default=Path("exclusions.csv"),
                        help="exclusion CSV (default ./exclusions.csv; never inside DATA_DIR)")
    parser.add_argument("--stats", type=Path, default=None,
                        help="per-sign length statistics CSV (default: length_stats.csv beside --out)")
    parser.add_argument("--min-frames", type=int, default=8, help="shorter sequences are excluded (default 8)")
    parser.add_argument("--max-no-hand-run", type=int, default=4,
                        help="exclude sequences with more consecutive frames without a hand "
                             "(default 4, the seed's SKIP_CONSECUTIVE_ZEROS; negative disables)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default 0 = all cores)")


def run(args: argparse.Namespace) -> int:
    """Inspect every file, write both CSVs, print a summary."""
    from islr.data.cleaning import (
        RULES,
        exclusion_flags,
        find_exclusions,
        inspect_dataset,
        is_inside,
        length_stats,
        write_exclusions,
    )
    from islr.errors import ConfigError

    stats_path = args.stats or args.out.with_name("length_stats.csv")
    for target in (args.out, stats_path):
        if is_inside(target, args.data_dir):
            raise ConfigError(f"{target}: refusing to write inside the data folder {args.data_dir}")
    table = inspect_dataset(args.data_dir, workers=args.workers, progress=sys.stderr.isatty())
    stats = length_stats(table)
    no_hand = args.max_no_hand_run if args.max_no_hand_run >= 0 else None
    excluded = find_exclusions(args.data_dir, args.min_frames, no_hand, table=table)
    write_exclusions(excluded, args.out)
    stats_path.parent.mkdir(parents=True, exist_ok=True)
    stats.to_csv(stats_path, index=False)
    print(f"{len(excluded)} of {len(table)} sequences excluded, {len(table) - len(excluded)} kept "
          f"(exclusions: {args.out}; length stats for {len(stats)} signs: {stats_path})")
    flags = exclusion_flags(table, stats, args.min_frames, no_hand)
    for rule, meaning in RULES.items():
        if rule == "no_hand_run" and no_hand is None:
            continue
        text = meaning.format(min_frames=args.min_frames, max_no_hand_run=no_hand)
        print(f"  {int(flags[rule].sum()):6d}  {text}")
    return 0

