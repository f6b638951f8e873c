"""Hyperparameter search with Optuna: shipped search spaces, pruning, a persistent study.

The search space of a model lives in ``configs/search/<model>.yaml`` (``default.yaml`` for a
model without its own file)::

    base: default.yaml            # optional: start from another space file
    params:
      train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      model.params.num_layers: {type: int, low: 1, high: 4}
      train.batch_size: {type: categorical, choices: [32, 64, 128]}

Each key is a dotted config path (the same paths as ``islr train`` overrides). Every trial is an
ordinary training run through :func:`islr.training.pipeline.train` (so both frameworks work), in
``<out>/trials/<study>/trial-NNNN``. A trainer callback reports the validation metric each epoch
and stops the run when the pruner says so. The study lives in a database (SQLite file
``<out>/study.db`` by default, or any SQLAlchemy URL) with heartbeats: running the same command
again continues the study, a trial left ``RUNNING`` by a killed process is marked ``FAIL`` once its
heartbeat is stale and its parameters are tried again. ``--trials N`` is the total number of
finished (complete or pruned) trials the study should hold.
"""

from __future__ import annotations

import json
import math
import os
import socket
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from islr.config import ExperimentConfig, configs_dir, from_dict, merge, to_dict
from islr.errors import ConfigError, IslrError

SECTIONS = ("data", "preprocess", "augment", "model", "train")
TYPES = ("float", "int", "categorical")


@dataclass
class SearchParam:
    """One dimension of a search space: a dotted config path and its distribution."""

    path: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] = field(default_factory=list)


def search_space_path(model: str) -> Path:
    """The shipped space of ``model`` (``configs/search/<model>.yaml``), else ``default.yaml``."""
    folder = configs_dir() / "search"
    own = folder / f"{model}.yaml"
    return own if own.exists() else folder / "default.yaml"


def _read_space_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: search space file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict):
        raise ConfigError(f"{path}: expected a mapping with a 'params' mapping")
    unknown = set(data) - {"base", "params"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; use 'base' and 'params'")
    params = dict(data.get("params") or {})
    if data.get("base"):
        params = {**_read_space_file((path.parent / data["base"]).resolve()), **params}
    return params


def load_search_space(model_or_path: str | Path) -> dict[str, SearchParam]:
    """Read a search space: a YAML file path, or a model name (its shipped space)."""
    text = str(model_or_path)
    path = Path(text) if text.endswith((".yaml", ".yml")) else search_space_path(text)
    space: dict[str, SearchParam] = {}
    for key, spec in _read_space_file(path).items():
        if spec is None:  # `key: null` in a derived file removes a dimension of its base
            continue
        space[key] = _parse_param(path, key, spec)
    if not space:
        raise ConfigError(f"{path}: the search space has no parameters")
    return space


def _parse_param(path: Path, key: str, spec: Any) -> SearchParam:
    where = f"{path}: {key}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping like {{type: float, low: 0.0, high: 1.0}}")
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}: type must be one of {TYPES}, got {kind!r}")
    _check_path(where, key)
    param = SearchParam(key, kind, _number(spec.get("low")), _number(spec.get("high")), bool(spec.get("log", False)),
                        _number(spec.get("step")), list(spec.get("choices") or []))
    if kind == "categorical":
        if not param.choices:
            raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
        bad = [c for c in param.choices if not (c is None or isinstance(c, bool | int | float | str))]
        if bad:
            raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null, got {bad}")
    else:
        if not isinstance(param.low, int | float) or not isinstance(param.high, int | float) or param.low > param.high:
            raise ConfigError(f"{where}: needs numbers low <= high, got low={param.low!r} high={param.high!r}")
        if param.log and param.low <= 0:
            raise ConfigError(f"{where}: a log-scaled range needs low > 0")
        if param.log and param.step:
            raise ConfigError(f"{where}: 'step' and 'log' cannot be combined")
        if kind == "int" and not (float(param.low).is_integer() and float(param.high).is_integer()):
            raise ConfigError(f"{where}: an int range needs integer bounds")
    return param


def _number(value: Any) -> Any:
    """YAML reads ``1e-3`` (no dot) as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_path(where: str, key: str) -> None:
    """The dotted path must name a config field (``model.params.*`` is checked when the model is built)."""
    import dataclasses

    parts = key.split(".")
    if parts[0] not in SECTIONS:
        raise ConfigError(f"{where}: the path must start with one of {SECTIONS}")
    if parts[:2] == ["model", "params"] and len(parts) > 2:
        return
    section = getattr(ExperimentConfig(), parts[0])
    names = {f.name for f in dataclasses.fields(section)}
    if len(parts) != 2 or parts[1] not in names:
        raise ConfigError(f"{where}: {'.'.join(parts[1:]) or '(nothing)'} is not a field of {parts[0]}; known: {sorted(names)}")


def suggest(trial: Any, space: dict[str, SearchParam]) -> dict[str, Any]:
    """Ask ``trial`` (an ``optuna.Trial`` or ``FixedTrial``) for one value per dimension."""
    values: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "float":
            values[key] = trial.suggest_float(key, float(p.low), float(p.high), log=p.log,
                                              step=float(p.step) if p.step else None)
        elif p.type == "int":
            values[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[key] = trial.suggest_categorical(key, p.choices)
    return values


def apply_params(base: ExperimentConfig | dict[str, Any], params: dict[str, Any]) -> ExperimentConfig:
    """A copy of ``base`` with each dotted ``params`` path set to its value (validated)."""
    data = to_dict(base) if isinstance(base, ExperimentConfig) else dict(base)
    for key, value in params.items():
        nested: dict[str, Any] = {}
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        data = merge(data, nested)
    return from_dict(ExperimentConfig, data)


class PruningCallback:
    """Trainer callback: report ``monitor`` to the Optuna trial each epoch, stop when it should prune."""

    def __init__(self, trial: Any, monitor: str):
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True


@dataclass
class TuneSettings:
    """Everything one search (or one parallel worker of it) needs; plain data, so it pickles."""

    base_config: dict[str, Any]
    space_path: str
    storage: str
    study_name: str
    out: str
    trials: int
    pruner: str = "median"
    seed: int = 0
    heartbeat_interval: int = 10
    grace_period: int = 30


def default_storage(out: str | Path) -> str:
    """``sqlite:///<out>/study.db`` (absolute, so it works from any working directory)."""
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def storage_url(text: str) -> str:
    """A SQLAlchemy URL as given, or a bare file path turned into an SQLite URL."""
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


def sqlalchemy_url(url: str) -> str:
    """``url`` with a driver SQLAlchemy can load: a plain ``postgresql://`` (or ``postgres://``)
    URL means psycopg 3 (``postgresql+psycopg://``; SQLAlchemy's default, psycopg2, is not a
    dependency); URLs naming a driver, and other databases, are kept."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_storage(url: str, heartbeat_interval: int = 10, grace_period: int = 30) -> Any:
    """An Optuna ``RDBStorage`` with heartbeats; a stale trial is failed and retried once.

    SQLite (the default) suits one machine; a server database (``postgresql://user@host/db``)
    lets worker processes on several machines share one study.
    """
    import optuna

    url = sqlalchemy_url(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat options are marked experimental
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
        )


def make_pruner(name: str, max_epochs: int) -> Any:
    """``median`` (after 2 complete trials and 1 epoch), ``hyperband`` or ``none``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner must be median, hyperband or none, got {name!r}")


def open_study(settings: TuneSettings, pruner: Any = None, worker: int = 0) -> Any:
    """Create the study or load it (``load_if_exists``); records the base config and space on creation.

    The TPE sampler is seeded with ``seed + trials already in the study`` (plus an offset per
    parallel worker): deterministic, yet a resumed search does not replay the random start-up
    trials it already ran.
    """
    import optuna

    base = from_dict(ExperimentConfig, settings.base_config)
    direction = "maximize" if base.train.mode == "max" else "minimize"
    storage = make_storage(settings.storage, settings.heartbeat_interval, settings.grace_period)
    study = optuna.create_study(storage=storage, study_name=settings.study_name, direction=direction,
                                pruner=pruner or make_pruner(settings.pruner, base.train.epochs),
                                load_if_exists=True)
    study.sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.trials) + 10_007 * worker)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {settings.study_name!r} in {settings.storage} {study.direction.name.lower()}s; "
                          f"train.mode={base.train.mode} needs a new study (--study NAME)")
    if "base_config" not in study.user_attrs:
        study.set_user_attr("base_config", settings.base_config)
        study.set_user_attr("monitor", base.train.monitor)
        study.set_user_attr("space", {k: asdict(v) for k, v in load_search_space(settings.space_path).items()})
    return study


def finished_trials(study: Any) -> list[Any]:
    """Trials that count towards ``--trials``: complete or pruned."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def make_objective(settings: TuneSettings, callbacks: Iterable[Any] = (), log: Callable[[str], None] = print) -> Callable[[Any], float]:
    """The Optuna objective: sample, train a run, return the best validation metric."""
    import optuna

    from islr.training.pipeline import train

    base = from_dict(ExperimentConfig, settings.base_config)
    space = load_search_space(settings.space_path)
    monitor, maximize = base.train.monitor, base.train.mode == "max"
    extra = tuple(callbacks)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it
        cfg = apply_params(base, params)
        cfg.train.progress = False  # one line per trial instead of progress bars
        run_dir = Path(settings.out) / "trials" / settings.study_name / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        pruning = PruningCallback(trial, monitor)
        result = train(cfg, run_dir, callbacks=(pruning, *extra))
        values = [row[monitor] for row in result.history if math.isfinite(row.get(monitor, math.nan))]
        trial.set_user_attr("num_parameters", int(result.num_parameters))
        trial.set_user_attr("epochs", len(result.history))
        if result.test_metrics:
            trial.set_user_attr("test_metrics", {k: float(v) for k, v in result.test_metrics.items() if isinstance(v, int | float)})
        if pruning.pruned:
            log(f"trial {trial.number}: pruned after epoch {pruning.pruned_at + 1} ({monitor} {values[-1]:.4f})")
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at + 1}")
        if not values:
            raise ConfigError(f"trial {trial.number}: no finite {monitor} in the history")
        best = max(values) if maximize else min(values)
        log(f"trial {trial.number}: {monitor} {best:.4f}  {json.dumps(params, default=str)}")
        return best

    return objective


def total_trials_callback(trials: int) -> Any:
    """Stops a worker once the study holds ``trials`` finished trials, whoever ran them: workers
    started independently (other machines on one database) do not each run their own count."""
    import optuna
    from optuna.trial import TrialState

    return optuna.study.MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _worker_share(remaining: int, jobs: int) -> list[int]:
    return [remaining // jobs + (1 if i < remaining % jobs else 0) for i in range(jobs)]


def _run_worker(settings: TuneSettings, n_trials: int, worker: int) -> None:
    """A parallel worker process: its own sampler seed, the shared study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(settings, worker=worker)
    study.optimize(make_objective(settings), n_trials=n_trials, catch=(IslrError,),
                   callbacks=[total_trials_callback(settings.trials)])


def run_search(settings: TuneSettings, jobs: int = 1, pruner: Any = None, callbacks: Iterable[Any] = (),
               log: Callable[[str], None] = print) -> Any:
    """Run (or continue) the study until it holds ``settings.trials`` finished trials; returns it.

    Trials left ``RUNNING`` with a stale heartbeat (a killed process) are failed first and their
    parameters queued again. ``jobs > 1`` starts that many worker processes on the same storage
    (each with ``OMP_NUM_THREADS`` = cores / jobs unless set); ``callbacks`` (extra trainer
    callbacks) and a custom ``pruner`` apply to in-process trials only.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    Path(settings.out).mkdir(parents=True, exist_ok=True)
    study = open_study(settings, pruner=pruner)
    stored = study.user_attrs.get("base_config")
    if stored and stored != settings.base_config:
        log(f"note: study {settings.study_name!r} was started with another base config; new trials use the current one")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental API
        optuna.storages.fail_stale_trials(study)
    remaining = settings.trials - len(finished_trials(study))
    log(f"study {settings.study_name!r} ({settings.storage}): {len(finished_trials(study))} finished, "
        f"{max(remaining, 0)} to run")
    if remaining <= 0:
        return study
    if jobs <= 1:
        study.optimize(make_objective(settings, callbacks, log), n_trials=remaining, catch=(IslrError,),
                       callbacks=[total_trials_callback(settings.trials)])
        return study
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", threads)  # inherited by the spawned workers
    try:
        workers = [context.Process(target=_run_worker, args=(settings, n, i)) for i, n in enumerate(_worker_share(remaining, jobs)) if n]
        for process in workers:
            process.start()
        for process in workers:
            process.join()
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    failed = [p.exitcode for p in workers if p.exitcode]
    if failed:
        log(f"warning: {len(failed)} worker(s) exited with codes {failed}")
    return optuna.load_study(study_name=settings.study_name, storage=make_storage(settings.storage))
