"""MediaPipe Holistic ``.pose`` files (the pose-format library) <-> Kaggle ``(frames, 543, 3)`` landmarks.

pose-format's Holistic layout has the components ``POSE_LANDMARKS`` (33 points),
``FACE_LANDMARKS`` (468, or 478 with the refined irises), ``LEFT_HAND_LANDMARKS`` and
``RIGHT_HAND_LANDMARKS`` (21 each) and ``POSE_WORLD_LANDMARKS`` (not used by Kaggle), each point
``X, Y, Z, C``: x and y in pixels of the header's width and height, z as MediaPipe gives it, and a
confidence C that is 0 where the part was not detected. Kaggle keeps x and y in [0, 1] and writes
NaN where a part is missing. Reading divides x and y by the width and height and turns C == 0
into NaN; writing does the reverse (a missing point gets zeros and C = 0, as pose-format's own
Holistic writer does). With ``width = height = 1`` the round trip keeps every float32 value; a
coordinate that is NaN on its own is stored as NaN under C = 1, so it survives too.

Reading needs only pose-format's core; writing uses its Holistic header (which imports
MediaPipe), so the files open in pose-format's tools (visualizer, normalisation) like its own.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from islr.data.landmarks import PART_SLOTS, ROWS_PER_FRAME
from islr.errors import DataError
from islr.fileio import atomic_write_bytes

#: pose-format Holistic component -> (first Kaggle row, points taken)
COMPONENTS: dict[str, tuple[int, int]] = {f"{part.upper()}_LANDMARKS": slot for part, slot in PART_SLOTS.items()}
POSE_SUFFIX = ".pose"
DEFAULT_FPS = 30.0


def _import_pose_format(path: Path) -> Any:
    try:
        import pose_format
    except ImportError:
        raise DataError(path, "reading .pose files needs pose-format (pip install 'islr[pose]')") from None
    return pose_format


def pose_to_landmarks(pose: Any, source: str | Path = "<pose>") -> np.ndarray:
    """Kaggle ``(frames, 543, 3)`` float32 landmarks (NaN where missing) of the first person of ``pose``."""
    header, body = pose.header, pose.body
    names = [c.name for c in header.components]
    if not set(names) & set(COMPONENTS):
        raise DataError(source, f"not a MediaPipe Holistic pose: components {names}; "
                                f"expected {', '.join(COMPONENTS)}")
    data = np.asarray(body.data.data if hasattr(body.data, "data") else body.data, dtype=np.float32)
    confidence = np.asarray(body.confidence, dtype=np.float32)
    if data.ndim != 4 or data.shape[1] < 1 or data.shape[-1] < 3:
        raise DataError(source, f"unexpected pose body shape {data.shape}; expected (frames, people, points, >=3)")
    width = float(header.dimensions.width) or 1.0
    height = float(header.dimensions.height) or 1.0
    out = np.full((data.shape[0], ROWS_PER_FRAME, 3), np.nan, np.float32)
    offset = 0
    for component in header.components:
        count = len(component.points)
        if component.name in COMPONENTS:
            start, size = COMPONENTS[component.name]
            if component.name == "FACE_LANDMARKS":
                # Named by mesh index ("0".."477"); reduced meshes keep their indices as names.
                indices = [int(p) for p in component.points]
                keep = [i for i, idx in enumerate(indices) if idx < size]
                rows = np.asarray([start + indices[i] for i in keep], dtype=np.int64)
                cols = offset + np.asarray(keep, dtype=np.int64)
            else:
                if count != size:
                    raise DataError(source, f"{component.name} has {count} points; expected {size}")
                rows = np.arange(start, start + size)
                cols = np.arange(offset, offset + size)
            xyz = data[:, 0, cols, :3].copy()
            xyz[..., 0] /= width
            xyz[..., 1] /= height
            xyz[confidence[:, 0, cols] == 0] = np.nan
            out[:, rows] = xyz
        offset += count
    if offset != data.shape[2]:
        raise DataError(source, f"the header names {offset} points but the body holds {data.shape[2]}")
    return out


def read_pose(path: str | Path) -> np.ndarray:
    """Read a ``.pose`` file into Kaggle ``(frames, 543, 3)`` landmarks (see :func:`pose_to_landmarks`)."""
    path = Path(path)
    pose_format = _import_pose_format(path)
    try:
        pose = pose_format.Pose.read(path.read_bytes())
    except FileNotFoundError:
        raise DataError(path, "pose file not found") from None
    except Exception as exc:  # pose-format raises struct/Value/Index errors on foreign bytes
        raise DataError(path, f"not a readable .pose file ({type(exc).__name__}: {exc})") from None
    return pose_to_landmarks(pose, path)


def landmarks_to_pose(landmarks: np.ndarray, fps: float = DEFAULT_FPS, width: int = 1, height: int = 1) -> Any:
    """A pose-format Holistic ``Pose`` of Kaggle landmarks (x, y scaled to ``width`` x ``height`` pixels)."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
    from pose_format.utils.holistic import holistic_components

    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (ROWS_PER_FRAME, 3):
        raise ValueError(f"expected (frames, {ROWS_PER_FRAME}, 3) landmarks, got {landmarks.shape}")
    components = holistic_components("XYZC")
    total = sum(len(c.points) for c in components)
    data = np.zeros((len(landmarks), 1, total, 3), np.float32)
    confidence = np.zeros((len(landmarks), 1, total), np.float32)
    offset = 0
    for component in components:
        count = len(component.points)
        if component.name in COMPONENTS:
            start, size = COMPONENTS[component.name]
            xyz = landmarks[:, start : start + size].copy()
            xyz[..., 0] *= width
            xyz[..., 1] *= height
            missing = np.isnan(xyz).all(axis=-1)
            xyz[missing] = 0.0
            data[:, 0, offset : offset + size] = xyz
            confidence[:, 0, offset : offset + size] = (~missing).astype(np.float32)
        offset += count
    header = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(width=width, height=height, depth=0),
                        components=components)
    return Pose(header, NumPyPoseBody(fps=float(fps), data=data, confidence=confidence))


def write_pose(path: str | Path, landmarks: np.ndarray, fps: float = DEFAULT_FPS, width: int = 1,
               height: int = 1) -> Path:
    """Write Kaggle landmarks as a Holistic ``.pose`` file, atomically; returns the path."""
    buffer = BytesIO()
    landmarks_to_pose(landmarks, fps, width, height).write(buffer)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def list_pose_files(root: str | Path) -> list[Path]:
    """``root`` itself when it is a ``.pose`` file, else every ``*.pose`` below it (sorted)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(root, "no such file or folder")
    return sorted(p for p in root.rglob(f"*{POSE_SUFFIX}") if p.is_file())
