"""pose-format Holistic files: Kaggle parquet -> .pose -> `islr import pose` -> parquet keeps every value."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from tests.tiny_kaggle import sequence

from islr.cli import main
from islr.data.kaggle import read_landmarks, read_train_csv, write_landmarks
from islr.data.landmarks import FACE_COUNT, LEFT_HAND, POSE_START, RIGHT_HAND
from islr.data.pose_files import landmarks_to_pose, pose_to_landmarks, read_pose, write_pose
from islr.errors import DataError


def kaggle_like(frames: int, seed: int) -> np.ndarray:
    """A synthetic Kaggle sequence read back from its parquet: left hand missing, right hand
    missing in two frames, one lone NaN coordinate, negative z as in real files."""
    data = sequence(frames, seed, no_hand=(1, 4))
    data[..., 2] -= 0.5
    data[3, POSE_START + 2, 1] = np.nan
    return data


def test_round_trip_through_pose_and_import_keeps_every_value(tmp_path, capsys):
    originals = {}
    for name, seed in (("hello_a", 1), ("thankyou_b", 2)):
        write_landmarks(tmp_path / f"{name}.parquet", kaggle_like(9 + seed, seed))
        originals[name] = read_landmarks(tmp_path / f"{name}.parquet")
        write_pose(tmp_path / "poses" / f"{name}.pose", originals[name])
    from pose_format import Pose

    pose = Pose.read((tmp_path / "poses" / "hello_a.pose").read_bytes())
    assert [c.name for c in pose.header.components] == [
        "POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS", "POSE_WORLD_LANDMARKS"]
    assert float(pose.body.confidence[:, 0, 33 + 468 : 33 + 468 + 21].max()) == 0.0  # left hand: missing

    out = tmp_path / "dataset"
    assert main(["import", "pose", str(tmp_path / "poses"), "--out", str(out), "--participant-id", "5"]) == 0
    assert "2 pose files written" in capsys.readouterr().out
    samples = {s.sign: s for s in read_train_csv(out)}
    assert set(samples) == {"hello", "thankyou"}
    assert samples["hello"].sequence_id == zlib.crc32(b"5/hello_a.pose") and samples["hello"].participant_id == 5
    for sign, name in (("hello", "hello_a"), ("thankyou", "thankyou_b")):
        back = read_landmarks(samples[sign].path)
        np.testing.assert_array_equal(back, originals[name])  # NaN in the same places, values bit-equal
    assert json.loads((out / "sign_to_prediction_index_map.json").read_text()) == {"hello": 0, "thankyou": 1}
    from islr.data.validate import validate_dataset

    assert validate_dataset(out, workers=1, progress=False).ok


def test_pixel_coordinates_and_a_refined_face_mesh(tmp_path):
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
    from pose_format.utils.holistic import holistic_components

    data = kaggle_like(6, 3).astype(np.float32)
    pose = landmarks_to_pose(data, fps=25, width=640, height=480)
    assert pose.header.dimensions.width == 640 and pose.body.fps == 25
    np.testing.assert_allclose(pose_to_landmarks(pose), data, rtol=1e-6, atol=1e-7)
    # pose-format's header with the 10 refined iris points (478): the extra points are not Kaggle's.
    components = holistic_components("XYZC", additional_face_points=10)
    total = sum(len(c.points) for c in components)
    body = np.zeros((6, 1, total, 3), np.float32)
    conf = np.ones((6, 1, total), np.float32)
    body[:, 0, 33 : 33 + FACE_COUNT] = data[:, :FACE_COUNT]
    body[:, 0, 33 + FACE_COUNT : 33 + 478] = 9.0
    refined = type(pose)(PoseHeader(0.2, PoseHeaderDimensions(1, 1, 0), components), NumPyPoseBody(25, body, conf))
    got = pose_to_landmarks(refined)
    np.testing.assert_array_equal(got[:, :FACE_COUNT], data[:, :FACE_COUNT])
    assert not (got == 9.0).any()


def test_bad_files_are_reported_and_skipped(tmp_path, capsys):
    src = tmp_path / "poses"
    src.mkdir()
    (src / "broken.pose").write_bytes(b"not a pose")
    empty = kaggle_like(5, 5)
    empty[:, np.concatenate([LEFT_HAND, RIGHT_HAND])] = np.nan
    write_pose(src / "nohand.pose", empty)
    write_pose(src / "hello.pose", kaggle_like(5, 6))
    code = main(["import", "pose", str(src), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1 and "1 pose files written" in captured.out
    assert f"skipped {src / 'broken.pose'}: not a readable .pose file" in captured.err
    assert f"skipped {src / 'nohand.pose'}: no hand in any of its 5 frames" in captured.err
    with pytest.raises(DataError, match="pose file not found"):
        read_pose(tmp_path / "missing.pose")


@pytest.mark.real
def test_extract_format_pose_writes_a_pose_beside_each_parquet(real_videos_dir, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "hello_S18.mp4").symlink_to(real_videos_dir / "hello_S18.mp4")
    out = tmp_path / "dataset"
    assert main(["extract", str(videos), "--out", str(out), "--max-frames", "6", "--format", "pose"]) == 0
    capsys.readouterr()
    sample = read_train_csv(out)[0]
    pose_file = sample.path.with_suffix(".pose")
    from pose_format import Pose

    pose = Pose.read(pose_file.read_bytes())
    assert pose.header.dimensions.width > 1 and pose.body.data.shape[:3] == (6, 1, 576)  # pixels, as pose-format
    np.testing.assert_allclose(read_pose(pose_file), read_landmarks(sample.path), rtol=1e-5, atol=1e-6)
