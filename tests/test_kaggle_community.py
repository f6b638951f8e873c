"""A community Kaggle model (competition signature, no islr sidecar) works with --sign-map.

The model is built here with plain TensorFlow, not islr's exporter: a ``tf.Module`` whose
``serving_default`` takes ``inputs`` ``(n, 543, 3)`` with NaN and returns ``outputs``
``(classes,)``, doing its own preprocessing (NaN -> 0, mean over frames of the right hand's x, y).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.test_compare import make_run
from tests.tiny_kaggle import SIGNS, good_dataset

from islr.cli import main
from islr.data.kaggle import read_landmarks, read_train_csv
from islr.data.landmarks import RIGHT_HAND
from islr.errors import ModelError
from islr.inference.exported import load_predictor

WEIGHTS = np.random.default_rng(3).normal(size=(len(RIGHT_HAND) * 2, len(SIGNS))).astype(np.float32)


def reference_logits(raw: np.ndarray) -> np.ndarray:
    """What the community model computes, in numpy."""
    hand = np.nan_to_num(raw[:, RIGHT_HAND, :2]).mean(axis=0).reshape(-1)
    return hand @ WEIGHTS


@pytest.fixture(scope="module")
def community_tflite(tmp_path_factory) -> Path:
    import tensorflow as tf

    class Community(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.constant(WEIGHTS)

        @tf.function(input_signature=[tf.TensorSpec([None, 543, 3], tf.float32, name="inputs")])
        def __call__(self, inputs):
            clean = tf.where(tf.math.is_nan(inputs), tf.zeros_like(inputs), inputs)
            hand = tf.reduce_mean(tf.gather(clean, RIGHT_HAND.tolist(), axis=1)[:, :, :2], axis=0)
            return {"outputs": tf.linalg.matvec(self.w, tf.reshape(hand, [-1]), transpose_a=True)}

    root = tmp_path_factory.mktemp("community")
    module = Community()
    tf.saved_model.save(module, str(root / "saved"), signatures={"serving_default": module.__call__})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(root / "saved"))
    path = root / "model.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    return good_dataset(tmp_path / "data")


def test_without_a_sign_map_the_error_says_how(community_tflite):
    with pytest.raises(ModelError, match="give --sign-map for a model with the Kaggle signature"):
        load_predictor(community_tflite)


def test_predictor_matches_the_models_own_computation(community_tflite, data):
    predictor = load_predictor(community_tflite, sign_map=data / "sign_to_prediction_index_map.json")
    assert predictor.sign_names == list(SIGNS) and predictor.raw_input
    for sample in read_train_csv(data):
        raw = read_landmarks(sample.path)
        np.testing.assert_allclose(predictor.logits(raw), reference_logits(raw), rtol=1e-5, atol=1e-5)
    assert predictor.cfg.train.framework == "tflite" and predictor.cfg.model.name == "model.tflite"


def test_predict_cli_with_sign_map(community_tflite, data, capsys):
    sign_map = str(data / "sign_to_prediction_index_map.json")
    assert main(["predict", str(community_tflite), str(data / "train_landmark_files"), "--sign-map", sign_map,
                 "--top-k", "1"]) == 0
    rows = {Path(r["file"]).stem: r["top"][0]["sign"] for r in json.loads(capsys.readouterr().out)}
    expected = {str(s.sequence_id): SIGNS[int(np.argmax(reference_logits(read_landmarks(s.path))))]
                for s in read_train_csv(data)}
    assert rows == expected


def test_evaluate_then_compare_beside_an_islr_run(community_tflite, data, tmp_path, capsys):
    out = tmp_path / "runs" / "community"
    assert main(["evaluate", str(community_tflite), "--data-dir", str(data), "--sign-map",
                 str(data / "sign_to_prediction_index_map.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    samples = read_train_csv(data)
    hits = [SIGNS[int(np.argmax(reference_logits(read_landmarks(s.path))))] == s.sign for s in samples]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == len(samples) and metrics["accuracy"] == pytest.approx(np.mean(hits))
    assert (metrics["model"], metrics["framework"]) == ("model.tflite", "tflite")
    assert "model.tflite (tflite) on all of" in printed
    assert {p.name for p in out.iterdir()} == {"metrics.json", "per_sign_accuracy.csv", "confusion_matrix.png"}
    make_run(tmp_path / "runs", "transformer-torch", "transformer", "torch",
             {"accuracy": 0.1, "top5": 1.0, "macro_f1": 0.1, "split": "test"})
    assert main(["compare", *sorted(str(p) for p in (tmp_path / "runs").iterdir())]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].startswith(f"| community | model.tflite | tflite | all of {data} | {np.mean(hits):.1%} |")
    assert table[3].startswith("| transformer-torch | transformer | torch |")


def test_a_model_file_needs_data_to_evaluate(community_tflite, capsys):
    assert main(["evaluate", str(community_tflite)]) == 2
    assert "scored on --data-dir" in capsys.readouterr().err


@pytest.mark.real
def test_live_on_a_real_clip_with_sign_map(community_tflite, data, real_videos_dir, tmp_path, capsys):
    from islr.inference.extract import video_landmarks
    from islr.inference.holistic import HolisticExtractor
    from islr.inference.video import open_video
    from islr.metrics import softmax

    clip = real_videos_dir / "where_S16.gif"
    lines = tmp_path / "predictions.jsonl"
    assert main(["live", "--video", str(clip), "--model", str(community_tflite), "--sign-map",
                 str(data / "sign_to_prediction_index_map.json"), "--no-window", "--json", str(lines),
                 "--window", "16", "--min-hand-frames", "4", "--threshold", "0"]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert records and all(r["sign"] in SIGNS for r in records)
    with open_video(clip) as source, HolisticExtractor() as extractor:
        landmarks = video_landmarks(source, extractor)
    last = records[-1]
    window = np.asarray(landmarks[max(0, last["frame"] - 15) : last["frame"] + 1], np.float32)
    expected = softmax(reference_logits(window)[None].astype(np.float64))[0]
    top = [t["sign"] for t in last["top"]]
    assert top[0] == SIGNS[int(np.argmax(expected))]
    np.testing.assert_allclose(last["top"][0]["probability"], expected.max(), atol=1e-4)


def test_sign_map_renames_the_signs_of_a_run(synth_dir, tmp_path_factory, tmp_path):
    from tiny_run import tiny_torch_run  # tests/ is on sys.path (rootdir conftest)

    run = tiny_torch_run(synth_dir, tmp_path_factory)
    plain = load_predictor(run)
    names = [f"word{i}" for i in range(plain.num_classes)]
    renamed = tmp_path / "names.json"
    renamed.write_text(json.dumps({n: i for i, n in enumerate(names)}))
    assert load_predictor(run, sign_map=renamed).sign_names == names
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"a": 0}))
    with pytest.raises(ModelError, match=f"1 signs but the run {run} has {plain.num_classes}"):
        load_predictor(run, sign_map=short)
