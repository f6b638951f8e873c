"""Frames from a camera index, a video file or a GIF, through OpenCV, with one clear error.

:func:`open_source` returns a :class:`FrameSource` that yields ``(index, time_s, frame_bgr)``;
a camera that does not open, a missing file or a file OpenCV cannot decode raises
:class:`~islr.errors.DeviceError` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from islr.errors import DeviceError

#: Suffixes taken as videos when a folder is scanned (GIFs decode through OpenCV too).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".gif")
DEFAULT_FPS = 30.0


def _quiet_opencv(cv2: Any) -> None:
    """OpenCV prints backend warnings for every failed open; the DeviceError says it once."""
    with contextlib.suppress(AttributeError):  # builds without the logging utils
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class FrameSource:
    """An opened camera or video; iterate for ``(index, time_s, frame_bgr)``.

    ``time_s`` is ``index / fps`` for files and wall-clock seconds since opening for cameras.
    """

    def __init__(self, capture: Any, name: str, is_camera: bool, first: np.ndarray | None = None):
        import cv2

        self.capture = capture
        self.name = name
        self.is_camera = is_camera
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else DEFAULT_FPS
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not is_camera else None
        self._first = first
        if first is not None:
            self.height, self.width = first.shape[:2]
        else:
            self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield frames until the source ends (or ``max_frames`` were read)."""
        started = time.perf_counter()
        index = 0
        while max_frames is None or index < max_frames:
            if self._first is not None:
                frame, self._first = self._first, None
            else:
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    return
            if frame.ndim == 2:  # some GIFs decode as grey
                import cv2

                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            stamp = time.perf_counter() - started if self.is_camera else index / self.fps
            yield index, stamp, frame
            index += 1

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        return self.frames()

    def close(self) -> None:
        self.capture.release()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_source(value: str | int | Path) -> int | Path:
    """``"0"`` -> camera 0; anything else is a path."""
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() else Path(text)


def open_camera(index: int) -> FrameSource:
    """Open camera ``index``; :class:`DeviceError` when it is absent, busy or gives no frame."""
    import cv2

    _quiet_opencv(cv2)
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        capture.release()
        raise DeviceError(f"camera {index} cannot be opened (not connected, busy, or no permission); "
                          "try another --camera index or use --video FILE")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise DeviceError(f"camera {index} opened but delivers no frames")
    return FrameSource(capture, f"camera {index}", True, first)


def open_video(path: str | Path) -> FrameSource:
    """Open a video file or GIF; :class:`DeviceError` when missing or not decodable."""
    import cv2

    _quiet_opencv(cv2)
    path = Path(path)
    if not path.exists():
        raise DeviceError(f"{path}: video file not found")
    if path.is_dir():
        raise DeviceError(f"{path}: is a folder, not a video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DeviceError(f"{path}: cannot be decoded as a video (unsupported format or corrupt file)")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise DeviceError(f"{path}: no decodable frame (corrupt or empty video)")
    return FrameSource(capture, str(path), False, first)


def open_source(source: str | int | Path) -> FrameSource:
    """A camera index (int or digit string) or a video path, opened."""
    target = parse_source(source)
    return open_camera(target) if isinstance(target, int) else open_video(target)


def list_videos(path: str | Path) -> list[Path]:
    """A video file as is, or every video under a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    return [path]
