"""A Markdown table of runs for the README: ``islr compare runs/* --out table.md``.

A path that is not a run (no ``config.yaml``: ``runs/tune``, a CV folder) is skipped and
reported, so a glob over ``runs/`` works. A folder written by ``islr evaluate MODEL_FILE --out
DIR`` (an exported or community model scored on a dataset) is a row of its own, from its
``metrics.json``.

Metrics come from ``metrics.json`` (written by ``islr evaluate`` / ``islr report``) or else from
``test_metrics.json`` (written at the end of training); parameters and latency from
``model_stats.json`` (written by ``islr report``) or, with ``measure=True``, measured now on one thread.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from islr.errors import ConfigError
from islr.run_dir import RunDir

COLUMNS = ("run", "model", "framework", "split", "accuracy", "top-5", "macro F1", "params", "epoch time (s)", "latency (ms)")


@dataclass
class RunRow:
    """One row of the comparison."""

    run: str
    model: str
    framework: str
    split: str
    accuracy: float
    top5: float
    macro_f1: float
    params: int | None
    epoch_time_s: float
    latency_ms: float

    def cells(self) -> list[str]:
        return [self.run, self.model, self.framework, self.split, _pct(self.accuracy), _pct(self.top5),
                _num(self.macro_f1, 3), f"{self.params:,}" if self.params is not None else "–",
                _num(self.epoch_time_s, 2), _num(self.latency_ms, 2)]


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def _num(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _split_name(run: RunDir, metrics: dict[str, Any]) -> str:
    """``signer-independent`` / ``signer-dependent`` from split.json (what was held out), else the metrics' text."""
    if (run.path / "split.json").exists():
        split = run.read_json("split.json")
        trained = set(split["train"]["participants"])
        held_out = set(split.get("test", {}).get("participants", []))
        if held_out:
            return "signer-dependent" if held_out & trained else "signer-independent"
    return str(metrics.get("split", "?"))


def evaluation_row(folder: str | Path) -> RunRow:
    """A row from an evaluation folder alone (``islr evaluate MODEL_FILE --out DIR``: metrics.json)."""
    path = Path(folder)
    metrics = RunDir(path).read_json("metrics.json")
    nan = float("nan")
    return RunRow(
        run=path.name, model=str(metrics.get("model", "?")), framework=str(metrics.get("framework", "?")),
        split=str(metrics.get("split", "?")), accuracy=float(metrics.get("accuracy", nan)),
        top5=float(metrics.get("top5", nan)), macro_f1=float(metrics.get("macro_f1", nan)), params=None,
        epoch_time_s=nan, latency_ms=nan,
    )


def not_comparable(path: str | Path) -> str | None:
    """Why ``path`` is neither a run nor an evaluation folder (None when it is one of them)."""
    path = Path(path)
    if (path / "config.yaml").is_file():
        return None
    if (path / "metrics.json").is_file():
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except (OSError, ValueError):
            return "not a run directory (no config.yaml) and its metrics.json is not readable JSON"
        if isinstance(metrics, dict) and "model" in metrics and "accuracy" in metrics:
            return None
    if not path.is_dir():
        return "not a run directory (no such folder)" if not path.exists() else "not a run directory (a file)"
    inner = sorted(p.parent for p in path.glob("*/**/config.yaml"))
    hint = f"; it holds {len(inner)} run(s), e.g. {inner[0]}" if inner else ""
    return f"not a run directory (no config.yaml){hint}"


def run_row(run_dir: str | Path, measure: bool = False) -> RunRow:
    """Collect one run's numbers (see the module docstring for where each comes from)."""
    if not (Path(run_dir) / "config.yaml").is_file() and not_comparable(run_dir) is None:
        return evaluation_row(run_dir)
    run = RunDir(run_dir)
    cfg = run.load_config()
    metrics: dict[str, Any] = {}
    for name in ("metrics.json", "test_metrics.json"):
        if (run.path / name).exists():
            metrics = run.read_json(name)
            break
    history = run.read_history()
    times = [float(r["epoch_time"]) for r in history if "epoch_time" in r]
    from islr.evaluation.report import measure_model, read_model_stats

    stats = read_model_stats(run.path)
    if stats is None and measure:
        stats = measure_model(run.path)
    nan = float("nan")
    return RunRow(
        run=run.path.name, model=cfg.model.name, framework=cfg.train.framework, split=_split_name(run, metrics),
        accuracy=float(metrics.get("accuracy", nan)), top5=float(metrics.get("top5", nan)),
        macro_f1=float(metrics.get("macro_f1", nan)), params=stats.parameters if stats else None,
        epoch_time_s=sum(times) / len(times) if times else nan, latency_ms=stats.latency_ms if stats else nan,
    )


def compare_runs(run_dirs: list[str | Path], measure: bool = False, sort: str = "accuracy",
                 skipped: list[tuple[str, str]] | None = None) -> list[RunRow]:
    """Rows for every run directory, best ``sort`` first (``accuracy``, ``top5``, ``macro_f1`` or ``run``).

    Paths that are neither runs nor evaluation folders (``runs/tune``, a CV folder, a stray file)
    are left out and, when ``skipped`` is a list, appended to it as ``(path, reason)``; a
    :class:`ConfigError` only when nothing is left.
    """
    if not run_dirs:
        raise ConfigError("compare: name at least one run directory")
    if sort not in ("accuracy", "top5", "macro_f1", "run"):
        raise ConfigError(f"compare: --sort must be accuracy, top5, macro_f1 or run, got {sort!r}")
    left_out = [(str(d), reason) for d in run_dirs if (reason := not_comparable(d)) is not None]
    if skipped is not None:
        skipped.extend(left_out)
    kept = [d for d in run_dirs if not_comparable(d) is None]
    if not kept:
        raise ConfigError("compare: nothing to compare; " + "; ".join(f"{p}: {r}" for p, r in left_out))
    rows = [run_row(d, measure) for d in kept]
    if sort == "run":
        return sorted(rows, key=lambda r: r.run)
    return sorted(rows, key=lambda r: -getattr(r, sort) if not math.isnan(getattr(r, sort)) else math.inf)


def markdown_table(rows: list[RunRow]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    numeric = {"accuracy", "top-5", "macro F1", "params", "epoch time (s)", "latency (ms)"}
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if c in numeric else "---" for c in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |")
    return "\n".join(lines) + "\n"


def rows_json(rows: list[RunRow]) -> str:
    """The same rows as JSON (NaN written as null)."""
    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value

    return json.dumps([{k: clean(v) for k, v in vars(r).items()} for r in rows], indent=2)
