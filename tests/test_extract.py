"""Video -> landmarks: the Holistic row layout, opening errors, and `islr extract` on a real clip."""

from __future__ import annotations

import json
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from islr.cli import main as islr
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.landmarks import LEFT_HAND, RIGHT_HAND, ROWS_PER_FRAME
from islr.errors import DeviceError, ModelError
from islr.inference.extract import ExtractedVideo, record, sequence_id_for, sign_for
from islr.inference.holistic import has_hand, results_to_frame
from islr.inference.video import open_camera, open_source, open_video


def _points(n: int, offset: float) -> list:
    return [SimpleNamespace(x=offset + i, y=-(offset + i), z=0.5) for i in range(n)]


def test_results_to_frame_puts_parts_in_kaggle_order():
    # Legacy results wrap points in `.landmark`; a missing part is None.
    legacy = SimpleNamespace(face_landmarks=SimpleNamespace(landmark=_points(468, 0)), left_hand_landmarks=None,
                             pose_landmarks=SimpleNamespace(landmark=_points(33, 1000)),
                             right_hand_landmarks=SimpleNamespace(landmark=_points(21, 2000)))
    frame = results_to_frame(legacy)
    assert frame.shape == (ROWS_PER_FRAME, 3) and frame.dtype == np.float32
    assert frame[0].tolist() == [0, 0, 0.5] and frame[467, 0] == 467
    assert np.isnan(frame[468:489]).all()  # left hand missing
    assert frame[489, 0] == 1000 and frame[521, 0] == 1032  # pose rows 489..521
    assert frame[522, 0] == 2000 and frame[542, 1] == -2020  # right hand rows 522..542
    assert has_hand(frame)
    # Tasks results give plain lists, empty when not detected; an iris-refined face (478) fills 468 rows.
    tasks = SimpleNamespace(face_landmarks=_points(478, 0), left_hand_landmarks=_points(21, 7), pose_landmarks=[],
                            right_hand_landmarks=[])
    frame = results_to_frame(tasks)
    assert frame[468, 0] == 7 and np.isnan(frame[489:]).all() and frame[467, 0] == 467
    nothing = results_to_frame(SimpleNamespace(face_landmarks=None, left_hand_landmarks=None, pose_landmarks=None,
                                               right_hand_landmarks=None))
    assert np.isnan(nothing).all() and not has_hand(nothing)
    with pytest.raises(ModelError, match="expected 21"):
        results_to_frame(SimpleNamespace(left_hand_landmarks=_points(5, 0)))


def test_sources_that_do_not_open_raise_device_error(tmp_path):
    with pytest.raises(DeviceError, match="camera 99 cannot be opened"):
        open_camera(99)
    with pytest.raises(DeviceError, match="camera 99"):
        open_source("99")
    fake = tmp_path / "x.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(DeviceError, match="x.mp4: cannot be decoded|x.mp4: no decodable frame"):
        open_video(fake)
    with pytest.raises(DeviceError, match="video file not found"):
        open_video(tmp_path / "missing.mp4")


def test_written_gif_opens_with_its_size_frame_rate_and_frames(tmp_path):
    from PIL import Image

    frames = [Image.fromarray(np.full((32, 48, 3), 20 * i, np.uint8)) for i in range(7)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=60, loop=0)
    with open_video(tmp_path / "clip.gif") as source:
        got = list(source.frames())
        assert (source.width, source.height, source.fps) == (48, 32, pytest.approx(1000 / 60))
        assert [i for i, _, _ in got] == list(range(7)) and got[0][2].shape == (32, 48, 3)
        assert [int(f.mean()) for _, _, f in got] == [20 * i for i in range(7)]  # in order, none dropped
        assert got[3][1] == pytest.approx(3 * 0.06)


@pytest.mark.real
def test_real_clip_opens_with_its_size_and_frame_rate(real_videos_dir):
    with open_video(real_videos_dir / "where_S16.gif") as source:
        frames = list(source.frames())
        assert (source.width, source.height) == (240, 240)
        assert len(frames) == 37 and frames[0][2].shape == (240, 240, 3)
        assert frames[3][1] == pytest.approx(3 / source.fps)


def test_sign_and_sequence_id_rules(tmp_path):
    root = tmp_path / "videos"
    assert sign_for(root / "hello_S18.mp4", root, None) == "hello"
    assert sign_for(root / "thanks" / "take1.mp4", root, None) == "thanks"
    assert sign_for(root / "thanks" / "take1.mp4", root, "bye") == "bye"
    assert sequence_id_for(3, "a/b.mp4") == zlib.crc32(b"3/a/b.mp4") != sequence_id_for(4, "a/b.mp4")


def test_record_replaces_the_row_of_a_re_extracted_video(tmp_path):
    def item(seq, sign):
        return ExtractedVideo(tmp_path / "v.mp4", tmp_path / "train_landmark_files" / "0" / f"{seq}.parquet", 0, seq, sign, 5, 5, 1.0)

    record(tmp_path, item(11, "hello"))
    record(tmp_path, item(22, "bye"))
    record(tmp_path, item(11, "hello"))
    rows = pd.read_csv(tmp_path / "train.csv")
    assert rows["sequence_id"].tolist() == [22, 11]
    assert rows["path"].tolist() == ["train_landmark_files/0/22.parquet", "train_landmark_files/0/11.parquet"]
    assert json.loads((tmp_path / "sign_to_prediction_index_map.json").read_text()) == {"hello": 0, "bye": 1}


@pytest.mark.real
def test_extract_cli_on_a_real_clip_passes_validation(real_videos_dir, tmp_path, capsys):
    from islr.data.validate import validate_dataset

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "hello_S18.mp4").symlink_to(real_videos_dir / "hello_S18.mp4")  # never copied
    (videos / "x.mp4").write_text("not a video")
    out = tmp_path / "dataset"
    code = islr(["extract", str(videos), "--out", str(out), "--participant-id", "7", "--max-frames", "12"])
    stdout, stderr = capsys.readouterr()
    assert code == 1  # one bad video, reported and skipped
    assert "skipped" in stderr and "x.mp4" in stderr and "cannot be decoded" in stderr
    assert "1 videos written" in stdout
    samples = read_train_csv(out)
    assert [(s.participant_id, s.sequence_id, s.sign) for s in samples] == [(7, zlib.crc32(b"7/hello_S18.mp4"), "hello")]
    landmarks = read_landmarks(samples[0].path)  # every layout check of the Kaggle schema
    assert landmarks.shape == (12, ROWS_PER_FRAME, 3)
    hands = ~np.isnan(landmarks[:, np.concatenate([LEFT_HAND, RIGHT_HAND]), 0]).all(axis=1)
    assert hands.sum() >= 10  # the signer's hand is in view from the first frame
    face = landmarks[:, :468]
    assert np.isfinite(face).all() and (face[..., :2] > 0).all() and (face[..., :2] < 1).all()
    assert pq_types(samples[0].path) == {"frame": "int16", "row_id": "string", "type": "string",
                                         "landmark_index": "int16", "x": "double", "y": "double", "z": "double"}
    report = validate_dataset(out, workers=1, progress=False)
    assert report.ok, report.invalid


def pq_types(path) -> dict[str, str]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return {name: str(schema.field(name).type) for name in schema.names}


def test_task_model_file_must_exist(tmp_path):
    from islr.inference.holistic import HolisticExtractor

    with pytest.raises(ModelError, match="model file not found"):
        HolisticExtractor(task_model=tmp_path / "holistic_landmarker.task")
    bogus = tmp_path / "bogus.task"
    bogus.write_bytes(b"not a task bundle")
    with pytest.raises(ModelError, match="not a usable HolisticLandmarker"):
        HolisticExtractor(task_model=bogus)
