"""Every config key is documented; `islr config show/keys`; enum-like values are checked on load."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from islr.cli import main
from islr.config import (
    LANDMARK_SUBSETS,
    ExperimentConfig,
    PreprocessConfig,
    allowed_values,
    load_config,
    to_dict,
)
from islr.config_docs import commented_yaml, config_keys, field_docs
from islr.errors import ConfigError


def test_every_config_key_has_a_docstring_without_rst():
    keys = config_keys()
    assert len(keys) > 80
    assert [k.key for k in keys if not k.doc] == []
    assert not [k.key for k in keys if "``" in k.doc or ":class:" in k.doc]
    assert {"train.lr", "augment.mirror", "model.params", "preprocess.landmarks"} <= {k.key for k in keys}


def test_field_docs_reads_the_attribute_docstrings():
    docs = field_docs(PreprocessConfig)
    assert docs["max_gap"] == "Linear interpolation fills NaN runs up to this many frames (0 disables)."
    assert set(docs) == {f.name for f in dataclasses.fields(PreprocessConfig)}


def test_commented_yaml_loads_back_to_the_same_config(tmp_path):
    cfg = load_config("kaggle-1st", ["train.lr=0.0123", "preprocess.coords=x,y,z"])
    text = commented_yaml(cfg)
    assert "  # Peak learning rate.\n  lr: 0.0123\n" in text
    assert "# Registered model name (see islr models)." in text
    path = tmp_path / "shown.yaml"
    path.write_text(text)
    assert to_dict(load_config(path)) == to_dict(cfg)
    assert yaml.safe_load(text)["model"]["params"] == cfg.model.params


def test_config_show_and_keys_commands(tmp_path, capsys):
    assert main(["config", "show", "--train.epochs", "3", "--config", "models/lstm",
                 "--out", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "  epochs: 3\n" in out and "  name: lstm\n" in out
    assert load_config(tmp_path / "c.yaml").train.epochs == 3
    assert main(["config", "keys", "train.opt"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "train.optimizer (str, default adamw; one of adam, adamw, sgd, radam_lookahead)"
    assert main(["config", "keys", "nope."]) == 2
    assert "no config key starts with 'nope.'" in capsys.readouterr().err
    assert main(["config", "list"]) == 0
    assert "  experiments/kaggle-1st" in capsys.readouterr().out


@pytest.mark.parametrize(("override", "message"), [
    ("train.optimizer=adamm", "train.optimizer: 'adamm' is not one of adam, adamw, sgd, radam_lookahead; "
                              "did you mean 'adam'?"),
    ("preprocess.landmarks=kagle118", "did you mean 'kaggle118'?"),
    ("preprocess.normalization=centre_std", "did you mean 'center_std'?"),
    ("preprocess.length_mode=fix", "did you mean 'fixed'?"),
    ("preprocess.drop_empty_frames=hand", "did you mean 'hands'?"),
    ("preprocess.coords=x,w", "preprocess.coords: 'w' is not one of x, y, z"),
    ("data.split=participants", "did you mean 'participant'?"),
    ("train.schedule=cosin", "did you mean 'cosine'?"),
    ("train.framework=tensorflo", "did you mean 'tensorflow'?"),
    ("train.device=cuda:x", "train.device: 'cuda:x' is not one of auto, cpu, cuda, cuda:N, mps"),
    ("train.mode=maximum", "did you mean 'max'?"),
])
def test_enum_values_are_checked_on_load(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_valid_enum_values_load():
    cfg = load_config(None, ["train.device=cuda:1", "train.framework=tf", "preprocess.coords=x,y,z"])
    assert cfg.train.device == "cuda:1"
    for key in ("normalization", "length_mode", "drop_empty_frames", "landmarks"):
        for value in allowed_values(PreprocessConfig, key):
            assert getattr(load_config(None, [f"preprocess.{key}={value}"]).preprocess, key) == value


def test_landmark_choices_match_the_landmark_module():
    from islr.data.landmarks import SUBSETS

    assert set(LANDMARK_SUBSETS) == set(SUBSETS)
    assert allowed_values(PreprocessConfig, "landmarks") == LANDMARK_SUBSETS


def test_bad_value_stops_preprocess_before_any_cache(tmp_path, capsys):
    from tests.tiny_kaggle import good_dataset

    data = good_dataset(tmp_path / "data")
    code = main(["preprocess", str(data), "--preprocess.normalization", "centre_std",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and "did you mean 'center_std'?" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_defaults_are_valid_choices():
    for k in config_keys():
        if k.choices:
            values = k.default if isinstance(k.default, list) else [k.default]
            assert all(str(v) in k.choices for v in values), k.key
    assert ExperimentConfig().train.optimizer in allowed_values(type(ExperimentConfig().train), "optimizer")


def test_imbalance_choices_match_the_balance_module():
    from islr.config import DataConfig, TrainConfig
    from islr.data.balance import CLASS_WEIGHT_MODES, SAMPLING_MODES

    assert allowed_values(DataConfig, "sampling") == SAMPLING_MODES
    assert allowed_values(TrainConfig, "class_weights") == CLASS_WEIGHT_MODES
    with pytest.raises(ConfigError, match="did you mean 'balanced'"):
        load_config(None, ["data.sampling=balance"])
