"""What a finished (or interrupted) search found: best config YAML, importances, plots, HTML.

Everything is rebuilt from the study's storage alone (the base config is a study attribute), so
``islr tune ... --trials 0`` re-writes the summary of an existing study without training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from islr.config import to_dict
from islr.htmlpage import Page, card, figure_png, img, pyplot, table
from islr.tune import apply_params

MIN_TRIALS_FOR_IMPORTANCE = 2


def best_config(study: Any) -> tuple[Any, Any]:
    """``(ExperimentConfig, FrozenTrial)`` of the best complete trial (the base config plus its parameters)."""
    from islr.errors import ConfigError

    trial = _best_trial(study)
    if trial is None:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet")
    return apply_params(study.user_attrs["base_config"], trial.params), trial


def _best_trial(study: Any) -> Any:
    try:
        return study.best_trial
    except ValueError:  # no complete trial
        return None


def write_best_config(study: Any, path: str | Path) -> Path:
    """The best trial as an experiment YAML that ``islr train --config`` accepts unchanged."""
    cfg, trial = best_config(study)
    monitor = study.user_attrs.get("monitor", "value")
    header = (f"# Best trial {trial.number} of Optuna study {study.study_name!r}: {monitor} = {trial.value:.6g}\n"
              f"# Searched parameters: {json.dumps(trial.params, default=str)}\n"
              f"# Train it: islr train --config {Path(path).name}\n")
    path = Path(path)
    path.write_text(header + yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def param_importances(study: Any) -> tuple[dict[str, float], str]:
    """Importances of the searched parameters and a note (fANOVA with scikit-learn, else PED-ANOVA)."""
    import warnings

    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials (has {len(complete)})"
    try:
        import sklearn  # noqa: F401

        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    except ImportError:
        evaluator, name = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:
        return {}, f"could not be computed ({exc})"
    return {k: float(v) for k, v in values.items()}, f"{name} over {len(complete)} complete trials"


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "number": t.number, "state": t.state.name, "value": t.value,
            "epochs": len(t.intermediate_values), "params": t.params,
            "duration_s": t.duration.total_seconds() if t.duration else None,
            "run_dir": t.user_attrs.get("run_dir", ""),
        })
    return rows


def history_png(study: Any) -> bytes:
    """Objective of every finished trial in order, with the best-so-far line."""
    import optuna

    plt = pyplot()
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    fig, ax = plt.subplots(figsize=(7, 3.6))
    best, xs, ys = None, [], []
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.COMPLETE:
            ax.scatter(t.number, t.value, color="#1f77b4", zorder=3, label="complete" if not xs else None)
            best = t.value if best is None else (max(best, t.value) if maximize else min(best, t.value))
            xs.append(t.number)
            ys.append(best)
        elif t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values:
            last = t.intermediate_values[max(t.intermediate_values)]
            ax.scatter(t.number, last, marker="x", color="#d62728", zorder=3, label="pruned (last report)")
    if xs:
        ax.step(xs, ys, where="post", color="#2ca02c", label="best so far")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xlabel("trial")
    ax.set_ylabel(study.user_attrs.get("monitor", "objective"))
    ax.set_title("Optimisation history", fontsize=11)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def intermediate_png(study: Any) -> bytes:
    """The reported validation metric per epoch of every trial (pruned ones in red)."""
    import optuna

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for t in study.get_trials(deepcopy=False):
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        colour = "#d62728" if t.state == optuna.trial.TrialState.PRUNED else "#1f77b4"
        ax.plot([s + 1 for s in steps], [t.intermediate_values[s] for s in steps], marker="o", markersize=3,
                color=colour, alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel(study.user_attrs.get("monitor", "objective"))
    ax.set_title("Validation metric per epoch (red: pruned)", fontsize=11)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def importances_png(importances: dict[str, float]) -> bytes:
    plt = pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    ax.barh(names, [importances[n] for n in names], color="#4c72b0")
    ax.set_xlabel("importance")
    ax.set_title("Parameter importances", fontsize=11)
    ax.tick_params(axis="y", labelsize=8)
    return figure_png(fig)


def write_summary(study: Any, out: str | Path) -> dict[str, Path]:
    """Write best_config.yaml, summary.json, history/intermediate/importances PNGs and summary.html."""
    import optuna

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    states = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in optuna.trial.TrialState}
    best = _best_trial(study)
    importances, importance_note = param_importances(study)
    paths: dict[str, Path] = {}
    if best is not None:
        paths["best_config"] = write_best_config(study, out / "best_config.yaml")
    summary = {
        "study": study.study_name, "direction": study.direction.name.lower(),
        "monitor": study.user_attrs.get("monitor"), "trials": states,
        "best": None if best is None else {
            "number": best.number, "value": best.value, "params": best.params,
            "run_dir": best.user_attrs.get("run_dir"), "config": str(paths.get("best_config", "")),
        },
        "importances": importances, "importance_note": importance_note,
        "trials_table": _trial_rows(study),
    }
    paths["summary"] = out / "summary.json"
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str))
    images = {"history": history_png(study), "intermediate": intermediate_png(study)}
    if importances:
        images["importances"] = importances_png(importances)
    for name, png in images.items():
        paths[name] = out / f"{name}.png"
        paths[name].write_bytes(png)
    paths["html"] = _write_html(study, summary, images, out / "summary.html")
    return paths


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _write_html(study: Any, summary: dict[str, Any], images: dict[str, bytes], path: Path) -> Path:
    monitor = summary["monitor"] or "objective"
    page = Page(f"Optuna study {study.study_name}", f"{summary['direction']} {monitor}")
    best = summary["best"]
    cards = [card("trials complete", str(summary["trials"].get("COMPLETE", 0))),
             card("pruned", str(summary["trials"].get("PRUNED", 0))),
             card("failed", str(summary["trials"].get("FAIL", 0)))]
    if best:
        cards.insert(0, card(f"best {monitor}", f"{best['value']:.4f}"))
    body = f'<div class="cards">{"".join(cards)}</div>'
    if best:
        body += f"<p>Best trial <b>{best['number']}</b>; config: <code>{best['config']}</code></p>"
        body += table(["parameter", "value"], [(k, _fmt(v)) for k, v in best["params"].items()])
    page.add("Result", body)
    page.add("Optimisation history", img(images["history"], "optimisation history") + img(images["intermediate"], "intermediate values"))
    if "importances" in images:
        page.add("Parameter importances", img(images["importances"], "parameter importances")
                 + f'<p class="note">{summary["importance_note"]}</p>')
    else:
        page.add("Parameter importances", f'<p class="note">Importances {summary["importance_note"]}.</p>')
    keys = sorted({k for row in summary["trials_table"] for k in row["params"]})
    rows = [[r["number"], r["state"], _fmt(r["value"]), r["epochs"], *[_fmt(r["params"].get(k)) for k in keys]]
            for r in summary["trials_table"]]
    page.add("Trials", table(["#", "state", monitor, "epochs", *keys], rows, [True, False, True, True, *[True] * len(keys)]))
    return page.write(path)
