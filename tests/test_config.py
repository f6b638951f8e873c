"""Config dataclasses, YAML files, dotted overrides; every shipped YAML loads."""

import pytest

from islr.config import (
    ExperimentConfig,
    configs_dir,
    load_config,
    parse_override,
    save_config,
    to_dict,
)
from islr.errors import ConfigError


def test_defaults_yaml_and_overrides_in_order(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train:\n  lr: 0.01\n  epochs: 5\nmodel:\n  name: lstm\n  params: {hidden_dim: 32}\n")
    cfg = load_config(path, ["train.lr=3e-4", "model.params.num_layers=1", "preprocess.coords=x,y,z"])
    assert cfg.train.lr == 3e-4 and cfg.train.epochs == 5
    assert cfg.model.params == {"hidden_dim": 32, "num_layers": 1}
    assert cfg.preprocess.coords == ("x", "y", "z")
    assert cfg.train.batch_size == ExperimentConfig().train.batch_size


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["train.epochs=7", "augment.scale_range=[0.8, 1.2]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert to_dict(load_config(tmp_path / "c.yaml")) == to_dict(cfg)


@pytest.mark.parametrize("bad", ["train.nope=1", "train.epochs=abc", "nosection.x=1", "train.lr"])
def test_bad_values_are_config_errors(bad):
    with pytest.raises(ConfigError):
        load_config(None, [bad])


def test_parse_override_nests():
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}


def test_preprocess_key_changes_with_settings():
    a, b = load_config(None), load_config(None, ["preprocess.max_gap=5"])
    assert a.preprocess.key() != b.preprocess.key() and a.preprocess.key() == load_config(None).preprocess.key()


# configs/search/ holds Optuna search spaces, not experiment configs (tested in test_tune.py).
@pytest.mark.parametrize("path", sorted(p for p in configs_dir().rglob("*.yaml") if p.parent.name != "search"), ids=lambda p: p.stem)
def test_every_shipped_yaml_loads(path):
    cfg = load_config(path)
    assert cfg.model.name
