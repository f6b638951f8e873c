"""pose-format MediaPipe Holistic files (``.pose``) -> Kaggle layout: ``islr import pose SRC --out DATASET``.

Options: ``[--sign NAME] [--participant-id N]``.

SRC is a ``.pose`` file or a folder searched recursively. Each file's first person becomes
DATASET/train_landmark_files/<participant>/<sequence>.parquet in the exact Kaggle schema (the
components POSE_LANDMARKS, FACE_LANDMARKS, LEFT_HAND_LANDMARKS and RIGHT_HAND_LANDMARKS; x and y
divided by the header's width and height, points with confidence 0 written as NaN), plus its
row in train.csv and its sign in the sign map; DATASET may already exist (it is extended). The
sign is ``--sign``, else the file's sub-folder under SRC, else its name up to the first ``_``
(``hello_S18.pose`` -> ``hello``); the sequence id is the CRC-32 of ``<participant>/<relative
path>`` (importing again replaces the same rows). Files that are unreadable, not Holistic, too
long for Kaggle's int16 frame column or without any hand are reported and skipped (exit code 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``islr import pose``."""
    parser.add_argument("src", type=Path, metavar="SRC", help="a .pose file or a folder of them")
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to write (created or extended)")
    parser.add_argument("--sign", help="sign of every file (default: sub-folder or file-name prefix)")
    parser.add_argument("--participant-id", type=int, default=0, help="participant id written to train.csv (default 0)")


def run(args: argparse.Namespace) -> int:
    """Import every file, one line each, then a summary."""
    import numpy as np

    from islr.data.kaggle import LANDMARK_DIR, write_landmarks
    from islr.data.kaggle_writer import TrainRow, add_rows
    from islr.data.landmarks import HANDS
    from islr.data.pose_files import list_pose_files, read_pose
    from islr.errors import DataError
    from islr.inference.extract import MAX_FRAMES, sequence_id_for, sign_for

    root, out = args.src, args.out
    files = list_pose_files(root)
    if not files:
        raise DataError(root, "no .pose files in this folder")
    rows: list[TrainRow] = []
    skipped: list[tuple[Path, str]] = []
    used: set[int] = set()
    for path in files:
        relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            landmarks = read_pose(path)
            if len(landmarks) > MAX_FRAMES:
                raise DataError(path, f"{len(landmarks)} frames exceed the Kaggle int16 frame column")
            if not len(landmarks) or np.isnan(landmarks[:, HANDS, 0]).all():
                raise DataError(path, f"no hand in any of its {len(landmarks)} frames")
        except DataError as exc:
            skipped.append((path, exc.reason))
            print(f"skipped {path}: {exc.reason}", file=sys.stderr)
            continue
        sequence_id = sequence_id_for(args.participant_id, relative)
        while sequence_id in used:  # a CRC collision inside one run: take the next free id
            sequence_id += 1
        used.add(sequence_id)
        parquet = out / LANDMARK_DIR / str(args.participant_id) / f"{sequence_id}.parquet"
        write_landmarks(parquet, landmarks)
        row = TrainRow(parquet.relative_to(out).as_posix(), args.participant_id, sequence_id,
                       sign_for(path, root, args.sign))
        rows.append(row)
        print(f"{path} -> {parquet}  sign {row.sign!r}  {len(landmarks)} frames", flush=True)
    if rows:
        add_rows(out, rows)
    print(f"{len(rows)} pose files written to {out}, {len(skipped)} skipped; check with: islr validate {out}")
    return 1 if skipped else 0
