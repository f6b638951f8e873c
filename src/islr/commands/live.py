"""Recognise signs live from a camera or a video: ``islr live [--camera 0 | --video FILE] --model MODEL``.

MediaPipe Holistic on every frame, a sliding window over the last ``--window`` frames, and a
prediction once ``--min-hand-frames`` of them show a hand; the top sign is accepted at
``--threshold``. A window shows the skeleton, the top-3 signs and the fps (q or Esc quits);
``--no-window --out annotated.mp4 --json predictions.jsonl`` runs headless.

A camera goes through exactly the path of a video file: OpenCV delivers camera frames as the
sensor sees them (not mirrored), like the frames of a recording. Only the preview window of a
camera is shown mirrored (``--no-mirror-preview`` turns that off); the landmarks, the predictions,
``--out`` and ``--json`` never are. ``--mirror`` (off by default, for either source) is for input
that really is mirrored, e.g. a clip recorded from a selfie preview: it flips the landmarks back.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, help="camera index (default 0 when no --video)")
    source.add_argument("--video", help="video or GIF file instead of a camera")
    parser.add_argument("--model", required=True, help="run directory, .onnx or .tflite file")
    parser.add_argument("--sign-map", help="sign -> index JSON naming a model file's classes (Kaggle models)")
    parser.add_argument("--window", type=int, default=32, help="frames in the sliding window (default 32)")
    parser.add_argument("--min-hand-frames", type=int, default=8, help="hand frames needed for a prediction (default 8)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability to accept the top sign (default 0.5)")
    parser.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=False,
                        help="the input itself is mirrored (e.g. recorded from a selfie preview): flip the "
                             "landmarks back before prediction; off by default for cameras and videos alike")
    parser.add_argument("--mirror-preview", action=argparse.BooleanOptionalAction, default=None,
                        help="show the window mirrored, like a mirror (display only; default: on for --camera)")
    parser.add_argument("--no-window", action="store_true", help="do not open a window")
    parser.add_argument("--out", help="write the annotated video here (.mp4)")
    parser.add_argument("--json", help="write one JSON line per prediction here")
    parser.add_argument("--task-model", help="HolisticLandmarker .task file (default: legacy offline Holistic)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--tta", choices=("none", "mirror"),
                        help="mirror: average the logits of each sequence and its mirror (default: the model's own)")


def run(args: argparse.Namespace) -> int:
    from islr.errors import ConfigError, DeviceError
    from islr.inference.exported import load_predictor
    from islr.inference.holistic import HolisticExtractor
    from islr.inference.live import NO_DISPLAY, LiveRecognizer, can_show_window, run_live
    from islr.inference.video import open_camera, open_video

    if args.no_window and not (args.out or args.json):
        raise ConfigError("--no-window needs --out and/or --json (otherwise nothing is shown or written)")
    if not args.no_window and not can_show_window():
        raise DeviceError(NO_DISPLAY)
    mirror = bool(args.mirror)
    predictor = load_predictor(args.model, sign_map=args.sign_map)
    if args.tta:
        predictor.set_tta(args.tta)
    recognizer = LiveRecognizer(predictor, args.window, args.min_hand_frames, args.threshold, mirror)
    source = open_video(args.video) if args.video else open_camera(args.camera or 0)
    with source, HolisticExtractor(args.task_model) as extractor:
        print(f"{source.name}: {source.width}x{source.height} at {source.fps:.1f} fps, mirror {'on' if mirror else 'off'}, "
              f"{predictor.num_classes} signs", file=sys.stderr)
        summary = run_live(source, recognizer, extractor, show=not args.no_window, out=args.out,
                           json_path=args.json, max_frames=args.max_frames, log=sys.stdout,
                           mirror_preview=args.mirror_preview)
    common = ", ".join(f"{s} x{n}" for s, n in summary.accepted.most_common(3)) or "none"
    last = summary.last.top if summary.last else None
    print(f"{summary.frames} frames ({summary.hand_frames} with hands) at {summary.fps:.1f} fps; "
          f"{summary.predictions} predictions; accepted: {common}"
          + (f"; last top: {last.signs[0]} {last.probabilities[0]:.2f}" if last else ""))
    for path in (args.out, args.json):
        if path:
            print(f"wrote {path}")
    return 0
