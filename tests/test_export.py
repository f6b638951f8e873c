"""`islr export`: ONNX (torch runs), TFLite (Keras runs), the Kaggle TFLite contract, the in-graph
TensorFlow preprocessing, parity with the eager models, clear refusals.

Every parity check runs on synthetic sequences in the Kaggle layout (always) and again on the
genuine Kaggle files (marked ``real``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import torch

from conftest import tiny_config  # noqa: E402
from islr.cli import main as islr  # noqa: E402
from islr.config import PreprocessConfig  # noqa: E402
from islr.data.kaggle import read_landmarks, read_train_csv  # noqa: E402
from islr.data.preprocess import feature_dim, interpolate_gaps, preprocess, resize_index  # noqa: E402
from islr.data.synthetic import generate  # noqa: E402
from islr.errors import ConfigError, ModelError  # noqa: E402
from islr.export.kaggle_export import KAGGLE_MAX_BYTES, describe_contract, export_kaggle, run_kaggle  # noqa: E402
from islr.export.parity import ParityResult, check_parity, compare_logits  # noqa: E402
from islr.export.run import export_run  # noqa: E402
from islr.export.tf_preprocess import resize_matrix, tf_interpolate_gaps, tf_preprocess  # noqa: E402
from islr.inference.exported import OnnxPredictor, TFLitePredictor, load_predictor, read_sidecar  # noqa: E402
from islr.inference.predictor import RunPredictor  # noqa: E402
from islr.models.registry import list_models  # noqa: E402
from tiny_run import tiny_torch_run  # noqa: E402

torch.set_num_threads(1)
try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # already initialised by an earlier module
    pass

CONV1D_TINY = {"dim": 32, "num_stages": 1, "conv_per_stage": 1, "num_heads": 2, "kernel_size": 5}
RECIPE_PREPROCESS = {"preprocess.landmarks": "kaggle118", "preprocess.length_mode": "variable", "preprocess.motion": True}


# ----------------------------------------------------------------------------- fixtures
@dataclass
class Sequences:
    """Raw ``(frames, 543, 3)`` sequences, their names, and the folder of their parquet files."""

    raws: list[np.ndarray]
    names: list[str]
    landmark_dir: Path


@pytest.fixture(scope="module", params=["synthetic", pytest.param("genuine", marks=pytest.mark.real)])
def sequences(request, tmp_path_factory) -> Sequences:
    """40 sequences with NaN hands and gaps: synthetic ones of 14-45 frames (both sides of the
    fixed lengths 24 and 32); or (marked real) genuine ones, the first 20 listed plus 10 'hello'
    and 10 'thankyou'."""
    if request.param == "synthetic":
        root = tmp_path_factory.mktemp("export_synth")
        generate(root, signs=6, participants=4, per_sign=2, seed=11, min_frames=4, max_frames=96)
        chosen = read_train_csv(root)[:40]
    else:
        root = request.getfixturevalue("real_data_dir")
        samples = read_train_csv(root)
        chosen = samples[:20]
        for sign in ("hello", "thankyou"):
            chosen += [s for s in samples[20:] if s.sign == sign][:10]
    return Sequences([read_landmarks(s.path) for s in chosen], [f"{s.sign}/{s.sequence_id}" for s in chosen],
                     root / "train_landmark_files")


@pytest.fixture(scope="module")
def torch_run(synth_dir, tmp_path_factory):
    return tiny_torch_run(synth_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def torch_conv1d_run(synth_dir, tmp_path_factory):
    from islr.training.pipeline import train

    root = tmp_path_factory.mktemp("conv1d_torch")
    cfg = tiny_config(synth_dir, root / "cache", **{"train.epochs": 1, "model.name": "conv1d_transformer",
                                                    "model.params": CONV1D_TINY, **RECIPE_PREPROCESS})
    train(cfg, root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def keras_run(synth_dir, tmp_path_factory):
    from islr.training.pipeline import train

    root = tmp_path_factory.mktemp("keras_run")
    train(tiny_config(synth_dir, root / "cache", "tensorflow", **{"train.epochs": 1}), root / "run")
    return root / "run"


# ----------------------------------------------------------------------------- in-graph preprocessing
PREPROCESS_CASES = {
    "default (hands) fixed center_std": {},
    "seed96 fixed center_std": {"landmarks": "seed96"},
    "recipe kaggle118 variable motion": {"landmarks": "kaggle118", "length_mode": "variable", "motion": True},
    "seed_normalize": {"normalization": "seed_normalize"},
    "seed_standardize xyz": {"normalization": "seed_standardize", "coords": ("x", "y", "z")},
    "none, selected frames, no gaps filled": {"normalization": "none", "drop_empty_frames": "selected", "max_gap": 0},
    "all 543, pooling to 24, gap 5": {"landmarks": "all", "max_gap": 5, "fixed_len": 24},
    "hands, keep every frame, truncate 20": {"landmarks": "hands", "drop_empty_frames": "none", "length_mode": "variable",
                                             "max_len": 20, "motion": True, "nan_value": -1.0},
}


@pytest.mark.parametrize("case", list(PREPROCESS_CASES))
def test_in_graph_preprocessing_equals_numpy(case, sequences):
    cfg = PreprocessConfig(**PREPROCESS_CASES[case])
    fn = tf.function(lambda raw: tf_preprocess(raw, cfg), input_signature=[tf.TensorSpec([None, 543, 3], tf.float32)])
    raws = sequences.raws
    lengths = set()
    for raw in raws:
        expected = preprocess(raw, cfg)
        got = fn(raw).numpy()
        assert got.shape == expected.shape and got.shape[1] == feature_dim(cfg)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        lengths.add(len(raw))
    if cfg.length_mode == "fixed":  # both resize paths ran: repeating short and pooling long sequences
        assert min(lengths) < cfg.fixed_len < max(lengths)


@pytest.mark.parametrize("landmarks", ["hands", "kaggle118"])
def test_in_graph_preprocessing_treats_inf_as_missing_like_numpy(landmarks, sequences):
    cfg = PreprocessConfig(landmarks=landmarks)
    fn = tf.function(lambda raw: tf_preprocess(raw, cfg), input_signature=[tf.TensorSpec([None, 543, 3], tf.float32)])
    raw = np.array(sequences.raws[0], copy=True)
    raw[::3, 468:489, 0] = np.inf  # a broken file: the left hand's x is inf in every third frame
    raw[1, 522, 1] = -np.inf
    expected = preprocess(raw, cfg)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(fn(raw).numpy(), expected, atol=1e-5, rtol=0)


def test_gap_interpolation_matches_numpy_by_hand():
    x = np.array([1.0, np.nan, np.nan, 4.0, np.nan, 10.0, np.nan, np.nan, np.nan, np.nan, 0.0, np.nan], np.float32)
    got = tf_interpolate_gaps(tf.constant(x[:, None]), max_gap=3).numpy()[:, 0]
    # runs of 2 and 1 are filled linearly; a run of 4 (> max_gap) and the trailing NaN stay NaN
    np.testing.assert_allclose(got[:6], [1, 2, 3, 4, 7, 10])
    assert np.isnan(got[6:10]).all() and got[10] == 0 and np.isnan(got[11])
    rng = np.random.default_rng(0)
    values = rng.standard_normal((40, 7, 2)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.nan
    for gap in (1, 2, 4):
        np.testing.assert_array_equal(tf_interpolate_gaps(tf.constant(values), gap).numpy(), interpolate_gaps(values, gap))


def test_resize_matrix_follows_the_fixed_length_rule():
    for length, size in ((3, 8), (8, 3), (32, 32), (37, 32), (1, 4)):
        w = resize_matrix(tf.constant(length), size).numpy()
        assert w.shape == (size, length)
        np.testing.assert_array_equal(w.argmax(axis=1), resize_index(length, size))  # first frame of each window
        if length >= size:  # contiguous windows covering every frame exactly once
            np.testing.assert_array_equal(w.sum(axis=0), np.ones(length))
        else:  # one frame per output row
            np.testing.assert_array_equal(w.sum(axis=1), np.ones(size))


# ----------------------------------------------------------------------------- parity helpers
def test_compare_logits_fails_on_nan_and_on_top1_changes():
    ref = np.array([[1.0, 2.0], [3.0, 0.0]])
    assert compare_logits(ref, ref + 1e-6).passed
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert not compare_logits(ref, nan).passed and compare_logits(ref, nan).max_abs_diff == np.inf
    flipped = compare_logits(ref, np.array([[2.0, 1.0], [3.0, 0.0]]), ["a", "b"])
    assert flipped.top1_agree == 1 and flipped.worst == "a" and not flipped.passed
    assert not ParityResult(0, 0.0, 0).passed  # nothing checked is not a pass


# ----------------------------------------------------------------------------- ONNX
def test_cli_exports_a_torch_transformer_to_onnx_with_parity(torch_run, sequences, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code = islr(["export", str(torch_run), "--format", "onnx", "--out", str(out),
                 "--check-dir", str(sequences.landmark_dir), "--check-count", "5"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "parity on 5 sequences" in printed and ": OK" in printed
    assert read_sidecar(out).sign_names == RunPredictor(torch_run).sign_names
    exported = load_predictor(out)
    assert isinstance(exported, OnnxPredictor) and not exported.raw_input and exported.fixed_frames is None
    raws, names = sequences.raws, sequences.names
    result = check_parity(RunPredictor(torch_run), exported, raws, names)
    assert result.passed, result
    assert result.n == 40 and result.max_abs_diff < 1e-4
    # batch and frame count are dynamic: a padded batch of sequences of different lengths
    np.testing.assert_allclose(exported.logits_batch(raws[:6]), np.stack([exported.logits(r) for r in raws[:6]]), atol=1e-4)


def test_torch_conv1d_transformer_recipe_exports_to_onnx_and_kaggle(torch_conv1d_run, sequences, tmp_path):
    raws, names = sequences.raws, sequences.names
    result = export_run(torch_conv1d_run, "onnx", tmp_path / "c.onnx", raws=raws, sources=names)
    assert result.route == "dynamo" and result.size == (tmp_path / "c.onnx").stat().st_size
    assert result.parity is not None and result.parity.passed, result.parity
    assert result.parity.n == 40
    info = json.loads((tmp_path / "c.onnx.islr.json").read_text())
    assert info["model"] == "conv1d_transformer" and info["preprocess"]["motion"] is True
    # PyTorch -> Kaggle TFLite through the Keras twin, compared with eager torch + numpy preprocessing
    kaggle = export_run(torch_conv1d_run, "kaggle", tmp_path / "c.tflite", raws=raws, sources=names)
    assert any("Keras twin" in note for note in kaggle.notes)
    assert kaggle.parity is not None and kaggle.parity.passed, kaggle.parity
    assert describe_contract(tmp_path / "c.tflite")["inputs"] == {"inputs": {"shape": [-1, 543, 3], "dtype": "float32"}}


# ----------------------------------------------------------------------------- TFLite and Kaggle
def test_keras_transformer_to_tflite_with_parity(keras_run, sequences, tmp_path):
    raws, names = sequences.raws, sequences.names
    result = export_run(keras_run, "tflite", tmp_path / "m.tflite", raws=raws, sources=names)
    assert result.route == "dynamic batch"
    assert result.parity is not None and result.parity.passed, result.parity
    exported = load_predictor(tmp_path / "m.tflite")
    assert isinstance(exported, TFLitePredictor) and not exported.raw_input
    np.testing.assert_allclose(exported.logits_batch(raws[:5]), np.stack([exported.logits(r) for r in raws[:5]]), atol=1e-4)


def test_recurrent_keras_model_falls_back_to_batch_one(tmp_path):
    from islr.export.tflite_export import export_tflite, interpreter
    from islr.models.registry import create_model

    model = create_model("lstm", "tensorflow", 24, 5, {"hidden_dim": 16, "num_layers": 1})
    made = export_tflite(model, 24, tmp_path / "lstm.tflite")
    assert made.fixed_batch == 1  # Keras' LSTM loop needs a static batch to convert
    runner = interpreter(made.path).get_signature_runner("serving_default")
    for frames in (3, 50):  # frames stay dynamic
        x = np.random.default_rng(frames).standard_normal((1, frames, 24), dtype=np.float32)
        mask = np.ones((1, frames), bool)
        np.testing.assert_allclose(runner(x=x, mask=mask)["logits"], model([x, mask], training=False), atol=1e-5)


def test_kaggle_contract_and_parity_from_a_keras_run(keras_run, sequences, tmp_path, capsys):
    out = tmp_path / "kaggle" / "model.tflite"
    assert islr(["export", str(keras_run), "--format", "kaggle", "--out", str(out), "--check-count", "3"]) == 0
    assert ": OK" in capsys.readouterr().out  # parity on the run's own (synthetic) dataset
    contract = describe_contract(out)
    classes = len(RunPredictor(keras_run).sign_names)
    assert contract == {"signatures": ["serving_default"],
                        "inputs": {"inputs": {"shape": [-1, 543, 3], "dtype": "float32"}},
                        "outputs": {"outputs": {"shape": [classes], "dtype": "float32"}}}
    assert out.stat().st_size < KAGGLE_MAX_BYTES
    raws, names = sequences.raws, sequences.names
    reference = RunPredictor(keras_run)  # numpy preprocessing + the eager Keras model
    got = np.stack([run_kaggle(out, r) for r in raws])
    result = compare_logits(np.stack([reference.logits(r) for r in raws]), got, names)
    assert result.passed, result
    assert load_predictor(out).raw_input


@pytest.fixture(scope="module")
def full_size_recipe(tmp_path_factory):
    """conv1d_transformer at the shipped size (708 features, 250 classes), untrained weights, exported
    once to a Kaggle TFLite file; (model, preprocessing, file)."""
    from islr.models.registry import create_model

    cfg = PreprocessConfig(landmarks="kaggle118", length_mode="variable", motion=True)
    model = create_model("conv1d_transformer", "tensorflow", feature_dim(cfg), 250, {})
    path = tmp_path_factory.mktemp("recipe") / "recipe.tflite"
    assert export_kaggle(model, cfg, 250, path).size == path.stat().st_size
    return model, cfg, path


def test_full_size_recipe_kaggle_file_is_small_with_builtin_ops_only(full_size_recipe):
    _, _, path = full_size_recipe
    assert 5e6 < path.stat().st_size < KAGGLE_MAX_BYTES  # 1.83M float32 weights: about 7.3 MB
    ops = _operator_codes(path.read_bytes())
    assert ops and not [o for o in ops if not isinstance(o, int)], f"custom/Flex ops: {ops}"
    assert describe_contract(path)["inputs"] == {"inputs": {"shape": [-1, 543, 3], "dtype": "float32"}}


def test_full_size_recipe_kaggle_file_is_exact(full_size_recipe, sequences):
    model, cfg, path = full_size_recipe
    raws, names = sequences.raws, sequences.names
    expected = []
    for raw in raws[18:26]:  # a mix of signs and lengths
        feats = preprocess(raw, cfg)[None]
        expected.append(np.asarray(model([feats, np.ones(feats.shape[:2], bool)], training=False))[0])
    got = np.stack([run_kaggle(path, r) for r in raws[18:26]])
    result = compare_logits(np.stack(expected), got, names[18:26])
    assert result.passed, result


def _operator_codes(blob: bytes) -> list:
    """Builtin operator codes of a flatbuffer; custom ops (Flex, ...) appear by their name."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    return [c.customCode.decode() if c.customCode else max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]


# ----------------------------------------------------------------------------- Keras twins
BOTH = sorted(set(list_models("torch")) & set(list_models("tensorflow")))


@pytest.mark.parametrize("name", BOTH)
def test_every_torch_model_has_a_keras_twin_with_the_same_logits(name):
    from islr.export.keras_twin import keras_twin, twin_difference
    from islr.models.registry import create_model

    torch.manual_seed(3)
    model = create_model(name, "torch", 24, 7, {}).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics, so copying them matters
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    twin = keras_twin(model, name, 24, 7, {})
    assert twin_difference(model, twin, 24) < 1e-4


def test_a_twin_that_does_not_fit_is_refused():
    from islr.export.keras_twin import keras_twin
    from islr.models.registry import create_model

    small = {"d_model": 16, "num_heads": 2, "dim_feedforward": 32}
    model = create_model("transformer", "torch", 24, 5, {**small, "num_layers": 2})
    with pytest.raises(ModelError, match="cannot copy the PyTorch weights"):
        keras_twin(model, "transformer", 24, 5, {**small, "num_layers": 1})


# ----------------------------------------------------------------------------- refusals
def test_unsupported_combinations_are_refused_clearly(torch_run, keras_run, tmp_path, capsys):
    with pytest.raises(ModelError, match="tf2onnx"):
        export_run(keras_run, "onnx", tmp_path / "a.onnx")
    with pytest.raises(ConfigError, match=r"must end in \.onnx"):
        export_run(torch_run, "onnx", tmp_path / "a.tflite")
    with pytest.raises(ConfigError, match="not one of"):
        export_run(torch_run, "pt", tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="not a run directory"):
        export_run(tmp_path, "onnx", tmp_path / "a.onnx")
    assert not list(tmp_path.glob("a.*"))
    assert islr(["export", str(keras_run), "--format", "onnx", "--out", str(tmp_path / "k.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
