"""Videos -> a Kaggle-layout dataset: MediaPipe Holistic landmarks in the exact parquet schema.

Each video becomes ``OUT/train_landmark_files/<participant>/<sequence>.parquet`` (written by
:func:`islr.data.kaggle.write_landmarks`), a row of ``OUT/train.csv`` and, when its sign is new,
an entry of ``OUT/sign_to_prediction_index_map.json``; so ``islr validate OUT`` checks it and
``islr train`` can use it. The sequence id is the CRC-32 of ``"<participant>/<video path relative
to the input>"``: extracting the same video again replaces its row instead of adding one.
Videos that cannot be decoded, or show no hand at all, are reported and skipped.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islr.data.kaggle import (
    LANDMARK_DIR,
    SIGN_MAP_JSON,
    TRAIN_COLUMNS,
    TRAIN_CSV,
    read_sign_map,
    write_landmarks,
)
from islr.data.kaggle_writer import read_rows
from islr.errors import DataError, DeviceError
from islr.inference.holistic import HolisticExtractor, has_hand
from islr.inference.video import VIDEO_SUFFIXES, FrameSource, list_videos, open_video

#: The Kaggle ``frame`` column is int16.
MAX_FRAMES = 32767


@dataclass
class ExtractedVideo:
    """One video written into the dataset."""

    video: Path
    parquet: Path
    participant_id: int
    sequence_id: int
    sign: str
    frames: int
    hand_frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def hand_fraction(self) -> float:
        return self.hand_frames / self.frames if self.frames else 0.0


@dataclass
class ExtractReport:
    """What :func:`extract_dataset` wrote and what it skipped (``(video, reason)``)."""

    out: Path
    written: list[ExtractedVideo] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def video_landmarks(source: FrameSource, extractor: HolisticExtractor, max_frames: int | None = None) -> np.ndarray:
    """Holistic landmarks of every frame of an opened source: float32 ``(frames, 543, 3)``."""
    frames = [extractor.process(frame, int(round(stamp * 1000))) for _, stamp, frame in source.frames(max_frames)]
    return np.stack(frames) if frames else np.zeros((0, 543, 3), np.float32)


def sequence_id_for(participant_id: int, relative: str) -> int:
    """Stable id of a video: CRC-32 of ``"<participant>/<relative path>"`` (fits Kaggle's int64)."""
    return zlib.crc32(f"{participant_id}/{relative}".encode())


def sign_for(video: Path, root: Path, sign: str | None) -> str:
    """The sign of a video: ``sign`` if given, else its sub-folder under ``root``, else the file
    name up to the first ``_`` (``hello_S18.mp4`` -> ``hello``)."""
    if sign:
        return sign
    if root in video.parents and video.parent != root:
        return video.relative_to(root).parts[0]
    return video.stem.split("_")[0]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def record(out: Path, item: ExtractedVideo) -> None:
    """Add (or replace, same sequence_id) the train.csv row of a video and its sign in the sign map."""
    rows = [r for r in read_rows(out) if str(r["sequence_id"]) != str(item.sequence_id)]
    rows.append({"path": item.parquet.relative_to(out).as_posix(), "participant_id": str(item.participant_id),
                 "sequence_id": str(item.sequence_id), "sign": item.sign})
    lines = [",".join(TRAIN_COLUMNS)] + [",".join(_csv_cell(r[c]) for c in TRAIN_COLUMNS) for r in rows]
    _write_atomic(out / TRAIN_CSV, "\n".join(lines) + "\n")
    sign_map = read_sign_map(out) if (out / SIGN_MAP_JSON).exists() else {}
    if item.sign not in sign_map:
        sign_map[item.sign] = len(sign_map)
        _write_atomic(out / SIGN_MAP_JSON, json.dumps(dict(sorted(sign_map.items(), key=lambda kv: kv[1])), indent=1) + "\n")


def _csv_cell(value: str) -> str:
    value = str(value)
    return '"' + value.replace('"', '""') + '"' if any(ch in value for ch in ',"\n') else value


def extract_dataset(
    inputs: str | Path,
    out: str | Path,
    participant_id: int = 0,
    sign: str | None = None,
    task_model: str | Path | None = None,
    max_frames: int | None = None,
    on_video: Callable[[ExtractedVideo | None, Path, str | None], None] | None = None,
    pose: bool = False,
) -> ExtractReport:
    """Extract every video of ``inputs`` (a file or a folder) into the Kaggle layout under ``out``.

    ``on_video(item, video, reason)`` is called after each video (``item`` None when skipped).
    ``pose=True`` also writes a pose-format Holistic ``.pose`` file beside each parquet (pixel
    coordinates of the video's size, its frame rate; :mod:`islr.data.pose_files`).
    """
    root = Path(inputs)
    out = Path(out)
    videos = list_videos(root)
    report = ExtractReport(out)
    if not videos:
        raise DataError(root, f"no video files in this folder (suffixes {' '.join(VIDEO_SUFFIXES)})")
    used: set[int] = set()
    with HolisticExtractor(task_model) as extractor:
        for video in videos:
            relative = video.relative_to(root).as_posix() if root.is_dir() else video.name
            sequence_id = sequence_id_for(participant_id, relative)
            while sequence_id in used:  # a CRC collision inside one run: take the next free id
                sequence_id += 1
            try:
                started = time.perf_counter()
                with open_video(video) as source:
                    extractor.reset()
                    landmarks = video_landmarks(source, extractor, max_frames)
                    geometry = (source.fps, source.width, source.height)
                seconds = time.perf_counter() - started
                if len(landmarks) > MAX_FRAMES:
                    raise DataError(video, f"{len(landmarks)} frames exceed the Kaggle int16 frame column; use --max-frames")
                hands = int(sum(has_hand(f) for f in landmarks))
                if hands == 0:
                    raise DataError(video, f"no hand detected in any of its {len(landmarks)} frames")
            except (DeviceError, DataError) as exc:
                reason = exc.reason if isinstance(exc, DataError) else str(exc).removeprefix(f"{video}: ")
                report.skipped.append((str(video), reason))
                if on_video:
                    on_video(None, video, reason)
                continue
            used.add(sequence_id)
            parquet = out / LANDMARK_DIR / str(participant_id) / f"{sequence_id}.parquet"
            write_landmarks(parquet, landmarks)
            if pose:
                from islr.data.pose_files import write_pose

                write_pose(parquet.with_suffix(".pose"), landmarks, *geometry)
            item = ExtractedVideo(video, parquet, participant_id, sequence_id, sign_for(video, root, sign),
                                  len(landmarks), hands, seconds)
            record(out, item)
            report.written.append(item)
            if on_video:
                on_video(item, video, None)
    return report
