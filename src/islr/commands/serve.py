"""Recognise signs in the browser: ``islr serve MODEL [--host 127.0.0.1] [--port 8000]``.

One page at ``http://HOST:PORT/``: the webcam with the skeleton and the live top-3 (the
``islr live`` sliding window, computed on the server), and an upload box for a video (overall
top-5 and per-window predictions on a timeline). MODEL is anything ``islr predict`` takes.
JSON API: ``GET /health``, ``GET /api/config``, ``POST /api/predict`` (multipart field ``file``),
``WS /ws/live``. Browsers allow the camera only in a secure context: http://127.0.0.1 or
http://localhost, or https.
"""

from __future__ import annotations

import argparse
import os
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="run directory, ensemble, .onnx or .tflite file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--sign-map", help="sign -> index JSON giving the displayed sign names (default: the model's)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest video upload (default 50)")
    parser.add_argument("--max-upload-frames", type=int, default=3600, help="frames of an upload that are read (default 3600)")
    parser.add_argument("--window", type=int, default=32, help="frames in the sliding window (default 32)")
    parser.add_argument("--min-hand-frames", type=int, default=8, help="hand frames needed for a prediction (default 8)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability to accept the top sign (default 0.5)")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second the page sends (default 15)")
    parser.add_argument("--max-sessions", type=int, default=8, help="camera sessions at once (default 8)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="threads for MediaPipe and the model (default: cores, at most 4)")
    parser.add_argument("--task-model", help="HolisticLandmarker .task file (default: legacy offline Holistic)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="for a run directory")


def settings_from(args: argparse.Namespace):
    """ServeSettings from the flags; :class:`ConfigError` for values out of range."""
    from islr.errors import ConfigError
    from islr.serve.app import ServeSettings
    from islr.serve.session import LiveSettings

    checks = [("--port", 0 <= args.port <= 65535), ("--max-upload-mb", args.max_upload_mb > 0),
              ("--max-upload-frames", args.max_upload_frames >= 1), ("--fps", 0 < args.fps <= 60),
              ("--max-sessions", args.max_sessions >= 1), ("--workers", args.workers >= 1)]
    for flag, ok in checks:
        if not ok:
            raise ConfigError(f"{flag} out of range: {getattr(args, flag[2:].replace('-', '_'))}")
    live = LiveSettings(window=args.window, min_hand_frames=args.min_hand_frames, threshold=args.threshold,
                        fps=args.fps, task_model=args.task_model)
    return ServeSettings(max_upload_mb=args.max_upload_mb, max_upload_frames=args.max_upload_frames,
                         max_sessions=args.max_sessions, workers=args.workers, live=live)


def run(args: argparse.Namespace) -> int:
    from islr.errors import DeviceError
    from islr.inference.exported import load_predictor
    from islr.inference.live import LiveRecognizer

    try:
        import uvicorn

        from islr.serve.app import SharedPredictor, create_app, load_sign_names
    except ImportError as exc:
        raise DeviceError(f"the web server is not installed ({exc}); pip install 'islr[serve]'") from None

    settings = settings_from(args)
    predictor = load_predictor(args.model, args.checkpoint, sign_map=args.sign_map)
    names = load_sign_names(args.sign_map, predictor.num_classes) if args.sign_map else None
    shared = SharedPredictor(predictor, names)
    LiveRecognizer(shared, window=settings.live.window, min_hand_frames=settings.live.min_hand_frames,
                   threshold=settings.live.threshold)  # checks the window flags before the server starts
    app = create_app(shared, str(args.model), settings)
    print(f"islr serve: http://{args.host}:{args.port}/  ({args.model}, {shared.num_classes} signs, "
          f"{settings.workers} workers)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=8 * 2**20)
    return 0
