"""Participant-grouped k-fold cross-validation, optionally with several seeds per fold.

``cross_validate(cfg, out_dir, folds=5, seeds=1)`` trains ``folds x seeds`` runs
(``out_dir/fold<k>/seed<s>``); with ``seeds > 1`` each fold also gets an ensemble run
(``out_dir/fold<k>/ensemble``) averaging its seeds' logits, which ``islr evaluate`` and
``islr predict`` accept. The validation participants of fold ``k`` are never seen in its
training, so the mean over folds estimates accuracy on unseen signers. Finished members are
skipped and interrupted ones resumed, so a killed CV continues where it stopped.
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

RESULT_FILE = "cv_member.json"


@dataclass
class CVResult:
    """Per-fold validation metrics and their mean and spread."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path

    def markdown(self) -> str:
        """A Markdown table: one row per fold, then mean and std."""
        keys = [k for k in ("val_accuracy", "val_top5", "ensemble_accuracy", "ensemble_top5") if any(k in r for r in self.rows)]
        lines = ["| fold | participants | n | " + " | ".join(keys) + " |", "|---|---|---:|" + "---:|" * len(keys)]
        for r in self.rows:
            cells = " | ".join(f"{r[k]:.4f}" if k in r else "" for k in keys)
            lines.append(f"| {r['fold']} | {','.join(map(str, r['participants']))} | {r['n']} | {cells} |")
        for stat in ("mean", "std"):
            cells = " | ".join(f"{self.summary[k][stat]:.4f}" if k in self.summary else "" for k in keys)
            lines.append(f"| {stat} | | | {cells} |")
        return "\n".join(lines)


def _member(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    from islr.training.pipeline import train

    done = run_dir / RESULT_FILE
    if done.exists():
        return json.loads(done.read_text())
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
    done.write_text(json.dumps(record, indent=2))
    return record


def cross_validate(cfg: ExperimentConfig, out_dir: str | Path, folds: int = 5, seeds: int = 1,
                   only_folds: list[int] | None = None) -> CVResult:
    """Train every fold (and seed); returns per-fold metrics and mean/std over folds."""
    if folds < 2:
        raise ConfigError("--folds must be at least 2")
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for fold in only_folds if only_folds is not None else range(folds):
        members = []
        for s in range(seeds):
            member_cfg = copy.deepcopy(cfg)
            member_cfg.data.folds, member_cfg.data.fold = folds, fold
            member_cfg.train.seed = cfg.train.seed + s
            print(f"-- fold {fold + 1}/{folds}, seed {member_cfg.train.seed}", flush=True)
            members.append(_member(member_cfg, out / f"fold{fold}" / f"seed{s}"))
        row: dict[str, Any] = {
            "fold": fold, "participants": members[0]["participants"], "n": members[0]["n"],
            "val_accuracy": statistics.fmean(m["val_accuracy"] for m in members),
            "val_top5": statistics.fmean(m["val_top5"] for m in members),
        }
        if seeds > 1:
            row.update(_ensemble_row(out / f"fold{fold}", [m["run_dir"] for m in members]))
        rows.append(row)
    summary: dict[str, Any] = {"folds": folds, "seeds": seeds, "model": cfg.model.name, "framework": cfg.train.framework}
    for key in ("val_accuracy", "val_top5", "ensemble_accuracy", "ensemble_top5"):
        values = [r[key] for r in rows if key in r]
        if values:
            summary[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}
    out.mkdir(parents=True, exist_ok=True)
    result = CVResult(rows, summary, out)
    (out / "cv_summary.json").write_text(json.dumps({"summary": summary, "folds": rows}, indent=2))
    (out / "cv_summary.md").write_text(result.markdown() + "\n")
    return result


def _ensemble_row(fold_dir: Path, member_dirs: list[str]) -> dict[str, Any]:
    """Write the fold's ensemble run and score it on the fold's validation participants."""
    from islr.evaluate import evaluate_run
    from islr.inference.ensemble import write_ensemble

    ensemble = write_ensemble(fold_dir / "ensemble", member_dirs)
    # The ensemble's split.json is the first member's: the same folds for every seed (data.split_seed).
    (ensemble / "split.json").write_bytes((Path(member_dirs[0]) / "split.json").read_bytes())
    metrics = evaluate_run(ensemble, split="valid", checkpoint="last").metrics
    return {"ensemble_accuracy": metrics["accuracy"], "ensemble_top5": metrics["top5"], "ensemble_dir": str(ensemble)}
