"""Live recognition: mirroring, the sliding window, parity with the file predictor, `islr live` on
a real clip, and a camera taking exactly the path of a video file."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from islr.cli import main as islr
from islr.config import ExperimentConfig, PreprocessConfig
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.landmarks import LEFT_HAND, RIGHT_HAND, ROWS_PER_FRAME
from islr.errors import ConfigError
from islr.inference.live import RIGHT_COLOUR, LiveRecognizer, mirror_landmarks, preview_image
from islr.inference.predictor import BasePredictor


class CountingPredictor(BasePredictor):
    """Logits = (frames seen by the model, frames in the raw window): makes the window observable."""

    def __init__(self):
        self.cfg = ExperimentConfig(preprocess=PreprocessConfig(length_mode="variable"))
        self.sign_names = ["kept", "raw"]
        self.raw_lengths: list[int] = []

    def logits(self, raw):
        self.raw_lengths.append(len(raw))
        return super().logits(raw)

    def logits_from_features(self, batch):
        return np.stack([batch["mask"].sum(1), np.full(len(batch["mask"]), self.raw_lengths[-1])], axis=1).astype(np.float32)


def frames_with_hands(flags) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.uniform(0.1, 0.9, size=(len(flags), ROWS_PER_FRAME, 3)).astype(np.float32)
    data[:, LEFT_HAND] = np.nan
    data[np.ix_(np.flatnonzero(~np.asarray(flags, bool)), RIGHT_HAND)] = np.nan
    return data


def test_mirror_flips_x_and_swaps_sides():
    raw = frames_with_hands([True, True])
    flipped = mirror_landmarks(raw)
    np.testing.assert_allclose(flipped[:, LEFT_HAND, 0], 1 - raw[:, RIGHT_HAND, 0], atol=1e-6)
    np.testing.assert_array_equal(flipped[:, LEFT_HAND, 1:], raw[:, RIGHT_HAND, 1:])
    assert np.isnan(flipped[:, RIGHT_HAND]).all()
    assert flipped[0, 17, 0] == pytest.approx(1 - raw[0, 17, 0])  # lower lip centre stays the centre point
    assert flipped[0, 61, 1] == raw[0, 291, 1]  # mouth corners swap
    assert flipped[0, 489 + 11, 2] == raw[0, 489 + 12, 2]  # shoulders swap
    np.testing.assert_allclose(mirror_landmarks(flipped), raw, atol=1e-6)


def test_window_waits_for_enough_hand_frames_and_slides():
    predictor = CountingPredictor()
    live = LiveRecognizer(predictor, window=6, min_hand_frames=3, threshold=0.0)
    flags = [False, True, False, True, True, True, True, True, False, False, False, False]
    results = [live.push(frame, i, i / 30) for i, frame in enumerate(frames_with_hands(flags))]
    ready = [r is not None for r in results]
    # Hand frames in the last 6: 0,1,1,2,3,4,5,5,5,4,3,2 -> predictions from frame 4 to frame 10.
    assert ready == [False, False, False, False, True, True, True, True, True, True, True, False]
    assert predictor.raw_lengths == [5, 6, 6, 6, 6, 6, 6]  # the window holds at most 6 frames
    assert [r.hand_frames for r in results[4:11]] == [3, 4, 5, 5, 5, 4, 3] and results[4].frame == 4
    # The raw window goes through the training preprocessing: at frame 4 (frames 0-4: -H-HH) the
    # interior 1-frame gap is interpolated and the leading hand-less frame dropped -> 4 frames;
    # at frame 10 (frames 5-10: HHH---) the trailing hand-less frames are dropped -> 3.
    assert results[4].logits[0] == 4 and results[10].logits[0] == 3
    with pytest.raises(ConfigError, match="min-hand-frames"):
        LiveRecognizer(predictor, window=4, min_hand_frames=5)
    with pytest.raises(ConfigError, match="threshold"):
        LiveRecognizer(predictor, threshold=1.5)


def test_threshold_decides_the_accepted_sign():
    predictor = CountingPredictor()  # logits (kept, raw) -> softmax of (2, 2): 0.5 each
    raw = frames_with_hands([True, True])
    low = LiveRecognizer(predictor, window=2, min_hand_frames=2, threshold=0.5)
    high = LiveRecognizer(predictor, window=2, min_hand_frames=2, threshold=0.6)
    for i, frame in enumerate(raw):
        a, b = low.push(frame, i), high.push(frame, i)
    assert a.top.probabilities[0] == pytest.approx(0.5)
    assert a.sign == "kept" and b.sign is None


def test_preview_is_mirrored_for_display_only():
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[:, :10] = 255  # a white bar on the left of the image
    landmarks = np.full((ROWS_PER_FRAME, 3), np.nan, np.float32)
    landmarks[RIGHT_HAND] = [0.3, 0.5, 0.0]  # every right-hand point at x = 30 px
    plain = preview_image(frame, landmarks, None, 0.0)
    mirrored = preview_image(frame, landmarks, None, 0.0, mirror=True)
    assert (frame[:, 10:] == 0).all()  # the frame itself is never drawn on
    assert plain[30, 5].tolist() == [255, 255, 255] and mirrored[30, 95].tolist() == [255, 255, 255]
    hand = list(RIGHT_COLOUR)  # BGR, as drawn
    assert plain[30, 30].tolist() == hand and plain[30, 70].tolist() == [0, 0, 0]  # the hand at x = 30 px
    assert mirrored[30, 70].tolist() == hand and mirrored[30, 30].tolist() == [0, 0, 0]  # at 100 - 30 px


@pytest.fixture(scope="module")
def run_dir(synth_dir, tmp_path_factory):
    from tiny_run import tiny_torch_run

    return tiny_torch_run(synth_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(run_dir):
    from islr.inference.exported import load_predictor

    return load_predictor(run_dir)


def test_live_path_gives_the_file_predictor_logits(predictor, kaggle_dir):
    for sample in read_train_csv(kaggle_dir)[:5]:
        raw = read_landmarks(sample.path)
        whole = LiveRecognizer(predictor, window=len(raw), min_hand_frames=1)
        last = [whole.push(f, i) for i, f in enumerate(raw)][-1]
        assert last is not None
        np.testing.assert_array_equal(last.logits, predictor.logits(raw))
        tail = LiveRecognizer(predictor, window=16, min_hand_frames=1, mirror=True)
        last = [tail.push(f, i) for i, f in enumerate(raw)][-1]
        np.testing.assert_allclose(last.logits, predictor.logits(mirror_landmarks(raw[-16:])), atol=1e-6)
        assert last.top.signs == predictor.top_k(mirror_landmarks(raw[-16:]), k=3).signs


@pytest.mark.real
def test_live_cli_on_a_real_clip_writes_predictions_and_video(run_dir, predictor, real_videos_dir, tmp_path, capsys):
    import cv2

    from islr.inference.extract import video_landmarks
    from islr.inference.holistic import HolisticExtractor, has_hand
    from islr.inference.video import open_video

    clip = real_videos_dir / "where_S16.gif"
    out, lines = tmp_path / "annotated.mp4", tmp_path / "predictions.jsonl"
    code = islr(["live", "--video", str(clip), "--model", str(run_dir), "--no-window", "--out", str(out),
                 "--json", str(lines), "--window", "16", "--min-hand-frames", "4", "--threshold", "0"])
    stdout = capsys.readouterr().out
    assert code == 0 and "37 frames" in stdout
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert records and all(set(r) >= {"frame", "time_s", "top"} for r in records)
    assert [r["frame"] for r in records] == sorted({r["frame"] for r in records})
    for r in records:
        probs = [t["probability"] for t in r["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert r["sign"] == r["top"][0]["sign"]  # threshold 0 accepts every prediction
        assert r["time_s"] == pytest.approx(r["frame"] / 16.667, abs=0.01)

    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 37
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (240, 240)

    # The same frames through Holistic and the file predictor give the same predictions.
    with open_video(clip) as source, HolisticExtractor() as extractor:
        landmarks = video_landmarks(source, extractor)
    hands = np.array([has_hand(f) for f in landmarks])
    first = int(np.flatnonzero(np.cumsum(hands) >= 4)[0])
    assert records[0]["frame"] == first
    last = records[-1]
    window = landmarks[max(0, last["frame"] - 15) : last["frame"] + 1]
    expected = predictor.top_k(window, k=3)
    assert [t["sign"] for t in last["top"]] == expected.signs
    np.testing.assert_allclose([t["probability"] for t in last["top"]], expected.probabilities, atol=1e-5)


def test_live_cli_errors_are_one_line(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    fake = tmp_path / "x.mp4"
    fake.write_text("not a video")
    (tmp_path / "weights.bin").write_text("?")
    cases = [
        (["--camera", "99", "--model", str(run_dir), "--no-window", "--json", str(tmp_path / "p.jsonl")], "camera 99 cannot be opened"),
        (["--video", str(fake), "--model", str(run_dir), "--no-window", "--json", str(tmp_path / "p.jsonl")], "cannot be decoded"),
        (["--video", str(fake), "--model", str(tmp_path / "weights.bin"), "--no-window", "--out", str(tmp_path / "a.mp4")],
         "not a run directory, .onnx or .tflite file"),
        (["--video", str(fake), "--model", str(run_dir), "--no-window"], "needs --out and/or --json"),
        (["--video", str(fake), "--model", str(run_dir)], "no display to open a window on; use --no-window"),
    ]
    for args, message in cases:
        assert islr(["live", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "Traceback" not in err
        assert len(err.splitlines()) == 1, err


# ----------------------------------------------------------------------------- camera = video
def camera_plays(monkeypatch, clip) -> list[int]:
    """Make ``cv2.VideoCapture(index)`` open ``clip``: the ``--camera`` code path reads a known file."""
    import cv2

    real_capture = cv2.VideoCapture
    opened: list[int] = []

    def capture(source, *args):
        if isinstance(source, int):
            opened.append(source)
            return real_capture(str(clip))
        return real_capture(source, *args)

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    return opened


def record_pushes(monkeypatch) -> list[tuple[int, np.ndarray, np.ndarray | None]]:
    """Keep (frame index, landmarks as Holistic gave them, logits or None) of every frame pushed."""
    seen: list[tuple[int, np.ndarray, np.ndarray | None]] = []
    push = LiveRecognizer.push

    def recording(self, landmarks, frame=0, time_s=0.0):
        result = push(self, landmarks, frame, time_s)
        seen.append((frame, np.array(landmarks, copy=True), None if result is None else result.logits))
        return result

    monkeypatch.setattr(LiveRecognizer, "push", recording)
    return seen


def camera_and_video(clip, run_dir, tmp_path, monkeypatch, capsys) -> tuple[list, list, list, list]:
    """`islr live --camera 0` (reading ``clip``) and `islr live --video clip`: pushes and JSON lines of each."""
    opened = camera_plays(monkeypatch, clip)
    pushes = record_pushes(monkeypatch)
    common = ["--model", str(run_dir), "--no-window", "--window", "16", "--min-hand-frames", "4", "--threshold", "0"]
    runs, lines = [], []
    for name, source in (("camera", ["--camera", "0"]), ("video", ["--video", str(clip)])):
        out = tmp_path / f"{name}.jsonl"
        assert islr(["live", *source, *common, "--json", str(out)]) == 0
        runs.append(list(pushes))
        pushes.clear()
        lines.append([json.loads(line) for line in out.read_text().splitlines()])
    assert opened == [0]  # the camera run did go through open_camera
    err = capsys.readouterr().err
    assert "camera 0: " in err and f"{clip}: " in err and err.count("mirror off") == 2
    return runs[0], runs[1], lines[0], lines[1]


def assert_same_path(camera: list, video: list, camera_lines: list, video_lines: list) -> None:
    assert [p[0] for p in camera] == [p[0] for p in video] == list(range(len(video)))
    for (_, cam_landmarks, cam_logits), (_, vid_landmarks, vid_logits) in zip(camera, video, strict=True):
        np.testing.assert_array_equal(cam_landmarks, vid_landmarks)  # the same, unmirrored frames
        assert (cam_logits is None) == (vid_logits is None)
        if cam_logits is not None:
            np.testing.assert_array_equal(cam_logits, vid_logits)
    drop_time = [[{k: v for k, v in r.items() if k != "time_s"} for r in lines] for lines in (camera_lines, video_lines)]
    assert drop_time[0] == drop_time[1]  # the clocks differ (wall clock / frame index), nothing else


class BlobExtractor:
    """A stand-in for Holistic: a right hand of 21 points around the bright pixels' centroid."""

    OFFSETS = np.random.default_rng(5).uniform(-0.05, 0.05, size=(21, 2)).astype(np.float32)

    def __init__(self, task_model=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def process(self, frame_bgr, timestamp_ms=None):
        out = np.full((ROWS_PER_FRAME, 3), np.nan, np.float32)
        ys, xs = np.nonzero(frame_bgr.mean(axis=2) > 128)
        if len(xs):
            h, w = frame_bgr.shape[:2]
            out[RIGHT_HAND, :2] = np.array([xs.mean() / w, ys.mean() / h], np.float32) + self.OFFSETS
            out[RIGHT_HAND, 2] = 0.0
        return out


def test_camera_frames_take_the_video_path(run_dir, tmp_path, monkeypatch, capsys):
    """A written clip whose bright square moves left to right, with a stand-in for Holistic."""
    import cv2

    clip = tmp_path / "square.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (96, 64))
    for i in range(24):
        frame = np.zeros((64, 96, 3), np.uint8)
        if 2 <= i < 21:  # no "hand" in the first two and last three frames
            frame[20:40, 4 + 4 * i : 16 + 4 * i] = 255
        writer.write(frame)
    writer.release()
    monkeypatch.setattr("islr.inference.holistic.HolisticExtractor", BlobExtractor)
    camera, video, camera_lines, video_lines = camera_and_video(clip, run_dir, tmp_path, monkeypatch, capsys)
    assert len(video) == 24 and [r["frame"] for r in video_lines] == list(range(5, 24))  # from the 4th hand frame on
    assert_same_path(camera, video, camera_lines, video_lines)
    x = [p[1][RIGHT_HAND[0], 0] - BlobExtractor.OFFSETS[0, 0] for p in camera[2:21]]
    assert np.all(np.diff(x) > 0)  # the square moves right in the camera path too: never mirrored


@pytest.mark.real
def test_camera_and_video_give_identical_logits_on_a_real_clip(run_dir, real_videos_dir, tmp_path, monkeypatch, capsys):
    """hello_S18.mp4 through MediaPipe Holistic, once as `--camera 0` and once as `--video`."""
    camera, video, camera_lines, video_lines = camera_and_video(
        real_videos_dir / "hello_S18.mp4", run_dir, tmp_path, monkeypatch, capsys)
    assert len(video) == 30 and len(video_lines) >= 20  # a hand in nearly every frame of this clip
    assert_same_path(camera, video, camera_lines, video_lines)
