"""Load on `islr serve`: N concurrent camera sessions on loopback, per-frame latency and dropped frames.

Each session streams the JPEG frames of a real clip (``hello_S18.mp4`` or ``thankyou_S01.mp4``,
alternating, scaled to 640 pixels wide as the page sends them) at the page's rate, with the page's
rule of at most ``max_in_flight`` (1) frame unanswered (a frame due while one waits is *skipped* at
the camera); the
server may also *drop* a waiting frame for a newer one. Latency is measured per answered frame,
from sending its bytes to receiving its JSON answer. Each session must get its own clip's sign as
its majority top-1 (no cross-talk between sessions); a session answered too few frames with hands
to reach ``--min-hand-frames`` (an overloaded machine) is counted apart.

Baseline, in the same run: the same frames through a bare Holistic graph and the same sliding
window and predictor in this process, one frame after another (decode + Holistic + window).

    python benchmarks/serve_load.py [--model RUN] [--sessions 1,2,4,8] [--seconds 8] [--fps 15]

Without ``--model`` a small transformer is trained first on the genuine hello/thankyou files
(about 10 s). Run it on an otherwise idle machine for numbers worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ISLR_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIPS = {"hello": SHARED / "videos" / "hello_S18.mp4", "thankyou": SHARED / "videos" / "thankyou_S01.mp4"}
WARMUP = 3
"""Answers per session left out of the latency (the first frames of a fresh graph load its models)."""


def train_model(out: Path) -> Path:
    """A small transformer on the genuine hello/thankyou files (the test suite's configuration)."""
    import torch

    from islr.config import load_config
    from islr.training.pipeline import train

    torch.set_num_threads(1)
    items = {
        "data.data_dir": str(SHARED / "asl-signs"), "data.cache_dir": str(out / "cache"), "data.workers": 1,
        "data.valid_size": 0.2, "data.test_size": 0.2, "data.signs": "hello,thankyou",
        "train.framework": "torch", "train.epochs": 8, "train.batch_size": 32, "train.progress": False,
        "train.tensorboard": False, "train.lr": 3e-3, "train.seed": 0, "model.name": "transformer",
        "model.params": {"d_model": 32, "num_heads": 2, "dim_feedforward": 64, "num_layers": 1},
    }
    cfg = load_config(None, [f"{k}={v!r}" if isinstance(v, dict) else f"{k}={v}" for k, v in items.items()])
    train(cfg, out / "run")
    return out / "run"


def percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def baseline(model: Path, frames: list[bytes], repeats: int) -> tuple[float, float, float]:
    """p50, p95 ms and frames/s of decode + Holistic + window + predictor, one frame after another."""
    from islr.inference.exported import load_predictor
    from islr.inference.holistic import HolisticExtractor
    from islr.inference.live import LiveRecognizer
    from islr.serve.session import decode_image

    predictor = load_predictor(model)
    recognizer = LiveRecognizer(predictor, window=32, min_hand_frames=8, threshold=0.5)
    times = []
    with HolisticExtractor() as extractor:
        for i in range(repeats * len(frames)):
            start = time.perf_counter()
            landmarks = extractor.process(decode_image(frames[i % len(frames)]), i * 33)
            recognizer.push(landmarks, i)
            times.append((time.perf_counter() - start) * 1000)
    steady = times[WARMUP:]
    p50, p95 = percentiles(steady)
    return p50, p95, 1000 * len(steady) / sum(steady)


def peak_rss_mb(pid: int) -> float:
    """The server process's peak resident memory so far (Linux), else NaN."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(model: Path, workers: int, log: Path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "islr", "serve", str(model), "--port", str(port),
                                 "--workers", str(workers), "--max-sessions", "16"], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"islr serve did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url.replace("http://", "ws://") + "/ws/live", proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


async def load(url: str, clips: dict[str, list[bytes]], sessions: int, seconds: float, fps: float):
    from islr.serve.client import stream_frames

    signs = [list(clips)[i % len(clips)] for i in range(sessions)]
    started = time.perf_counter()
    stats = await asyncio.gather(*(stream_frames(url, clips[s], count=int(seconds * fps), fps=fps) for s in signs))
    return signs, stats, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run directory, .onnx or .tflite (default: train a small one)")
    parser.add_argument("--sessions", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=8.0, help="streaming time per load level")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second each session offers (the page's rate)")
    parser.add_argument("--workers", type=int, default=2, help="`islr serve --workers`")
    args = parser.parse_args()

    from islr.serve.client import clip_jpegs

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        model = Path(args.model) if args.model else train_model(Path(tmp))
        clips = {sign: clip_jpegs(path) for sign, path in CLIPS.items()}
        p50, p95, rate = baseline(model, clips["hello"] + clips["thankyou"], repeats=1)
        print(f"cores {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}; {args.fps:g} frames/s offered "
              f"per session for {args.seconds:g} s; latency leaves out the first {WARMUP} answers of each session\n")
        print("| sessions | right sign | offered | sent | skipped at camera | dropped by server | answered | answered/s (all) | p50 ms | p95 ms | server peak RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| baseline: in-process, 1 graph, back to back | | | | | | | {rate:.1f} | {p50:.0f} | {p95:.0f} | |")
        with server(model, args.workers, Path(tmp) / "serve.log") as (url, pid):
            for n in (int(s) for s in args.sessions.split(",")):
                signs, stats, wall = asyncio.run(load(url, clips, n, args.seconds, args.fps))
                latencies = [ms for s in stats for ms in s.latencies_ms[WARMUP:]]
                lp50, lp95 = percentiles(latencies)
                right = sum(s.majority == sign for sign, s in zip(signs, stats, strict=True))
                silent = sum(s.majority is None for s in stats)  # too few hand frames answered to predict
                offered = sum(s.sent + s.skipped for s in stats)
                answered = sum(s.answered for s in stats)
                print(f"| {n} | {right}/{n}{f' ({silent} without a prediction)' if silent else ''} | {offered} | {sum(s.sent for s in stats)} | {sum(s.skipped for s in stats)} | "
                      f"{sum(s.dropped for s in stats)} | {answered} | {answered / wall:.1f} | {lp50:.0f} | {lp95:.0f} | {peak_rss_mb(pid):.0f} |", flush=True)
                if right + silent != n:
                    print(json.dumps({sign: dict(s.top1) for sign, s in zip(signs, stats, strict=True)}), file=sys.stderr)


if __name__ == "__main__":
    main()
