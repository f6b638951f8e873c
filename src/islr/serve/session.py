"""One browser camera = one :class:`LiveSession`: its own Holistic graph and sliding window.

The pipeline is the one of ``islr live``: each JPEG frame is decoded, goes through
:class:`~islr.inference.holistic.HolisticExtractor` (a graph per session, because it tracks from
frame to frame) and into :class:`~islr.inference.live.LiveRecognizer` (the same window, the same
predictor and preprocessing). Frames wait in a one-slot queue: a newer frame replaces a waiting
one (the older is *dropped* and reported back), so a slow server never falls behind the camera.

The MediaPipe and model work is synchronous and runs in a thread pool (:meth:`LiveSession.process`);
a per-session lock keeps one frame at a time in a graph and lets :meth:`close` wait for the last one.
Frames are never mirrored: the page mirrors only its preview.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from islr.data.landmarks import HAND_COUNT, LEFT_HAND_START, POSE_START, RIGHT_HAND_START
from islr.errors import DataError
from islr.inference.holistic import HolisticExtractor, has_hand
from islr.inference.live import LiveRecognizer, LiveResult
from islr.inference.predictor import BasePredictor

#: Bytes of the big-endian frame id in front of each image sent by the page.
HEADER = struct.Struct(">I")
#: Pose landmarks drawn by the page: face outline points, shoulders, arms and hips (0-24).
POSE_DRAWN = 25


@dataclass(frozen=True)
class LiveSettings:
    """The sliding window of ``islr live`` and the frame rate the page sends at."""

    window: int = 32
    min_hand_frames: int = 8
    threshold: float = 0.5
    top_k: int = 3
    fps: float = 15.0
    """Frames per second the page sends at most."""
    max_in_flight: int = 1
    """Frames the page sends before it waits for an answer (more are skipped at the camera): 1 keeps
    the latency at one frame's processing, instead of also waiting behind the previous frame."""
    task_model: str | None = None
    """HolisticLandmarker ``.task`` file; None: the bundled legacy Holistic."""


def encode_frame(frame_id: int, image: bytes) -> bytes:
    """The binary message the page sends: a 4-byte frame id, then the JPEG bytes."""
    return HEADER.pack(frame_id & 0xFFFFFFFF) + image


def decode_message(message: bytes) -> tuple[int, bytes]:
    """``(frame id, image bytes)`` of one binary message; :class:`DataError` when too short."""
    if len(message) <= HEADER.size:
        raise DataError(None, f"frame message of {len(message)} bytes: expected a 4-byte id and an image")
    return HEADER.unpack_from(message)[0], message[HEADER.size :]


def decode_image(data: bytes) -> np.ndarray:
    """A BGR image from JPEG/PNG bytes; :class:`DataError` when OpenCV cannot decode it."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise DataError(None, f"{len(data)} bytes that are not a JPEG or PNG image")
    return image


def _points(part: np.ndarray) -> list[list[float] | None] | None:
    """``[[x, y] or None, ...]`` rounded for the wire; None when the part was not detected."""
    xy = part[:, :2]
    if np.isnan(xy).all():
        return None
    return [None if np.isnan(p).any() else [round(float(p[0]), 4), round(float(p[1]), 4)] for p in xy]


def overlay_points(landmarks: np.ndarray) -> dict[str, Any]:
    """What the page draws of one ``(543, 3)`` frame: pose (first 25), left and right hand, x/y in [0, 1]."""
    return {
        "pose": _points(landmarks[POSE_START : POSE_START + POSE_DRAWN]),
        "left_hand": _points(landmarks[LEFT_HAND_START : LEFT_HAND_START + HAND_COUNT]),
        "right_hand": _points(landmarks[RIGHT_HAND_START : RIGHT_HAND_START + HAND_COUNT]),
    }


def top_list(result: LiveResult | None) -> list[dict[str, Any]]:
    """``[{"sign", "score"}, ...]`` of a live result (empty while the window waits for hands)."""
    if result is None:
        return []
    return [{"sign": s, "score": round(p, 6)} for s, p in zip(result.top.signs, result.top.probabilities, strict=True)]


class SessionClosed(Exception):
    """The session's graph was freed (the page went away) while a frame waited for it."""


@dataclass
class FrameJob:
    """One received frame waiting for the graph."""

    id: int
    image: bytes
    received: float = field(default_factory=time.perf_counter)


class LiveSession:
    """A camera stream: a latest-wins frame slot, a Holistic graph and a :class:`LiveRecognizer`."""

    def __init__(self, predictor: BasePredictor, settings: LiveSettings):
        self.settings = settings
        self.recognizer = LiveRecognizer(predictor, window=settings.window, min_hand_frames=settings.min_hand_frames,
                                         threshold=settings.threshold, top_k=settings.top_k)
        self.extractor: HolisticExtractor | None = None
        self.processed = 0
        self.dropped = 0
        self._pending: FrameJob | None = None
        self._dropped_ids: list[int] = []
        self._wake = asyncio.Event()
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._reset = False

    # -- event-loop side ---------------------------------------------------------------------
    def offer(self, job: FrameJob) -> FrameJob | None:
        """Queue a frame; returns the waiting frame it replaced (dropped), if any."""
        replaced, self._pending = self._pending, job
        if replaced is not None:
            self.dropped += 1
            self._dropped_ids.append(replaced.id)
        self._wake.set()
        return replaced

    async def next_job(self) -> FrameJob:
        """Wait for the newest frame."""
        while self._pending is None:
            self._wake.clear()
            await self._wake.wait()
        job, self._pending = self._pending, None
        return job

    def take_dropped(self) -> list[int]:
        """Ids dropped since the last call (the page stops waiting for them)."""
        ids, self._dropped_ids = self._dropped_ids, []
        return ids

    def request_reset(self) -> None:
        """Empty the sliding window before the next frame (a new signer or sign)."""
        self._reset = True

    # -- worker-thread side --------------------------------------------------------------------
    def open(self) -> None:
        """Start this session's Holistic graph (slow: run it in the pool)."""
        with self._lock:
            if self.extractor is None:
                self.extractor = HolisticExtractor(Path(self.settings.task_model) if self.settings.task_model else None)

    def process(self, job: FrameJob) -> dict[str, Any]:
        """Decode, extract, push into the window; the ``frame`` message for the page."""
        started = time.perf_counter()
        image = decode_image(job.image)
        with self._lock:
            if self.extractor is None:
                raise SessionClosed
            if self._reset:
                self.recognizer.reset()
                self._reset = False
            stamp = started - self._started
            landmarks = self.extractor.process(image, int(stamp * 1000))
            result = self.recognizer.push(landmarks, self.processed, stamp)
            self.processed += 1
            hand_frames = self.recognizer.hand_frames
        done = time.perf_counter()
        return {
            "type": "frame",
            "id": job.id,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "landmarks": overlay_points(landmarks),
            "hand": bool(has_hand(landmarks)),
            "top": top_list(result),
            "sign": result.sign if result is not None else None,
            "hand_frames": int(hand_frames),
            "window_frames": len(self.recognizer.window_array()),
            "queue_ms": round((started - job.received) * 1000, 1),
            "server_ms": round((done - job.received) * 1000, 1),
            "dropped": self.dropped,
        }

    def close(self) -> None:
        """Free the graph (waits for a frame still in the pool)."""
        with self._lock:
            extractor, self.extractor = self.extractor, None
        if extractor is not None:
            extractor.close()
