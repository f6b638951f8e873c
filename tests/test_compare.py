"""`islr compare`: a Markdown table of runs built from their files (hand-made run directories)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from islr.cli import main
from islr.config import load_config, save_config
from islr.errors import ConfigError
from islr.evaluation.compare import compare_runs, markdown_table, rows_json, run_row


def make_run(root: Path, name: str, model: str, framework: str, metrics: dict | None, metrics_file: str = "metrics.json",
             epoch_times=(1.0, 2.0), stats: dict | None = None, test_participants=(3,)) -> Path:
    run = root / name
    run.mkdir(parents=True)
    save_config(load_config(None, [f"model.name={model}", f"train.framework={framework}"]), run / "config.yaml")
    (run / "history.json").write_text(json.dumps([{"epoch_time": t, "val_accuracy": 0.5} for t in epoch_times]))
    (run / "split.json").write_text(json.dumps({"split": "x", "train": {"participants": [1, 2]}, "valid": {"participants": [4]},
                                                "test": {"participants": list(test_participants)}}))
    if metrics is not None:
        (run / metrics_file).write_text(json.dumps(metrics))
    if stats is not None:
        (run / "model_stats.json").write_text(json.dumps(stats))
    return run


def stats(params: int, latency: float) -> dict:
    return {"parameters": params, "checkpoint_mb": 1.0, "latency_ms": latency, "threads": 1, "frames": 32, "framework": "torch"}


@pytest.fixture
def runs(tmp_path):
    a = make_run(tmp_path, "a", "transformer", "torch", {"accuracy": 0.5, "top5": 0.75, "macro_f1": 0.4, "split": "test"},
                 stats=stats(1234567, 0.391))
    b = make_run(tmp_path, "b", "lstm", "tensorflow", {"accuracy": 0.625, "top5": 0.9, "macro_f1": 0.55},
                 metrics_file="test_metrics.json", epoch_times=(3.0, 4.0, 5.0), test_participants=(2, 3))
    c = make_run(tmp_path, "c", "lstm", "torch", None, epoch_times=())
    return a, b, c


def test_rows_by_hand(runs):
    a, b, c = runs
    row = run_row(a)
    assert (row.model, row.framework, row.split, row.params, row.latency_ms) == ("transformer", "torch", "signer-independent", 1234567, 0.391)
    assert row.epoch_time_s == pytest.approx(1.5)
    rb = run_row(b)  # metrics from test_metrics.json; participant 2 is in train and test
    assert (rb.accuracy, rb.split, rb.params, rb.epoch_time_s) == (0.625, "signer-dependent", None, pytest.approx(4.0))


def test_markdown_table_sorted_by_accuracy(runs):
    table = markdown_table(compare_runs(list(runs)))
    lines = table.strip().splitlines()
    assert lines[0] == "| run | model | framework | split | accuracy | top-5 | macro F1 | params | epoch time (s) | latency (ms) |"
    assert lines[1] == "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
    assert lines[2] == "| b | lstm | tensorflow | signer-dependent | 62.5% | 90.0% | 0.550 | – | 4.00 | – |"
    assert lines[3] == "| a | transformer | torch | signer-independent | 50.0% | 75.0% | 0.400 | 1,234,567 | 1.50 | 0.39 |"
    assert lines[4] == "| c | lstm | torch | signer-independent | – | – | – | – | – | – |"  # no metrics: last
    assert [r.run for r in compare_runs(list(runs), sort="run")] == ["a", "b", "c"]
    assert json.loads(rows_json(compare_runs(list(runs))))[2]["accuracy"] is None


def test_errors(runs, tmp_path):
    with pytest.raises(ConfigError, match="at least one run"):
        compare_runs([])
    with pytest.raises(ConfigError, match="not a run directory"):
        compare_runs([tmp_path / "nowhere"])
    with pytest.raises(ConfigError, match="--sort"):
        compare_runs(list(runs), sort="speed")


def test_cli_writes_the_table(runs, tmp_path, capsys):
    out = tmp_path / "docs" / "table.md"
    assert main(["compare", *map(str, runs), "--out", str(out), "--json", str(tmp_path / "rows.json")]) == 0
    assert out.read_text() == markdown_table(compare_runs(list(runs)))
    assert "wrote" in capsys.readouterr().out and len(json.loads((tmp_path / "rows.json").read_text())) == 3
    assert main(["compare", str(tmp_path / "nowhere")]) == 2


def test_tune_report_compare_import_no_framework():
    import subprocess
    import sys

    code = ("import sys\nimport islr.tuning.search, islr.tuning.summary, islr.evaluation.report, islr.evaluation.compare, islr.viz.htmlpage\n"
            "import islr.commands.tune, islr.commands.report, islr.commands.compare\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'keras', 'optuna'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_glob_over_runs_skips_what_is_not_a_run(runs, tmp_path, capsys):
    a, b, c = runs
    tune = tmp_path / "tune"
    (tune / "trial_0").mkdir(parents=True)
    (tune / "study.db").write_text("")
    cv = tmp_path / "cv-x"
    make_run(cv / "fold0", "seed0", "lstm", "torch", None)
    (tmp_path / "notes.txt").write_text("x")
    paths = sorted(str(p) for p in tmp_path.iterdir())  # what `islr compare runs/*` passes
    assert main(["compare", *paths, "--sort", "run"]) == 0
    captured = capsys.readouterr()
    table_rows = [line.split(" | ")[0] for line in captured.out.splitlines()[2:]]
    assert table_rows == ["| a", "| b", "| c"]
    skipped = {line.split(":")[0] for line in captured.err.splitlines()}
    assert skipped == {f"skipped {tune}", f"skipped {cv}", f"skipped {tmp_path / 'notes.txt'}"}
    assert f"it holds 1 run(s), e.g. {cv / 'fold0' / 'seed0'}" in captured.err
    listed: list = []
    assert len(compare_runs([*runs, tune], skipped=listed)) == 3
    assert listed == [(str(tune), "not a run directory (no config.yaml)")]


def test_an_evaluation_folder_compares_beside_runs(runs, tmp_path):
    folder = tmp_path / "kaggle-community"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"model": "model.tflite", "framework": "tflite",
                                                     "split": "all of data", "accuracy": 0.75, "top5": 1.0,
                                                     "macro_f1": 0.7, "n": 8}))
    rows = compare_runs([*runs, folder])
    assert [r.run for r in rows] == ["kaggle-community", "b", "a", "c"]
    assert (rows[0].model, rows[0].framework, rows[0].split, rows[0].accuracy) == (
        "model.tflite", "tflite", "all of data", 0.75)
