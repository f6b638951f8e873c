"""Live recognition: Holistic landmarks of each frame -> sliding window -> the file predictor.

:class:`LiveRecognizer` holds the last ``window`` frames (with or without hands, as a parquet
file would) and predicts once at least ``min_hand_frames`` of them show a hand; the sequence
goes through the very same :meth:`~islr.inference.predictor.BasePredictor.logits` as a file, so
the preprocessing is the one the model was trained with. A prediction is *accepted* when its
top probability reaches ``threshold``.

Mirroring: the Kaggle recordings are not mirrored (a right-handed signer's dominant hand is
``right_hand``, seen on the left of the image), and neither are the frames OpenCV delivers from a
camera: they are what the sensor sees, exactly like the frames of a video file. So a camera and a
video take the very same path, unmirrored. Only input that really is mirrored (a clip recorded
from a selfie preview) needs ``mirror``, opt-in for any source: every frame is flipped back before
prediction, ``x -> 1 - x`` with every left/right landmark pair swapped
(:data:`islr.data.landmarks.FULL_MIRROR`, hands included).

:func:`run_live` drives a camera or video through it, drawing the skeleton, the top-3 signs and
the fps, showing a window and/or writing an annotated video and JSON lines. The window of a camera
is shown mirrored, as people expect of a preview (``mirror_preview``); that flip is for display
only and never reaches the landmarks, the predictions or the written video.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from islr.data.landmarks import (
    FULL_MIRROR,
    HAND_COUNT,
    HAND_EDGES,
    LEFT_HAND_START,
    LIPS,
    POSE_EDGES,
    POSE_START,
    RIGHT_HAND_START,
    ROWS_PER_FRAME,
)
from islr.errors import ConfigError, DeviceError
from islr.inference.holistic import HolisticExtractor, has_hand
from islr.inference.predictor import BasePredictor, Prediction, top_k_of
from islr.inference.video import FrameSource

WINDOW_NAME = "islr live (q to quit)"
NO_DISPLAY = "no display to open a window on; use --no-window (with --out and/or --json)"


def mirror_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Horizontally flip ``(..., 543, 3)`` landmarks: ``x -> 1 - x`` and left/right rows swapped."""
    out = np.array(np.asarray(landmarks, dtype=np.float32)[..., FULL_MIRROR, :], copy=True)
    out[..., 0] = 1.0 - out[..., 0]
    return out


@dataclass
class LiveResult:
    """One prediction of the live path."""

    frame: int
    time_s: float
    logits: np.ndarray
    top: Prediction
    sign: str | None
    """The top sign when its probability reaches the threshold, else None."""
    hand_frames: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "time_s": round(self.time_s, 3),
            "top": [{"sign": s, "probability": round(p, 6)} for s, p in zip(self.top.signs, self.top.probabilities, strict=True)],
            "sign": self.sign,
            "hand_frames": self.hand_frames,
        }


class LiveRecognizer:
    """Sliding window over the last ``window`` frames; predicts when enough of them show a hand."""

    def __init__(
        self,
        predictor: BasePredictor,
        window: int = 32,
        min_hand_frames: int = 8,
        threshold: float = 0.5,
        mirror: bool = False,
        top_k: int = 3,
    ):
        if window < 1:
            raise ConfigError(f"--window must be >= 1, got {window}")
        if not 1 <= min_hand_frames <= window:
            raise ConfigError(f"--min-hand-frames must be between 1 and --window ({window}), got {min_hand_frames}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--threshold must be a probability in [0, 1], got {threshold}")
        self.predictor = predictor
        self.window = window
        self.min_hand_frames = min_hand_frames
        self.threshold = threshold
        self.mirror = mirror
        self.top_k = top_k
        self._frames: deque[np.ndarray] = deque(maxlen=window)
        self._hands: deque[bool] = deque(maxlen=window)

    @property
    def hand_frames(self) -> int:
        """Frames with a hand in the current window."""
        return sum(self._hands)

    def reset(self) -> None:
        self._frames.clear()
        self._hands.clear()

    def window_array(self) -> np.ndarray:
        """The current window as raw ``(frames, 543, 3)`` (already un-mirrored when ``mirror``)."""
        if not self._frames:
            return np.zeros((0, ROWS_PER_FRAME, 3), np.float32)
        return np.stack(self._frames)

    def push(self, landmarks: np.ndarray, frame: int = 0, time_s: float = 0.0) -> LiveResult | None:
        """Add one ``(543, 3)`` frame as Holistic gave it; a prediction when enough hand frames were seen."""
        landmarks = np.asarray(landmarks, dtype=np.float32)
        if landmarks.shape != (ROWS_PER_FRAME, 3):
            raise ValueError(f"expected one frame of shape ({ROWS_PER_FRAME}, 3), got {landmarks.shape}")
        if self.mirror:
            landmarks = mirror_landmarks(landmarks)
        self._frames.append(landmarks)
        self._hands.append(has_hand(landmarks))
        hands = self.hand_frames
        if hands < self.min_hand_frames:
            return None
        logits = np.asarray(self.predictor.logits(self.window_array()), np.float32)
        top = top_k_of(logits, self.predictor.sign_names, self.top_k, f"frame {frame}")
        sign = top.signs[0] if top.probabilities[0] >= self.threshold else None
        return LiveResult(frame, time_s, logits, top, sign, hands)


# -- drawing -------------------------------------------------------------------------------------
LEFT_COLOUR, RIGHT_COLOUR, POSE_COLOUR, FACE_COLOUR = (255, 160, 0), (0, 140, 255), (200, 200, 200), (120, 220, 120)


def _pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([points[:, 0] * width, points[:, 1] * height], axis=1)


def _draw_bones(image: np.ndarray, points: np.ndarray, bones: tuple[tuple[int, int], ...], colour: tuple[int, int, int]) -> None:
    import cv2

    h, w = image.shape[:2]
    if np.isnan(points[:, :2]).all():
        return
    px = _pixels(points, w, h)
    for a, b in bones:
        if np.isfinite(px[[a, b]]).all():
            cv2.line(image, tuple(int(v) for v in px[a]), tuple(int(v) for v in px[b]), colour, 2, cv2.LINE_AA)
    for p in px:
        if np.isfinite(p).all():
            cv2.circle(image, (int(p[0]), int(p[1])), 3, colour, -1, cv2.LINE_AA)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    import cv2

    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x - 3, y - th - 4), (x + tw + 3, y + base + 2), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def preview_image(frame: np.ndarray, landmarks: np.ndarray, result: LiveResult | None, fps: float,
                  status: str = "", mirror: bool = False) -> np.ndarray:
    """A copy of ``frame`` with the overlay, flipped left-right when ``mirror`` (display only).

    The skeleton is drawn at ``x -> 1 - x`` on the flipped image (rows are not swapped: each hand
    keeps its colour) and the text is drawn after the flip, so it stays readable.
    """
    import cv2

    if not mirror:
        return draw_overlay(frame.copy(), landmarks, result, fps, status)
    flipped = np.array(landmarks, dtype=np.float32, copy=True)
    flipped[:, 0] = 1.0 - flipped[:, 0]
    return draw_overlay(cv2.flip(frame, 1), flipped, result, fps, status)


def draw_overlay(image: np.ndarray, landmarks: np.ndarray, result: LiveResult | None, fps: float,
                 status: str = "") -> np.ndarray:
    """Draw the skeleton of ``landmarks`` (image coordinates), the top signs and the fps, in place."""
    import cv2

    h, w = image.shape[:2]
    _draw_bones(image, landmarks[POSE_START : POSE_START + 33], POSE_EDGES, POSE_COLOUR)
    _draw_bones(image, landmarks[LEFT_HAND_START : LEFT_HAND_START + HAND_COUNT], HAND_EDGES, LEFT_COLOUR)
    _draw_bones(image, landmarks[RIGHT_HAND_START : RIGHT_HAND_START + HAND_COUNT], HAND_EDGES, RIGHT_COLOUR)
    lips = _pixels(landmarks[LIPS], w, h)
    for p in lips[np.isfinite(lips).all(axis=1)]:
        cv2.circle(image, (int(p[0]), int(p[1])), 1, FACE_COLOUR, -1)
    scale = max(0.4, min(h, w) / 700)
    step = int(30 * scale) + 6
    y = step
    if result is not None:
        for rank, (sign, p) in enumerate(zip(result.top.signs, result.top.probabilities, strict=True)):
            accepted = rank == 0 and result.sign is not None
            colour = (0, 255, 0) if accepted else (255, 255, 255)
            _text(image, f"{sign} {p:.2f}", (8, y), scale * (1.3 if rank == 0 else 1.0), colour)
            y += step
    if status:
        _text(image, status, (8, y), scale * 0.8, (0, 200, 255))
    _text(image, f"{fps:.1f} fps", (max(8, w - int(130 * scale)), step), scale * 0.8, (255, 255, 255))
    return image


# -- the loop ------------------------------------------------------------------------------------
@dataclass
class LiveSummary:
    """Counts of one :func:`run_live` session."""

    frames: int = 0
    hand_frames: int = 0
    predictions: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    last: LiveResult | None = None
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def can_show_window() -> bool:
    """False on Linux without a display (an OpenCV window there aborts the process instead of raising)."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_writer(path: str | Path, fps: float, width: int, height: int) -> Any:
    """An mp4 (``mp4v``) VideoWriter; :class:`DeviceError` when OpenCV cannot write there."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (int(width), int(height)))
    if not writer.isOpened():
        raise DeviceError(f"{path}: cannot write a video here (OpenCV has no encoder for it)")
    return writer


def run_live(
    source: FrameSource,
    recognizer: LiveRecognizer,
    extractor: HolisticExtractor,
    show: bool = True,
    out: str | Path | None = None,
    json_path: str | Path | None = None,
    max_frames: int | None = None,
    log: TextIO | None = None,
    mirror_preview: bool | None = None,
) -> LiveSummary:
    """Run a source through Holistic and the recognizer until it ends, ``q``/Esc, or ``max_frames``.

    Camera and video frames take the same path. ``out``: annotated mp4 (one frame per input
    frame, at the source's fps, never mirrored); ``json_path``: one JSON line per prediction
    (:meth:`LiveResult.as_dict`); ``log``: a stream for accepted-sign changes;
    ``mirror_preview``: show the window flipped left-right (display only; None: for cameras).
    """
    import cv2

    if mirror_preview is None:
        mirror_preview = source.is_camera
    if show and not can_show_window():
        raise DeviceError(NO_DISPLAY)
    writer = open_writer(out, source.fps, source.width, source.height) if out else None
    lines = None
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        lines = open(json_path, "w")  # noqa: SIM115 - closed in the finally below
    summary = LiveSummary()
    started = time.perf_counter()
    fps = 0.0
    shown_sign: str | None = None
    try:
        for index, stamp, frame in source.frames(max_frames):
            tick = time.perf_counter()
            landmarks = extractor.process(frame, int(round(stamp * 1000)))
            result = recognizer.push(landmarks, index, stamp)
            summary.frames += 1
            summary.hand_frames += has_hand(landmarks)
            if result is not None:
                summary.predictions += 1
                summary.last = result
                if result.sign:
                    summary.accepted[result.sign] += 1
                if lines is not None:
                    lines.write(json.dumps(result.as_dict()) + "\n")
                if log is not None and result.sign and result.sign != shown_sign:
                    log.write(f"{stamp:7.2f}s  {result.sign} ({result.top.probabilities[0]:.2f})\n")
                shown_sign = result.sign or shown_sign
            status = "" if result is not None else f"waiting for hands {recognizer.hand_frames}/{recognizer.min_hand_frames}"
            elapsed = time.perf_counter() - tick
            fps = 1.0 / elapsed if fps == 0.0 else 0.9 * fps + 0.1 / max(elapsed, 1e-6)
            if writer is not None:
                writer.write(draw_overlay(frame.copy(), landmarks, result, fps, status))
            if show:
                try:
                    cv2.imshow(WINDOW_NAME, preview_image(frame, landmarks, result, fps, status, mirror_preview))
                    key = cv2.waitKey(1) & 0xFF
                except cv2.error as exc:
                    raise DeviceError(f"cannot show a window ({str(exc).strip().splitlines()[-1]}); use --no-window") from None
                if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) < 1:
                    break
    finally:
        summary.seconds = time.perf_counter() - started
        if writer is not None:
            writer.release()
        if lines is not None:
            lines.close()
        if show:
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
    return summary
