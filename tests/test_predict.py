"""File prediction: run directories, ONNX and TFLite files, the sidecar metadata and `islr predict`."""

from __future__ import annotations

import csv
import io
import json
import warnings

import numpy as np
import pytest

from islr.cli import main as islr  # noqa: E402
from islr.config import PreprocessConfig  # noqa: E402
from islr.data.kaggle import read_landmarks, read_train_csv  # noqa: E402
from islr.errors import ModelError  # noqa: E402
from islr.inference.exported import (  # noqa: E402
    OnnxPredictor,
    embed_onnx_metadata,
    load_predictor,
    metadata_json,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from islr.inference.predictor import RunPredictor, parquet_inputs, predict_files  # noqa: E402
from tiny_run import tiny_torch_run  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(synth_dir, tmp_path_factory):
    return tiny_torch_run(synth_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(run_dir):
    return load_predictor(run_dir)


@pytest.fixture(scope="module")
def real_files(kaggle_dir):
    """20 landmark files: synthetic ones, and (marked real) genuine ones."""
    return [s.path for s in read_train_csv(kaggle_dir)[:20]]


def test_run_predictor_on_kaggle_files_gives_distributions(predictor, run_dir, real_files):
    assert isinstance(predictor, RunPredictor)
    assert predictor.sign_names == [f"sign{i:03d}" for i in range(6)]
    raws = [read_landmarks(p) for p in real_files]
    probs = np.stack([predictor.probabilities(r) for r in raws])
    assert probs.shape == (20, 6)
    assert np.isfinite(probs).all() and (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    # load_predictor(run dir) is the same model as RunPredictor, and batching changes nothing.
    direct = RunPredictor(run_dir)
    single = np.stack([direct.logits(r) for r in raws])
    np.testing.assert_array_equal(single, np.stack([predictor.logits(r) for r in raws]))
    np.testing.assert_allclose(predictor.logits_batch(raws, batch_size=8), single, atol=1e-5)
    top = predictor.top_k(raws[0], k=3)
    assert top.signs[0] == predictor.sign_names[int(np.argmax(single[0]))]
    assert top.probabilities == sorted(top.probabilities, reverse=True)


def test_load_predictor_refuses_other_paths(tmp_path, synth_dir):
    (tmp_path / "model.pt").write_text("not a model")
    for path in (tmp_path / "model.pt", synth_dir):  # a file of another kind, a folder that is no run
        with pytest.raises(ModelError, match="not a run directory, .onnx or .tflite file"):
            load_predictor(path)
    with pytest.raises(ModelError, match="not found"):
        load_predictor(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_predictor(tmp_path / "junk.onnx")


def test_predict_files_skips_bad_files(predictor, synth_dir, tmp_path):
    good = [s.path for s in read_train_csv(synth_dir)[:3]]
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    preds, skipped = predict_files(predictor, [good[0], bad, good[1], tmp_path / "gone.parquet", good[2]], k=2)
    assert [p.source for p in preds] == [str(g) for g in good]
    assert [s[0] for s in skipped] == [str(bad), str(tmp_path / "gone.parquet")]
    assert "not a readable parquet file" in skipped[0][1] and "file not found" in skipped[1][1]
    expected = predictor.top_k(read_landmarks(good[1]), k=2)
    assert preds[1].signs == expected.signs
    np.testing.assert_allclose(preds[1].probabilities, expected.probabilities, atol=1e-5)


def test_predict_cli_json_csv_and_bad_files(run_dir, predictor, synth_dir, tmp_path, capsys):
    files = sorted(parquet_inputs([synth_dir / "train_landmark_files"]))
    assert len(files) == 6 * 5 * 4
    folder = files[0].parent  # one participant: 24 files
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 truncated")
    code = islr(["predict", str(run_dir), str(folder), str(bad), "--top-k", "3"])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"skipped {bad}" in err and "1 of 25 inputs skipped" in err
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [str(p) for p in sorted(folder.glob("*.parquet"))]
    first = rows[0]["top"]
    assert len(first) == 3 and [t["probability"] for t in first] == sorted((t["probability"] for t in first), reverse=True)
    expected = predictor.top_k(read_landmarks(rows[0]["file"]), k=3)
    assert [t["sign"] for t in first] == expected.signs

    out_file = tmp_path / "pred.csv"
    assert islr(["predict", str(run_dir), str(files[0]), str(files[1]), "--format", "csv", "--top-k", "2", "--out", str(out_file)]) == 0
    table = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert [(r["file"], r["rank"]) for r in table] == [(str(files[0]), "1"), (str(files[0]), "2"), (str(files[1]), "1"), (str(files[1]), "2")]
    expected = predictor.top_k(read_landmarks(files[1]), k=2)
    assert [r["sign"] for r in table[2:]] == expected.signs
    np.testing.assert_allclose([float(r["probability"]) for r in table[2:]], expected.probabilities, atol=2e-6)


def test_sidecar_round_trip_and_bad_metadata(tmp_path):
    cfg = PreprocessConfig(landmarks="hands", coords=("x", "y", "z"), fixed_len=16, motion=True)
    target = write_sidecar(tmp_path / "m.onnx", cfg, ["a", "b"], framework="torch", model="lstm")
    assert target == sidecar_path(tmp_path / "m.onnx") == tmp_path / "m.onnx.islr.json"
    info = read_sidecar(tmp_path / "m.onnx")
    assert info.preprocess == cfg and info.sign_names == ["a", "b"] and (info.framework, info.model) == ("torch", "lstm")
    assert json.loads(metadata_json(cfg, ["a", "b"]))["preprocess"]["coords"] == ["x", "y", "z"]
    for text, message in (("{", "not valid JSON"), ('{"sign_names": ["a"]}', "needs 'preprocess'"),
                          ('{"preprocess": {"landmarks": "nope"}, "sign_names": ["a"]}', "bad 'preprocess'"),
                          ('{"preprocess": {}, "sign_names": []}', "non-empty list")):
        target.write_text(text)
        with pytest.raises(ModelError, match=message):
            read_sidecar(tmp_path / "m.onnx")


@pytest.fixture(scope="module")
def onnx_file(predictor, tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    dim = predictor.features(np.zeros((4, 543, 3), np.float32)).shape[-1]
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
    example = (torch.zeros(2, 32, dim), torch.ones(2, 32, dtype=torch.bool))
    with warnings.catch_warnings():  # the exporter warns about its own internals
        warnings.simplefilter("ignore")
        torch.onnx.export(predictor.backend.model.eval(), example, str(path), dynamo=True, external_data=False,
                          input_names=["x", "mask"], output_names=["logits"],
                          dynamic_shapes={"x": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}}, verbose=False)
    write_sidecar(path, predictor.cfg, predictor.sign_names)
    return path


def test_onnx_predictor_matches_the_run(onnx_file, predictor, run_dir, real_files, capsys):
    onnx = load_predictor(onnx_file)
    assert isinstance(onnx, OnnxPredictor) and not onnx.raw_input
    assert onnx.sign_names == predictor.sign_names and onnx.preprocess_config == predictor.preprocess_config
    raws = [read_landmarks(p) for p in real_files[:8]]
    eager = np.stack([predictor.logits(r) for r in raws])
    np.testing.assert_allclose(np.stack([onnx.logits(r) for r in raws]), eager, atol=1e-4)
    np.testing.assert_allclose(onnx.logits_batch(raws), eager, atol=1e-4)
    assert islr(["predict", str(onnx_file), str(real_files[0]), "--top-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"][0]["sign"] == predictor.sign_names[int(eager[0].argmax())]


def test_onnx_without_metadata_is_refused(onnx_file, tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx_file.read_bytes())
    with pytest.raises(ModelError, match="no preprocessing and sign names"):
        OnnxPredictor(bare)


def _raw_weights(classes: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(543 * 3, classes)).astype(np.float32)


def _raw_reference(raw: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What the hand-built raw-contract graphs compute: NaN -> 0, mean over frames, linear."""
    return np.nan_to_num(raw).mean(axis=0).reshape(-1) @ w


def test_onnx_raw_landmark_contract_with_embedded_metadata(tmp_path, real_files):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _raw_weights(3)
    nodes = [
        helper.make_node("IsNaN", ["inputs"], ["nan"]),
        helper.make_node("Where", ["nan", "zero", "inputs"], ["clean"]),
        helper.make_node("ReduceMean", ["clean", "axis0"], ["mean"], keepdims=0),
        helper.make_node("Reshape", ["mean", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["outputs"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero"), numpy_helper.from_array(np.array([0], np.int64), "axis0"),
             numpy_helper.from_array(np.array([543 * 3], np.int64), "flat_shape"), numpy_helper.from_array(w, "w")]
    graph = helper.make_graph(nodes, "raw", [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["frames", 543, 3])],
                              [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, [3])], inits)
    path = tmp_path / "kaggle.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    embed_onnx_metadata(path, metadata_json(PreprocessConfig(), ["x", "y", "z"]))
    model = load_predictor(path)
    assert model.raw_input and model.sign_names == ["x", "y", "z"]
    raws = [read_landmarks(p) for p in real_files[:3]]
    for raw in raws:
        np.testing.assert_allclose(model.logits(raw), _raw_reference(raw, w), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.logits_batch(raws), np.stack([_raw_reference(r, w) for r in raws]), rtol=1e-4, atol=1e-4)


def test_tflite_predictor_features_and_raw_contracts(tmp_path, predictor, real_files):
    import tensorflow as tf

    from islr.inference.exported import TFLitePredictor, embed_tflite_metadata
    from islr.inference.predictor import batch_features

    dim, classes = predictor.features(np.zeros((2, 543, 3), np.float32)).shape[-1], 6
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(dim, classes)).astype(np.float32), rng.normal(size=classes).astype(np.float32)

    class Features(tf.Module):  # masked mean pooling + linear: a stand-in exported classifier
        @tf.function(input_signature=[tf.TensorSpec([None, None, dim], tf.float32, name="x"),
                                      tf.TensorSpec([None, None], tf.bool, name="mask")])
        def serve(self, x, mask):
            m = tf.expand_dims(tf.cast(mask, tf.float32), -1)
            return {"logits": tf.matmul(tf.reduce_sum(x * m, 1) / tf.maximum(tf.reduce_sum(m, 1), 1.0), w) + b}

    wr = _raw_weights(2)

    class Raw(tf.Module):  # the Kaggle contract: inputs (frames, 543, 3) -> outputs (classes,)
        @tf.function(input_signature=[tf.TensorSpec([None, 543, 3], tf.float32, name="inputs")])
        def serve(self, inputs):
            clean = tf.where(tf.math.is_nan(inputs), tf.zeros_like(inputs), inputs)
            return {"outputs": tf.linalg.matvec(wr, tf.reshape(tf.reduce_mean(clean, 0), [-1]), transpose_a=True)}

    def convert(module):
        fn = module.serve.get_concrete_function()
        return tf.lite.TFLiteConverter.from_concrete_functions([fn], module).convert()

    feats = tmp_path / "feats.tflite"
    feats.write_bytes(convert(Features()))
    write_sidecar(feats, predictor.cfg, predictor.sign_names)
    model = load_predictor(feats)
    assert isinstance(model, TFLitePredictor) and not model.raw_input
    raws = [read_landmarks(p) for p in real_files[:4]]
    for raw in raws:
        f = predictor.features(raw)
        np.testing.assert_allclose(model.logits(raw), f.mean(axis=0) @ w + b, rtol=1e-4, atol=1e-4)
    batch = batch_features([predictor.features(r) for r in raws])
    pooled = (batch["x"] * batch["mask"][..., None]).sum(1) / batch["mask"].sum(1, keepdims=True)
    np.testing.assert_allclose(model.logits_batch(raws), pooled @ w + b, rtol=1e-4, atol=1e-4)

    raw_path = tmp_path / "kaggle.tflite"  # metadata embedded in the flatbuffer, no sidecar
    raw_path.write_bytes(embed_tflite_metadata(convert(Raw()), metadata_json(PreprocessConfig(), ["p", "q"])))
    raw_model = load_predictor(raw_path)
    assert raw_model.raw_input and raw_model.sign_names == ["p", "q"]
    np.testing.assert_allclose(raw_model.logits(raws[0]), _raw_reference(raws[0], wr), rtol=1e-4, atol=1e-4)
    (tmp_path / "junk.tflite").write_bytes(b"junk" * 10)
    with pytest.raises(ModelError, match="not a readable TFLite model"):
        load_predictor(tmp_path / "junk.tflite")
