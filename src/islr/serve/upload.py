"""Recognise an uploaded video: the ``islr extract`` landmarks, the overall top-k and every live window.

The whole video goes through a fresh Holistic graph exactly as :func:`islr.inference.extract.video_landmarks`
does for ``islr extract``; the overall answer is the predictor on the whole sequence (what
``islr predict`` gives for the extracted file), and the timeline is the ``islr live`` sliding
window pushed frame by frame (:class:`~islr.inference.live.LiveRecognizer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from islr.inference.extract import video_landmarks
from islr.inference.holistic import HolisticExtractor, has_hand
from islr.inference.live import LiveRecognizer
from islr.inference.predictor import BasePredictor
from islr.inference.video import open_video
from islr.serve.session import LiveSettings, top_list


class NoHandError(Exception):
    """The video decoded, but no frame shows a hand (nothing to recognise)."""


@dataclass
class VideoAnswer:
    """What ``POST /api/predict`` returns for one video."""

    top: list[dict[str, Any]]
    frames: int
    hand_frames: int
    fps: float
    truncated: bool
    windows: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"top": self.top, "frames": self.frames, "hand_frames": self.hand_frames, "fps": round(self.fps, 3),
                "truncated": self.truncated, "windows": self.windows}


def window_timeline(predictor: BasePredictor, landmarks: np.ndarray, fps: float, settings: LiveSettings) -> list[dict[str, Any]]:
    """The live sliding window over a whole sequence: one entry per frame that gave a prediction."""
    recognizer = LiveRecognizer(predictor, window=settings.window, min_hand_frames=settings.min_hand_frames,
                                threshold=settings.threshold, top_k=settings.top_k)
    windows = []
    for index, frame in enumerate(landmarks):
        result = recognizer.push(frame, index, index / fps)
        if result is not None:
            windows.append({"frame": index, "time_s": round(index / fps, 3), "top": top_list(result),
                            "sign": result.sign, "hand_frames": result.hand_frames})
    return windows


def recognise_video(
    path: str | Path, predictor: BasePredictor, settings: LiveSettings, top_k: int = 5, max_frames: int | None = None
) -> VideoAnswer:
    """Landmarks, overall top-k and the window timeline of one video file.

    Raises :class:`~islr.errors.DeviceError` when OpenCV cannot decode it and :class:`NoHandError`
    when no frame shows a hand.
    """
    with open_video(path) as source, HolisticExtractor(Path(settings.task_model) if settings.task_model else None) as extractor:
        fps = source.fps
        landmarks = video_landmarks(source, extractor, max_frames)
        truncated = max_frames is not None and len(landmarks) >= max_frames and any(True for _ in source.frames(1))
    frames = len(landmarks)
    hands = int(sum(has_hand(f) for f in landmarks))
    if hands == 0:
        raise NoHandError(f"no hand found in any of the {frames} frames")
    best = predictor.top_k(landmarks, min(top_k, predictor.num_classes))
    top = [{"sign": s, "score": round(p, 6)} for s, p in zip(best.signs, best.probabilities, strict=True)]
    return VideoAnswer(top, frames, hands, fps, truncated, window_timeline(predictor, landmarks, fps, settings))
