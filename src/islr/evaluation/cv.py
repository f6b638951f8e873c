"""Participant-grouped k-fold cross-validation, optionally with several seeds per fold.

``cross_validate(cfg, out_dir, folds=5, seeds=1)`` trains ``folds x seeds`` runs
(``out_dir/fold<k>/seed<s>``); with ``seeds > 1`` each fold also gets an ensemble run
(``out_dir/fold<k>/ensemble``) averaging its seeds' logits, which ``islr evaluate`` and
``islr predict`` accept. The validation participants of fold ``k`` are never seen in its
training, so the mean over folds estimates accuracy on unseen signers. Finished members are
skipped and interrupted ones resumed, so a killed CV continues where it stopped.

Each member is also scored at its last checkpoint on its validation participants with mirror
test-time augmentation (``val_accuracy_tta``; ``tta="none"`` skips it), per class (recall of
each sign, ``val_per_class``, and their mean ``val_macro_recall``: accuracy alone hides "every
minority sign wrong"), and, with ``eval_data_dir``, on every sequence of another dataset
(``eval_accuracy``: e.g. train on Kaggle signers, test on webcam signers). With
``data.fold_participants`` only those participants rotate through the folds; everyone else
always trains.
"""

from __future__ import annotations

import copy
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from islr.config import ExperimentConfig
from islr.errors import ConfigError
from islr.fileio import atomic_write_text

RESULT_FILE = "cv_member.json"
#: Columns of the Markdown table, in order, when present.
TABLE_KEYS = ("val_accuracy", "val_accuracy_tta", "val_macro_recall", "val_top5", "ensemble_accuracy",
              "ensemble_accuracy_tta", "ensemble_top5", "eval_accuracy", "eval_accuracy_tta", "eval_macro_recall")
#: Per-member scores averaged over a fold's seeds (then mean and std over folds).
MEMBER_KEYS = ("val_accuracy", "val_top5", "val_accuracy_tta", "val_macro_recall", "val_macro_recall_tta",
               "eval_accuracy", "eval_accuracy_tta", "eval_macro_recall", "eval_macro_recall_tta")


@dataclass
class CVResult:
    """Per-fold validation metrics and their mean and spread."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path

    def markdown(self) -> str:
        """A Markdown table: one row per fold, then mean and std."""
        keys = [k for k in TABLE_KEYS if any(k in r for r in self.rows)]
        lines = ["| fold | participants | n | " + " | ".join(keys) + " |", "|---|---|---:|" + "---:|" * len(keys)]
        for r in self.rows:
            cells = " | ".join(f"{r[k]:.4f}" if k in r else "" for k in keys)
            lines.append(f"| {r['fold']} | {','.join(map(str, r['participants']))} | {r['n']} | {cells} |")
        for stat in ("mean", "std"):
            cells = " | ".join(f"{self.summary[k][stat]:.4f}" if k in self.summary else "" for k in keys)
            lines.append(f"| {stat} | | | {cells} |")
        return "\n".join(lines)


def per_class_recall(logits: Any, labels: Any, sign_names: list[str]) -> dict[str, float | None]:
    """Recall of each sign (None where the sign has no sample)."""
    import numpy as np

    from islr.metrics import per_class_accuracy

    values = per_class_accuracy(np.asarray(labels), np.asarray(logits).argmax(-1), len(sign_names))
    return {name: (None if np.isnan(v) else float(v)) for name, v in zip(sign_names, values, strict=True)}


def _macro(per_class: dict[str, float | None]) -> float:
    values = [v for v in per_class.values() if v is not None]
    return statistics.fmean(values) if values else float("nan")


def _scores(run_dir: Path, prefix: str, tta: str, data_dir: str | None, split: str) -> dict[str, Any]:
    """Accuracy and per-class recall of a run's last checkpoint (plain, and with TTA if asked)."""
    from islr.evaluation.evaluate import evaluate_run

    ev = evaluate_run(run_dir, data_dir=data_dir, split=split, checkpoint="last",
                      out_dir=run_dir / f"cv_{prefix}", tta=tta)
    names = [n for n, _ in sorted(json.loads((run_dir / "sign_map.json").read_text()).items(), key=lambda kv: kv[1])]
    plain = ev.logits if ev.plain_logits is None else ev.plain_logits
    per_class = per_class_recall(plain, ev.labels, names)
    out: dict[str, Any] = {f"{prefix}_accuracy": float((plain.argmax(-1) == ev.labels).mean()),
                           f"{prefix}_per_class": per_class, f"{prefix}_macro_recall": _macro(per_class),
                           f"{prefix}_n": int(len(ev.labels))}
    if ev.plain_logits is not None:
        per_class_tta = per_class_recall(ev.logits, ev.labels, names)
        out.update({f"{prefix}_accuracy_tta": float(ev.metrics["accuracy"]), f"{prefix}_per_class_tta": per_class_tta,
                    f"{prefix}_macro_recall_tta": _macro(per_class_tta)})
    return out


def _member(cfg: ExperimentConfig, run_dir: Path, tta: str = "mirror", eval_data_dir: str | None = None) -> dict[str, Any]:
    """Train (or resume, or reuse) one fold member and score it; the record is cached in the run."""
    done = run_dir / RESULT_FILE
    record = json.loads(done.read_text()) if done.exists() else _train_member(cfg, run_dir)
    changed = not done.exists()
    # Scores asked for now but missing from an earlier record are added (a re-run with more flags).
    if "val_per_class" not in record or (tta != "none" and "val_accuracy_tta" not in record):
        record.update({k: v for k, v in _scores(run_dir, "val", tta, None, "valid").items() if k != "val_accuracy"})
        changed = True
    if eval_data_dir and (record.get("eval_data_dir") != str(eval_data_dir)
                          or (tta != "none" and "eval_accuracy_tta" not in record)):
        record.update(_scores(run_dir, "eval", tta, str(eval_data_dir), "all"), eval_data_dir=str(eval_data_dir))
        changed = True
    if changed:
        atomic_write_text(done, json.dumps(record, indent=2))
    return record


def _train_member(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    from islr.training.pipeline import train

    resume = any((run_dir / "checkpoints").glob("last.*"))  # interrupted: continue it
    result = train(cfg, run_dir, resume=resume)
    history = result.history or [{}]
    last = history[-1]
    best = max(history, key=lambda r: r.get("val_accuracy", float("-inf")))
    split = json.loads((run_dir / "split.json").read_text())
    # The fold's score is its LAST epoch: picking the best epoch on the same validation signers
    # would select on the test set and flatter the estimate (kept separately as best_*).
    record = {
        "run_dir": str(run_dir), "seed": cfg.train.seed,
        "val_accuracy": last.get("val_accuracy"), "val_top5": last.get("val_top5"), "epochs": len(result.history),
        "best_val_accuracy": best.get("val_accuracy"), "best_epoch": best.get("epoch"),
        "participants": split["valid"]["participants"], "n": len(split["valid"]["sequence_ids"]),
    }
    return record


def cross_validate(cfg: ExperimentConfig, out_dir: str | Path, folds: int = 5, seeds: int = 1,
                   only_folds: list[int] | None = None, tta: str = "mirror",
                   eval_data_dir: str | Path | None = None, export_dir: str | Path | None = None) -> CVResult:
    """Train every fold (and seed); returns per-fold metrics and mean/std over folds.

    ``tta``: also score each member with mirror TTA (``none`` skips it); ``eval_data_dir``: also
    score each member on every sequence of that dataset (Kaggle layout, the run's sign map);
    ``export_dir``: afterwards write every member's last checkpoint, copied, as ONE self-contained
    ensemble run directory (:func:`export_ensemble`).
    """
    from islr.data.tta import check_tta

    check_tta(tta)
    if export_dir is not None:
        _check_export_dir(Path(export_dir))
    if eval_data_dir is not None and not Path(eval_data_dir).is_dir():
        raise ConfigError(f"--eval-data-dir {eval_data_dir}: folder not found")
    if folds < 2:
        raise ConfigError("--folds must be at least 2")
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    trained: list[tuple[str, str]] = []  # (member name, run dir) for --export
    for fold in only_folds if only_folds is not None else range(folds):
        members = []
        for s in range(seeds):
            member_cfg = copy.deepcopy(cfg)
            member_cfg.data.folds, member_cfg.data.fold = folds, fold
            member_cfg.train.seed = cfg.train.seed + s
            print(f"-- fold {fold + 1}/{folds}, seed {member_cfg.train.seed}", flush=True)
            members.append(_member(member_cfg, out / f"fold{fold}" / f"seed{s}", tta, eval_data_dir))
            trained.append((f"fold{fold}-seed{s}", members[-1]["run_dir"]))
        row: dict[str, Any] = {"fold": fold, "participants": members[0]["participants"], "n": members[0]["n"]}
        for key in MEMBER_KEYS:
            if all(m.get(key) is not None for m in members):
                row[key] = statistics.fmean(m[key] for m in members)
        for key in ("val_per_class", "val_per_class_tta", "eval_per_class", "eval_per_class_tta"):
            if all(key in m for m in members):
                row[key] = _mean_per_class([m[key] for m in members])
        if seeds > 1:
            row.update(_ensemble_row(out / f"fold{fold}", [m["run_dir"] for m in members], tta))
        rows.append(row)
    summary: dict[str, Any] = {"folds": folds, "seeds": seeds, "model": cfg.model.name, "framework": cfg.train.framework,
                               "tta": tta, "fold_participants": list(cfg.data.fold_participants)}
    if eval_data_dir is not None:
        summary["eval_data_dir"] = str(eval_data_dir)
    if export_dir is not None:
        summary["export_dir"] = str(export_ensemble(export_dir, trained))
    for key in (*MEMBER_KEYS, "ensemble_accuracy", "ensemble_top5", "ensemble_accuracy_tta"):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            summary[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}
    for key in ("val_per_class", "val_per_class_tta", "eval_per_class", "eval_per_class_tta"):
        if any(key in r for r in rows):
            summary[key] = _mean_per_class([r[key] for r in rows if key in r])
    out.mkdir(parents=True, exist_ok=True)
    result = CVResult(rows, summary, out)
    atomic_write_text(out / "cv_summary.json", json.dumps({"summary": summary, "folds": rows}, indent=2))
    atomic_write_text(out / "cv_summary.md", result.markdown() + "\n")
    return result


def _check_export_dir(path: Path) -> None:
    from islr.inference.ensemble import is_ensemble

    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not is_ensemble(path))):
        raise ConfigError(f"--export {path}: exists and is not an ensemble run directory; choose a new folder")


def export_ensemble(export_dir: str | Path, members: list[tuple[str, str]]) -> Path:
    """Write ``members`` (``(name, run dir)``) as one self-contained ensemble run directory.

    Each member's LAST checkpoint (the one CV scored) is copied to ``export_dir/members/<name>``;
    ``islr predict``, ``live``, ``evaluate`` and ``export`` accept the folder, also once moved.
    """
    from islr.inference.ensemble import write_ensemble

    out = Path(export_dir)
    _check_export_dir(out)
    names, dirs = zip(*members, strict=True) if members else ((), ())
    return write_ensemble(out, list(dirs), copy_members=True, checkpoint="last", names=list(names))


def _mean_per_class(tables: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Per sign, the mean over the tables that have a value (None where none has)."""
    out: dict[str, float | None] = {}
    for name in tables[0]:
        values = [t[name] for t in tables if t.get(name) is not None]
        out[name] = statistics.fmean(values) if values else None
    return out


def _ensemble_row(fold_dir: Path, member_dirs: list[str], tta: str = "none") -> dict[str, Any]:
    """Write the fold's ensemble run and score it on the fold's validation participants."""
    from islr.evaluation.evaluate import evaluate_run
    from islr.inference.ensemble import write_ensemble

    ensemble = write_ensemble(fold_dir / "ensemble", member_dirs)
    # The ensemble's split.json is the first member's: the same folds for every seed (data.split_seed).
    (ensemble / "split.json").write_bytes((Path(member_dirs[0]) / "split.json").read_bytes())
    ev = evaluate_run(ensemble, split="valid", checkpoint="last", tta=tta)
    row = {"ensemble_accuracy": ev.metrics["accuracy"], "ensemble_top5": ev.metrics["top5"], "ensemble_dir": str(ensemble)}
    if ev.plain_logits is not None:
        from islr.metrics import accuracy, top_k_accuracy

        row.update(ensemble_accuracy=accuracy(ev.plain_logits, ev.labels), ensemble_top5=top_k_accuracy(ev.plain_logits, ev.labels),
                   ensemble_accuracy_tta=ev.metrics["accuracy"])
    return row
