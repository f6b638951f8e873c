"""MediaPipe keypoint folders (MP_Data: <sign>/<sequence>/<frame>.npy) -> Kaggle layout.

Usage: ``islr import mpdata SRC --out DATASET`` with the options ``--participant-id N``,
``--sign-alias FROM=TO`` (repeatable), ``--add-unknown-signs``, ``--sign-map kaggle|FILE.json``,
``--layout NAME``.

SRC is one MP_Data folder or a folder holding several (searched recursively; each folder laid out
as <sign>/<sequence>/<frame>.npy is one signer). Frame vectors of 1662 values (pose with
visibility, face, hands; the block order is detected), 258 (pose, hands) or 126 (hands) become
DATASET/train_landmark_files/<participant>/<sequence>.parquet in the exact Kaggle schema, plus
rows of train.csv and new signs of the sign map; DATASET may already exist (it is extended).

Participants: one per MP_Data folder, id = CRC-32 of "<parent folder>/<MP_Data folder>" (stable:
importing again replaces the same rows); ``--participant-id N`` sets it for a single folder.
Signs: folder names are matched to the 250 Kaggle signs (or the dataset's own sign names)
ignoring case, spaces, hyphens and underscores, plus common aliases (thanks -> thankyou,
goodbye -> bye, ...) and ``--sign-alias``. Unknown sign folders are listed and skipped unless
``--add-unknown-signs``. A new dataset's sign map holds the imported signs in Kaggle order, or the
full 250-sign Kaggle map with ``--sign-map kaggle`` (class indices as in the competition).
Bad sequences (ragged frame numbers, wrong vector length, unreadable file, no frames, no hand)
are reported with the file and skipped; the rest is imported. Exit code 1 when any was skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``islr import mpdata``."""
    from islr.data.mpdata import LAYOUTS

    parser.add_argument("src", type=Path, metavar="SRC", help="an MP_Data folder or a folder of several")
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to write (created or extended)")
    parser.add_argument("--participant-id", type=int, help="participant id (single MP_Data folder only)")
    parser.add_argument("--sign-alias", action="append", default=[], metavar="FROM=TO",
                        help="map sign folder FROM to sign TO (repeatable)")
    parser.add_argument("--add-unknown-signs", action="store_true",
                        help="add sign folders that match no known sign as new signs (default: skip them)")
    parser.add_argument("--sign-map", metavar="kaggle|FILE",
                        help="starting sign map of a new dataset: 'kaggle' (the 250 competition signs) "
                             "or a sign_to_prediction_index_map.json")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), help="force this frame layout (default: detect)")


def _base_map(value: str | None) -> dict[str, int] | None:
    from islr.data.kaggle import read_sign_map
    from islr.data.signs import KAGGLE_SIGNS
    from islr.errors import ConfigError

    if value is None:
        return None
    if value == "kaggle":
        return {name: i for i, name in enumerate(KAGGLE_SIGNS)}
    path = Path(value)
    if path.is_dir():
        return read_sign_map(path)
    if not path.is_file():
        raise ConfigError(f"--sign-map: {value} is neither 'kaggle' nor a sign map file")
    return _read_json_map(path)


def _read_json_map(path: Path) -> dict[str, int]:
    from islr.errors import DataError

    try:
        mapping = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"not a readable JSON sign map ({exc})") from None
    if not isinstance(mapping, dict) or sorted(mapping.values()) != list(range(len(mapping))):
        raise DataError(path, "expected a JSON object of sign -> index 0..n-1")
    return {str(k): int(v) for k, v in mapping.items()}


def run(args: argparse.Namespace) -> int:
    """Import, print one line per sequence, a per-signer summary and the skipped ones."""
    from islr.data.mpdata import import_mpdata
    from islr.data.signs import parse_aliases
    from islr.errors import ConfigError

    try:
        aliases = parse_aliases(args.sign_alias)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    def show(item, folder, reason):
        if item is None:
            print(f"skipped {reason}", file=sys.stderr)

    report = import_mpdata(args.src, args.out, args.participant_id, aliases, args.add_unknown_signs,
                           _base_map(args.sign_map), args.layout, on_sequence=show)
    for folder, count in report.unknown_signs.items():
        print(f"unknown sign {Path(folder).name!r} ({count} sequences) in {folder}: skipped; "
              "use --sign-alias or --add-unknown-signs", file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{'participant':>11} {'sequences':>9} {'frames':>7} {'hand frames':>11} {'skipped':>7}  {'layout':<15}  folder")
    for root in report.roots:
        print(f"{root.participant_id:>11} {root.sequences:>9} {root.frames:>7} {root.hand_frames:>11} "
              f"{root.skipped:>7}  {'+'.join(root.layouts) or '-':<15}  {root.root}")
    signs = sorted({item.sign for item in report.written})
    print(f"{len(report.written)} sequences written to {report.out} (signs: {', '.join(signs) or 'none'}), "
          f"{len(report.skipped)} skipped, {sum(report.unknown_signs.values())} with unknown signs; "
          f"check with: islr validate {report.out}")
    return 1 if report.skipped or report.unknown_signs else 0
