"""A Python client for ``WS /ws/live`` that behaves like the page: for tests and the load benchmark.

:func:`stream_frames` sends JPEG frames at a fixed rate with at most ``max_in_flight`` frames
unanswered (a frame due while that many wait is skipped, as the page does with the
``max_in_flight`` of ``/api/config``) and records, per answered frame, the round-trip latency and
the top sign. :func:`clip_jpegs` turns a video file into the JPEG frames the page would send
(scaled to 640 pixels wide).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from islr.serve.session import encode_frame


def clip_jpegs(path: str | Path, width: int = 640, quality: int = 80) -> list[bytes]:
    """Every frame of a video as JPEG bytes, scaled down to ``width`` pixels (as the page sends them)."""
    import cv2

    from islr.inference.video import open_video

    out = []
    with open_video(path) as source:
        for _, _, frame in source.frames():
            if frame.shape[1] > width:
                height = round(frame.shape[0] * width / frame.shape[1])
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                out.append(data.tobytes())
    return out


@dataclass
class StreamStats:
    """What one streamed session saw."""

    sent: int = 0
    skipped: int = 0
    """Frames not sent because ``max_in_flight`` frames were unanswered (the page's behaviour)."""
    dropped: int = 0
    """Frames the server dropped for a newer one."""
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    top1: Counter[str] = field(default_factory=Counter)
    drawn: int = 0
    """Answers with landmarks to draw."""
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    @property
    def majority(self) -> str | None:
        return self.top1.most_common(1)[0][0] if self.top1 else None


async def stream_frames(
    url: str, frames: list[bytes], count: int, fps: float = 15.0, max_in_flight: int = 1,
    keep_messages: bool = False, drain_s: float = 10.0, until_predictions: int | None = None,
) -> StreamStats:
    """Offer ``count`` frames (cycling through ``frames``) at ``fps`` to ``url``; wait for the answers.

    ``until_predictions``: stop offering once that many answers carried a prediction (``count``
    then only bounds the time: ``count / fps`` seconds).
    """
    from websockets.asyncio.client import connect

    stats = StreamStats()
    in_flight: dict[int, float] = {}
    async with connect(url, max_size=2**22) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise RuntimeError(f"server refused the session: {ready}")

        async def receive() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                now = time.perf_counter()
                for dropped in msg.get("dropped_ids", []):
                    in_flight.pop(dropped, None)
                    stats.dropped += 1
                sent_at = in_flight.pop(msg.get("id"), None)
                if msg.get("type") == "error":
                    stats.errors += 1
                    continue
                if sent_at is not None:
                    stats.latencies_ms.append((now - sent_at) * 1000)
                if msg.get("top"):
                    stats.top1[msg["top"][0]["sign"]] += 1
                if any(msg.get("landmarks", {}).values()):
                    stats.drawn += 1
                if keep_messages:
                    stats.messages.append(msg)

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        for i in range(count):
            if until_predictions is not None and sum(stats.top1.values()) >= until_predictions:
                break
            await asyncio.sleep(max(0.0, start + i / fps - time.perf_counter()))
            if len(in_flight) >= max_in_flight:
                stats.skipped += 1
                continue
            frame_id = i + 1
            in_flight[frame_id] = time.perf_counter()
            await ws.send(encode_frame(frame_id, frames[i % len(frames)]))
            stats.sent += 1
        deadline = time.perf_counter() + drain_s
        while in_flight and time.perf_counter() < deadline and not reader.done():
            await asyncio.sleep(0.02)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    return stats
