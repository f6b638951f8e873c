"""Videos -> a Kaggle-layout dataset with MediaPipe Holistic: ``islr extract VIDEO_OR_DIR --out OUT``.

Options: ``[--sign NAME] [--participant-id N] [--task-model F.task] [--max-frames N] [--format pose]``.

Writes ``OUT/train_landmark_files/<participant>/<sequence>.parquet`` in the exact Kaggle schema,
adds rows to ``OUT/train.csv`` and new signs to the sign map, so ``islr validate OUT`` and
``islr train --data-dir OUT`` work. The sign is ``--sign``, else the video's sub-folder under
VIDEO_OR_DIR, else its file name up to the first ``_`` (``hello_S18.mp4`` -> ``hello``).
Videos that cannot be decoded or show no hand are reported and skipped (exit code 1).
``--format pose`` also writes each video's landmarks as a pose-format ``.pose`` file (MediaPipe
Holistic components, pixel coordinates, the video's frame rate) beside its parquet.
Runs offline with the legacy Holistic of mediapipe 0.10.21; ``--task-model`` uses the Tasks
HolisticLandmarker with that ``.task`` file instead.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", metavar="VIDEO_OR_DIR", help="a video/GIF file or a folder of them (searched recursively)")
    parser.add_argument("--out", required=True, help="dataset folder to write (created or extended)")
    parser.add_argument("--sign", help="sign of every video (default: sub-folder or file-name prefix)")
    parser.add_argument("--participant-id", type=int, default=0, help="participant id written to train.csv (default 0)")
    parser.add_argument("--task-model", help="HolisticLandmarker .task file (default: legacy offline Holistic)")
    parser.add_argument("--max-frames", type=int, help="read at most this many frames of each video")
    parser.add_argument("--format", choices=("parquet", "pose"), default="parquet",
                        help="pose: also write a pose-format .pose file (MediaPipe Holistic) beside each parquet")


def run(args: argparse.Namespace) -> int:
    from islr.errors import ConfigError
    from islr.inference.extract import extract_dataset

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")

    def show(item, video, reason):
        if item is None:
            print(f"skipped {video}: {reason}", file=sys.stderr)
        else:
            print(f"{video} -> {item.parquet}  sign {item.sign!r}  {item.frames} frames, "
                  f"hands in {item.hand_fraction:.0%}, {item.fps:.1f} frames/s", flush=True)

    report = extract_dataset(args.inputs, args.out, args.participant_id, args.sign, args.task_model,
                             args.max_frames, on_video=show, pose=args.format == "pose")
    frames = sum(i.frames for i in report.written)
    seconds = sum(i.seconds for i in report.written)
    print(f"{len(report.written)} videos written to {report.out} ({frames} frames, "
          f"{frames / seconds if seconds else 0:.1f} frames/s), {len(report.skipped)} skipped; "
          f"check with: islr validate {report.out}")
    return 1 if report.skipped else 0
