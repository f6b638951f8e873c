"""What a finished (or interrupted) search found: best config YAML, importances, plots, HTML.

Everything is rebuilt from the study's storage alone (the base config is a study attribute), so
``islr tune ... --trials 0`` re-writes the summary of an existing study without training.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from islr.config import to_dict
from islr.tuning.search import apply_params
from islr.viz.htmlpage import Page, card, figure_png, img, pyplot, table

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


def _importance_evaluator() -> tuple[Any, str]:
    """fANOVA when scikit-learn is installed, else PED-ANOVA (both seeded or deterministic)."""
    import optuna

    try:
        import sklearn  # noqa: F401

        return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    except ImportError:
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"


def param_importances(study: Any) -> tuple[dict[str, float], str]:
    """Importances of the searched parameters and a note (fANOVA with scikit-learn, else PED-ANOVA)."""
    import warnings

    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials (has {len(complete)})"
    evaluator, name = _importance_evaluator()
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


def _optuna_png(plot: Callable[..., Any], study: Any, size: tuple[float, float], **kwargs: Any) -> bytes:
    """One of Optuna's matplotlib plots as PNG bytes, without leaking its style into other plots.

    The plots set the ggplot style sheet globally; ``rc_context`` restores every setting on exit
    and the figure is saved inside it, so its colours are the ones it was drawn with.
    """
    import warnings

    import matplotlib
    import numpy as np
    import optuna

    pyplot()  # the Agg backend before Optuna imports pyplot
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # matplotlib: a parameter with one value so far
        axes = plot(study, **kwargs)
        fig = np.ravel(axes)[0].figure
        fig.set_size_inches(*size)
        return figure_png(fig)


def history_png(study: Any) -> bytes:
    """Objective of every complete trial in order, with the best value so far (Optuna's plot)."""
    from optuna.visualization.matplotlib import plot_optimization_history

    return _optuna_png(plot_optimization_history, study, (7, 3.8), target_name=_monitor(study))


def intermediate_png(study: Any) -> bytes:
    """The validation metric each trial reported per epoch (Optuna's plot; pruned ones stop early)."""
    from optuna.visualization.matplotlib import plot_intermediate_values

    return _optuna_png(plot_intermediate_values, study, (7, 3.8))


def importances_png(study: Any) -> bytes:
    """Importance of each searched parameter, by the evaluator of :func:`param_importances`."""
    from optuna.visualization.matplotlib import plot_param_importances

    evaluator, _ = _importance_evaluator()
    height = 0.45 * len({k for t in _complete(study) for k in t.params}) + 1.6
    return _optuna_png(plot_param_importances, study, (7, height), evaluator=evaluator, target_name=_monitor(study))


def slice_png(study: Any) -> bytes:
    """The objective of every complete trial against each parameter (one panel per parameter)."""
    from optuna.visualization.matplotlib import plot_slice

    panels = len({k for t in _complete(study) for k in t.params})
    return _optuna_png(plot_slice, study, (max(7.0, 4.0 * panels), 3.6), target_name=_monitor(study))


def parallel_png(study: Any) -> bytes:
    """Every complete trial as a line through its parameter values, coloured by its objective."""
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _optuna_png(plot_parallel_coordinate, study, (8, 4.2), target_name=_monitor(study))


def _monitor(study: Any) -> str:
    return study.user_attrs.get("monitor") or "objective"


def _complete(study: Any) -> list[Any]:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _images(study: Any, has_importances: bool) -> dict[str, bytes]:
    """The summary's plots: only those with something to show for this study."""
    complete = _complete(study)
    params = {k for t in complete for k in t.params}
    images = {}
    if complete:
        images["history"] = history_png(study)
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        images["intermediate"] = intermediate_png(study)
    if has_importances:
        images["importances"] = importances_png(study)
    if complete and params:
        images["slice"] = slice_png(study)
    if len(complete) >= 2 and len(params) >= 2:
        images["parallel"] = parallel_png(study)
    return images


def write_summary(study: Any, out: str | Path) -> dict[str, Path]:
    """Write best_config.yaml, summary.json, the plots that apply (history, intermediate, importances,
    slice, parallel; PNG, drawn by Optuna) and summary.html."""
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
    images = _images(study, bool(importances))
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
    history = "".join(img(images[k], alt) for k, alt in (("history", "optimisation history"),
                                                          ("intermediate", "intermediate values")) if k in images)
    page.add("Optimisation history", history or '<p class="note">No trial has reported a value yet.</p>')
    if "importances" in images:
        page.add("Parameter importances", img(images["importances"], "parameter importances")
                 + f'<p class="note">{summary["importance_note"]}</p>')
    else:
        page.add("Parameter importances", f'<p class="note">Importances {summary["importance_note"]}.</p>')
    if "slice" in images:
        page.add("Parameters against the objective", img(images["slice"], "slice plot")
                 + (img(images["parallel"], "parallel coordinates") if "parallel" in images else ""))
    keys = sorted({k for row in summary["trials_table"] for k in row["params"]})
    rows = [[r["number"], r["state"], _fmt(r["value"]), r["epochs"], *[_fmt(r["params"].get(k)) for k in keys]]
            for r in summary["trials_table"]]
    page.add("Trials", table(["#", "state", monitor, "epochs", *keys], rows, [True, False, True, True, *[True] * len(keys)]))
    return page.write(path)
