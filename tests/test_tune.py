"""Optuna search: shipped spaces, pruning through the trainer, a study that survives a kill, the best config."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import torch

from conftest import ROOT, tiny_config  # noqa: E402
from islr.config import configs_dir, load_config, save_config, to_dict  # noqa: E402
from islr.errors import ConfigError  # noqa: E402
from islr.tuning.search import (  # noqa: E402
    PruningCallback,
    TuneSettings,
    apply_params,
    default_storage,
    finished_trials,
    load_search_space,
    run_search,
    storage_url,
    suggest,
)
from islr.tuning.summary import param_importances, write_summary  # noqa: E402

torch.set_num_threads(1)
SPACES = sorted((configs_dir() / "search").glob("*.yaml"))
TINY_SPACE = """
params:
  train.lr: {type: float, low: 1e-3, high: 1.0e-2, log: true}
  model.params.dropout: {type: float, low: 0.0, high: 0.3}
  model.params.d_model: {type: categorical, choices: [16, 32]}
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tune-cache")


def settings_for(synth_dir: Path, cache_dir: Path, tmp_path: Path, trials: int, **cfg_overrides) -> TuneSettings:
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE)
    cfg = tiny_config(synth_dir, cache_dir, **{"train.epochs": 2, **cfg_overrides})
    out = tmp_path / "tune"
    return TuneSettings(base_config=to_dict(cfg), space_path=str(space), storage=default_storage(out),
                        study_name="tiny", out=str(out), trials=trials, pruner="none")


def corner_params(space, which: str) -> dict:
    out = {}
    for key, p in space.items():
        if p.type == "categorical":
            out[key] = p.choices[0] if which == "low" else p.choices[-1]
        else:
            value = p.low if which == "low" else p.high
            out[key] = int(value) if p.type == "int" else float(value)
    return out


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_search_spaces_build_their_model(path):
    from islr.models.registry import create_model

    space = load_search_space(path)
    model = "transformer" if path.stem == "default" else path.stem
    assert any(k.startswith("train.") for k in space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    samples = [corner_params(space, "low"), corner_params(space, "high")]
    samples += [suggest(study.ask(), space) for _ in range(3)]
    for params in samples:
        cfg = apply_params(load_config(None, [f"model.name={model}"]), params)
        net = create_model(cfg.model.name, "torch", input_dim=24, num_classes=5, params=cfg.model.params)
        logits = net(torch.zeros(2, 8, 24), torch.ones(2, 8, dtype=torch.bool))
        assert tuple(logits.shape) == (2, 5)


def test_every_model_with_its_own_space_uses_it():
    assert {"transformer", "lstm", "conv1d_transformer", "yet_another_transformer", "default"} <= {p.stem for p in SPACES}
    assert "model.params.d_model" in load_search_space("transformer")
    assert not any(k.startswith("model.") for k in load_search_space("transformer_ensemble"))  # the default


@pytest.mark.parametrize(("spec", "message"), [
    ("train.lrr: {type: float, low: 0.1, high: 1.0}", "lrr is not a field of train"),
    ("optim.lr: {type: float, low: 0.1, high: 1.0}", "must start with one of"),
    ("train.lr: {type: normal, low: 0.1, high: 1.0}", "type must be one of"),
    ("train.lr: {type: float, low: 1.0, high: 0.1}", "low <= high"),
    ("train.lr: {type: float, low: 0.0, high: 0.1, log: true}", "log-scaled range needs low > 0"),
    ("train.batch_size: {type: int, low: 1.5, high: 4}", "integer bounds"),
    ("train.batch_size: {type: categorical, choices: []}", "non-empty 'choices'"),
    ("augment.scale_range: {type: categorical, choices: [[0.9, 1.1]]}", "choices must be numbers"),
    ("train.lr: {type: float, lo: 0.1, high: 1.0}", "unknown field"),
])
def test_bad_search_space_names_file_and_key(tmp_path, spec, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"params:\n  {spec}\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_search_space(path)
    assert str(path) in str(info.value)


def test_base_and_null_remove_a_dimension(tmp_path):
    (tmp_path / "a.yaml").write_text("params:\n  train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
                                     "  augment.mirror: {type: float, low: 0.0, high: 0.5}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nparams:\n  augment.mirror: null\n"
                                     "  train.batch_size: {type: categorical, choices: [8, 16]}\n")
    space = load_search_space(tmp_path / "b.yaml")
    assert list(space) == ["train.lr", "train.batch_size"]
    assert space["train.lr"].log and space["train.lr"].low == 1e-4


def test_storage_urls(tmp_path):
    assert default_storage(tmp_path / "out") == f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    assert storage_url(str(tmp_path / "s.db")) == f"sqlite:///{tmp_path / 's.db'}"
    assert storage_url("postgresql://user@host/optuna") == "postgresql://user@host/optuna"


def test_apply_params_sets_dotted_paths_and_keeps_the_rest():
    base = load_config(None, ["model.params={d_model: 32, num_layers: 1}"])
    cfg = apply_params(base, {"train.lr": 0.01, "model.params.dropout": 0.25, "augment.mirror": 0.5, "train.batch_size": 8})
    assert (cfg.train.lr, cfg.augment.mirror, cfg.train.batch_size) == (0.01, 0.5, 8)
    assert cfg.model.params == {"d_model": 32, "num_layers": 1, "dropout": 0.25}
    assert base.train.lr == 1e-3  # the base is not modified
    with pytest.raises(ConfigError):
        apply_params(base, {"train.batch_size": "many"})


def test_pruning_callback_reports_and_stops():
    class FakeTrial:
        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) >= 2

    class FakeTrainer:
        should_stop = False

    trial, trainer = FakeTrial(), FakeTrainer()
    callback = PruningCallback(trial, "val_accuracy")
    callback.on_epoch_end(trainer, 0, {"val_accuracy": 0.25})
    assert not trainer.should_stop and not callback.pruned
    callback.on_epoch_end(trainer, 1, {"val_accuracy": 0.5})
    assert trainer.should_stop and callback.pruned_at == 1 and trial.reports == [(0, 0.25), (1, 0.5)]


def test_pruner_stops_training_and_marks_trials_pruned(synth_dir, cache_dir, tmp_path):
    settings = settings_for(synth_dir, cache_dir, tmp_path, trials=2, **{"train.epochs": 3})
    # val_accuracy can never reach 1.5, so every trial is pruned at its first report.
    study = run_search(settings, pruner=optuna.pruners.ThresholdPruner(lower=1.5), log=lambda _: None)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    for t in trials:
        assert list(t.intermediate_values) == [0]
        history = json.loads((Path(t.user_attrs["run_dir"]) / "history.json").read_text())
        assert len(history) == 1  # stopped after the first of 3 epochs
        assert t.intermediate_values[0] == pytest.approx(history[0]["val_accuracy"])


def test_search_resumes_across_calls_and_its_best_config_trains(synth_dir, cache_dir, tmp_path):
    from islr.training.pipeline import train

    first = run_search(settings_for(synth_dir, cache_dir, tmp_path, trials=2), log=lambda _: None)
    assert len(finished_trials(first)) == 2
    # A new call (as after a restart) with the same storage continues the same study.
    study = run_search(settings_for(synth_dir, cache_dir, tmp_path, trials=3), log=lambda _: None)
    assert [t.number for t in study.get_trials()] == [0, 1, 2]
    assert all(t.state.name == "COMPLETE" for t in study.get_trials())
    # The resumed sampler does not replay the first call's random start-up trials.
    assert study.trials[2].params not in [study.trials[0].params, study.trials[1].params]
    again = run_search(settings_for(synth_dir, cache_dir, tmp_path, trials=3), log=lambda _: None)
    assert len(again.get_trials()) == 3  # nothing left to do

    out = tmp_path / "tune"
    paths = write_summary(study, out)
    summary = json.loads(paths["summary"].read_text())
    best = study.best_trial
    assert summary["best"]["number"] == best.number and summary["trials"]["COMPLETE"] == 3
    assert summary["best"]["value"] == pytest.approx(max(t.value for t in study.get_trials()))
    assert set(summary["importances"]) == {"train.lr", "model.params.dropout", "model.params.d_model"}
    assert sum(summary["importances"].values()) == pytest.approx(1.0)
    for name in ("history", "intermediate", "importances"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Optuna study tiny" in paths["html"].read_text() and "data:image/png;base64," in paths["html"].read_text()

    cfg = load_config(paths["best_config"])  # accepted unchanged by `islr train --config`
    assert cfg.train.lr == pytest.approx(best.params["train.lr"])
    assert cfg.model.params["d_model"] == best.params["model.params.d_model"]
    assert cfg.model.params["num_heads"] == 2  # the base config's other parameters are kept
    cfg.train.epochs = 1
    result = train(cfg, tmp_path / "best-run")
    assert len(result.history) == 1


def test_importances_need_two_complete_trials():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    values, note = param_importances(study)
    assert values == {} and "at least 2 complete trials (has 1)" in note



def _toy_study() -> optuna.Study:
    """Six trials of a known objective (best near lr 0.01, dropout 0), one pruned; no training."""
    from islr.config import ExperimentConfig

    study = optuna.create_study(study_name="toy", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("base_config", to_dict(ExperimentConfig()))
    study.set_user_attr("monitor", "val_accuracy")
    for number in range(6):
        trial = study.ask()
        p = suggest(trial, load_search_space_text(TINY_SPACE))
        value = 1.0 - abs(math.log10(p["train.lr"]) + 2) - p["model.params.dropout"]
        for epoch in range(3):
            trial.report(value * (epoch + 1) / 3, epoch)
        if number == 4:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def load_search_space_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.yaml"
        path.write_text(text)
        return load_search_space(path)


def test_summary_plots_are_optunas_and_leave_the_style_alone(tmp_path):
    import matplotlib
    import numpy as np
    from PIL import Image

    from islr.viz.htmlpage import pyplot

    pyplot()  # the Agg backend first: the style is what must not change
    style = dict(matplotlib.rcParams)
    paths = write_summary(_toy_study(), tmp_path / "summary")
    assert dict(matplotlib.rcParams) == style  # Optuna's ggplot style sheet did not leak
    for name in ("history", "intermediate", "importances", "slice", "parallel"):
        with Image.open(paths[name]) as image:
            assert image.format == "PNG" and image.width >= 500 and image.height >= 200, name
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 50, name  # drawn, not a blank canvas
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 5 and "Parameters against the objective" in html
    summary = json.loads(paths["summary"].read_text())
    assert summary["trials"]["COMPLETE"] == 5 and summary["trials"]["PRUNED"] == 1


def test_a_study_without_finished_trials_gets_a_summary_without_plots(tmp_path):
    from islr.config import ExperimentConfig

    study = optuna.create_study(study_name="empty")
    study.set_user_attr("base_config", to_dict(ExperimentConfig()))
    paths = write_summary(study, tmp_path / "summary")
    assert set(paths) == {"summary", "html"}
    assert "No trial has reported a value yet" in paths["html"].read_text()

KILLER = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from islr.tuning.search import TuneSettings, run_search

    class DieInSecondTrial:
        def on_epoch_end(self, trainer, epoch, logs):
            if trainer.run.path.name == "trial-0001":
                os._exit(3)  # like a SIGKILL: no cleanup, the trial stays RUNNING

    run_search(TuneSettings(**json.load(open(sys.argv[1]))), callbacks=(DieInSecondTrial(),))
""")


def test_a_trial_running_when_killed_is_failed_and_retried(synth_dir, cache_dir, tmp_path):
    settings = settings_for(synth_dir, cache_dir, tmp_path, trials=3)
    settings.heartbeat_interval, settings.grace_period = 1, 1
    spec = tmp_path / "settings.json"
    spec.write_text(json.dumps(vars(settings)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", KILLER, str(spec)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    killed = optuna.load_study(study_name="tiny", storage=settings.storage)
    assert [t.state.name for t in killed.get_trials()] == ["COMPLETE", "RUNNING"]
    time.sleep(settings.grace_period + 0.5)  # the dead trial's heartbeat goes stale

    study = run_search(settings, log=lambda _: None)
    trials = study.get_trials()
    assert trials[1].state.name == "FAIL"
    assert len(finished_trials(study)) == 3 and len(trials) == 4
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retried) == 1 and retried[0].params == trials[1].params and retried[0].state.name == "COMPLETE"


def test_cli_parallel_jobs_and_summary(synth_dir, cache_dir, tmp_path, capsys):
    from islr.cli import main

    config = tmp_path / "base.yaml"
    save_config(tiny_config(synth_dir, cache_dir, **{"train.epochs": 1}), config)
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    out = tmp_path / "cli"
    argv = ["tune", "--framework", "torch", "--model", "transformer", "--config", str(config), "--trials", "2",
            "--jobs", "2", "--space", str(tmp_path / "space.yaml"), "--out", str(out), "--pruner", "none",
            "--data-dir", str(synth_dir), "--train.batch_size", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "best trial" in printed and "islr train --config" in printed
    study = optuna.load_study(study_name="transformer-torch", storage=f"sqlite:///{out / 'study.db'}")
    assert sorted(t.state.name for t in study.get_trials()) == ["COMPLETE", "COMPLETE"]
    assert load_config(out / "best_config.yaml").train.batch_size == 8
    assert (out / "summary.html").exists()
