"""`--config` takes a file path or the name of a config shipped inside the package."""

from __future__ import annotations

import pytest

from islr.cli import main
from islr.config import configs_dir, find_config, load_config, shipped_configs
from islr.errors import ConfigError


@pytest.mark.parametrize("name", ["kaggle-1st", "experiments/kaggle-1st", "experiments/kaggle-1st.yaml",
                                  "configs/experiments/kaggle-1st.yaml"])
def test_shipped_experiment_by_name_from_any_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config(name) == configs_dir() / "experiments" / "kaggle-1st.yaml"


def test_model_configs_by_name_and_real_paths_win(tmp_path, monkeypatch):
    assert find_config("models/transformer") == configs_dir() / "models" / "transformer.yaml"
    assert find_config("lstm") == configs_dir() / "models" / "lstm.yaml"
    own = tmp_path / "kaggle-1st"
    own.write_text("train:\n  epochs: 3\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("kaggle-1st").train.epochs == 3  # an existing file is read as a path


def test_unknown_name_suggests_the_closest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="kagle-1st: config file not found.*did you mean 'experiments/kaggle-1st'"):
        load_config("kagle-1st")
    assert "experiments/kaggle-1st" in shipped_configs() and "models/lstm" in shipped_configs()
    assert not any(n.startswith("search/") for n in shipped_configs())


def test_train_resolves_config_by_name(tmp_path, monkeypatch):
    import islr.commands.train as train_cmd

    seen = {}
    monkeypatch.setattr(train_cmd, "run", lambda args: seen.setdefault("cfg", train_cmd.resolve_config(args)) and 0)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "kaggle-1st", "--data-dir", str(tmp_path)]) == 0
    assert seen["cfg"].model.name == load_config(configs_dir() / "experiments" / "kaggle-1st.yaml").model.name
