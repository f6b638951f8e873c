"""Live recognition: mirroring, the sliding window, parity with the file predictor, `islr live` on a real clip."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from islr.cli import main as islr
from islr.config import ExperimentConfig, PreprocessConfig
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.landmarks import LEFT_HAND, RIGHT_HAND, ROWS_PER_FRAME
from islr.errors import ConfigError
from islr.inference.live import LiveRecognizer, mirror_landmarks
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


@pytest.fixture(scope="module")
def run_dir(synth_dir, tmp_path_factory):
    pytest.importorskip("torch")
    from tiny_run import tiny_torch_run

    return tiny_torch_run(synth_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(run_dir):
    from islr.inference.exported import load_predictor

    return load_predictor(run_dir)


def test_live_path_gives_the_file_predictor_logits(predictor, real_data_dir):
    for sample in read_train_csv(real_data_dir)[:5]:
        raw = read_landmarks(sample.path)
        whole = LiveRecognizer(predictor, window=len(raw), min_hand_frames=1)
        last = [whole.push(f, i) for i, f in enumerate(raw)][-1]
        assert last is not None
        np.testing.assert_array_equal(last.logits, predictor.logits(raw))
        tail = LiveRecognizer(predictor, window=16, min_hand_frames=1, mirror=True)
        last = [tail.push(f, i) for i, f in enumerate(raw)][-1]
        np.testing.assert_allclose(last.logits, predictor.logits(mirror_landmarks(raw[-16:])), atol=1e-6)
        assert last.top.signs == predictor.top_k(mirror_landmarks(raw[-16:]), k=3).signs


def needs_mediapipe() -> None:
    # Not importorskip: importing mediapipe directly drags in tensorflow (see islr.inference.holistic).
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe is not installed")


def test_live_cli_on_a_real_clip_writes_predictions_and_video(run_dir, predictor, real_videos_dir, tmp_path, capsys):
    needs_mediapipe()
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
