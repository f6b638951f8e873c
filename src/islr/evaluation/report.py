"""One self-contained HTML evaluation report per run: ``islr report RUN_DIR --out report.html``.

The page holds accuracy, top-5 and macro F1 with the split named (and whether the evaluated
signers were unseen in training, checked against ``split.json``), the training curves, a confusion
matrix of the most-confused signs, per-sign accuracy, the most-confused pairs, animated landmarks of
a few confident mistakes, model size, single-thread latency and the exact config. Images are
embedded as base64, so the file opens anywhere without its run directory.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from islr.config import to_dict
from islr.errors import ConfigError
from islr.evaluation.confusion import (
    LABELLED_MAX,
    SignRow,
    overview_png,
    pair_classes,
    sign_rows,
    submatrix_png,
)
from islr.fileio import atomic_write_text
from islr.metrics import confusion_matrix, softmax
from islr.run_dir import RunDir, read_json_file
from islr.viz.htmlpage import Page, card, esc, figure_png, img, pyplot, table

STATS_FILE = "model_stats.json"


@dataclass
class ModelStats:
    """Size and speed of a run's model."""

    parameters: int
    checkpoint_mb: float
    latency_ms: float
    """Median wall time of one sequence (preprocessing + forward pass, batch 1)."""
    threads: int | None
    frames: int
    """Frames of the raw sequence the latency was measured on."""
    framework: str = ""


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and measured."""

    path: Path
    metrics: dict[str, Any]
    stats: ModelStats
    images: int
    notes: list[str] = field(default_factory=list)


def checkpoint_mb(run_dir: str | Path, checkpoint: str = "best") -> float:
    """Size of the checkpoint files ``checkpoints/<checkpoint>.*`` in MB (10^6 bytes)."""
    files = [p for p in RunDir(run_dir).checkpoints.glob(f"{checkpoint}*") if p.is_file()]
    dirs = [p for p in RunDir(run_dir).checkpoints.glob(f"{checkpoint}*") if p.is_dir()]
    size = sum(p.stat().st_size for p in files) + sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())
    return size / 1e6


def measure_model(run_dir: str | Path, raw: np.ndarray | None = None, checkpoint: str = "best",
                  threads: int = 1, repeats: int = 30, save: bool = True) -> ModelStats:
    """Parameters, checkpoint size and per-sequence latency on ``threads`` threads (saved as model_stats.json).

    ``raw`` is one ``(frames, 543, 3)`` sequence (default: 32 frames of seeded noise); latency is
    the median of ``repeats`` timed calls after 3 warm-up calls.
    """
    from islr.inference.predictor import RunPredictor
    from islr.inference.threads import limited_threads

    run = RunDir(run_dir)
    framework = run.load_config().train.framework
    if raw is None:
        raw = np.random.default_rng(0).random((32, 543, 3), dtype=np.float32)
    with limited_threads(framework, threads) as in_effect:
        predictor = RunPredictor(run_dir, checkpoint)
        for _ in range(3):
            predictor.logits(raw)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predictor.logits(raw)
            times.append(time.perf_counter() - started)
    stats = ModelStats(int(predictor.backend.num_parameters()), round(checkpoint_mb(run_dir, checkpoint), 3),
                       round(statistics.median(times) * 1000, 3), in_effect, int(len(raw)), framework)
    if save:
        run.write_json(STATS_FILE, asdict(stats))
    return stats


def read_model_stats(run_dir: str | Path) -> ModelStats | None:
    """The stats saved by :func:`measure_model`, or None."""
    path = Path(run_dir) / STATS_FILE
    if not path.exists():
        return None
    data = read_json_file(path)
    fields = {f.name for f in dataclasses.fields(ModelStats)}
    if not isinstance(data, dict) or not set(data) <= fields:
        raise ConfigError(f"{path}: expected a JSON object with the keys {sorted(fields)}")
    try:
        return ModelStats(**data)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# -- figures -----------------------------------------------------------------------------------
def curves_png(history: list[dict[str, Any]]) -> bytes | None:
    """Loss, accuracy (train/valid, valid top-5) and learning rate per epoch."""
    if not history:
        return None
    plt = pyplot()
    epochs = [i + 1 for i in range(len(history))]

    def series(key: str) -> list[float]:
        return [float(row.get(key, np.nan)) for row in history]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    panels = [("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy", "val_top5")), ("learning rate", ("lr",))]
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            if any(key in row for row in history):
                ax.plot(epochs, series(key), marker="o", markersize=3, label=key)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def most_confused_signs(cm: np.ndarray, k: int = 15) -> list[int]:
    """Classes involved in the most errors (as the true or the predicted sign), most first."""
    off = cm - np.diag(np.diag(cm))
    involvement = off.sum(axis=0) + off.sum(axis=1)
    order = np.argsort(-involvement, kind="stable")
    return [int(i) for i in order[:k] if involvement[i] > 0]


def per_sign_png(accuracy: np.ndarray, support: np.ndarray, names: list[str], top: int = 20) -> bytes:
    """Per-sign accuracy sorted; with many signs only the ``top`` worst and best are drawn."""
    plt = pyplot()
    present = [i for i in range(len(names)) if support[i]]
    order = sorted(present, key=lambda i: (accuracy[i], names[i]))
    hidden = 0
    if len(order) > 2 * top:
        hidden = len(order) - 2 * top
        order = order[:top] + order[-top:]
    y = np.arange(len(order), dtype=float)
    if hidden:
        y[top:] += 1
    fig, ax = plt.subplots(figsize=(7.5, 0.26 * len(order) + 1.4))
    colours = ["#d62728" if accuracy[i] < 0.5 else "#4c72b0" for i in order]
    bars = ax.barh(y, [accuracy[i] for i in order], color=colours)
    ax.bar_label(bars, labels=[f"{accuracy[i]:.0%} (n={support[i]})" for i in order], fontsize=7, padding=2)
    ax.set_yticks(y, [names[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.margins(y=0.01)
    ax.set_xlim(0, 1.18)
    ax.set_xlabel("accuracy", fontsize=9)
    title = "Per-sign accuracy, worst first"
    if hidden:
        ax.text(0.5, top, f"... {hidden} signs not shown ...", transform=ax.get_yaxis_transform(),
                ha="center", va="center", fontsize=8, style="italic")
        title += f" (worst and best {top})"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_png(fig)


def confused_pairs(cm: np.ndarray, names: list[str], k: int = 15) -> list[tuple[str, str, int, float, int]]:
    """``(true, predicted, count, share of true's samples, count the other way round)``, most first."""
    off = cm - np.diag(np.diag(cm))
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = []
    for index in flat:
        t, p = np.unravel_index(index, off.shape)
        if off[t, p] == 0:
            break
        pairs.append((names[t], names[p], int(off[t, p]), float(off[t, p] / max(cm[t].sum(), 1)), int(off[p, t])))
    return pairs


def _percent(value: float) -> tuple[str, str]:
    """A rate as shown (``12.5%``, ``–`` when undefined) with its sort key ('' sorts last)."""
    return ("–", "") if np.isnan(value) else (f"{value:.1%}", f"{value:.6f}")


def sign_table(rows: list[SignRow]) -> str:
    """Sortable per-sign table of the signs with samples, worst recall first."""
    shown = sorted((r for r in rows if r.support), key=lambda r: (r.recall, r.sign))
    body = [(r.sign, _percent(r.recall), _percent(r.precision), _percent(r.f1), r.support,
             (f"{r.confused_with} ({r.confused_count})" if r.confused_count else "–", r.confused_with),
             (f"{r.confused_count / r.support:.0%}" if r.confused_count else "–", f"{r.confused_count / r.support:.6f}"))
            for r in shown]
    headers = ["sign", "accuracy (recall)", "precision", "F1", "samples", "most common wrong prediction (count)",
               "its share of the sign"]
    return f'<div class="scroll">{table(headers, body, [False, True, True, True, True, False, True], sortable=True)}</div>'


def confusion_sections(page: Page, cm: np.ndarray, names: list[str], pairs: int = 20) -> int:
    """Add the confusion matrix, per-sign and most-confused-pairs sections; returns the images added.

    Up to ``LABELLED_MAX`` (30) signs the whole matrix is drawn with labels; beyond,
    the labelled sub-matrix of the signs of the largest confusions and a small heat map of the
    whole matrix (no tick labels), so 250 signs stay readable.
    """
    n = len(names)
    images = 0
    rows = sign_rows(cm, names)
    off_diagonal = int(cm.sum() - np.trace(cm))
    if not off_diagonal:
        page.add("Confusion matrix", '<p class="note">No mistakes: nothing is confused.</p>', "confusion")
    elif n <= LABELLED_MAX:
        images += 1
        page.add("Confusion matrix", img(submatrix_png(cm, names, list(range(n)), "Confusion matrix (colour: share of "
                                                        "the true sign's samples)"), "confusion matrix"), "confusion")
    else:
        classes = pair_classes(cm)
        images += 2
        page.add("Confusion matrix of the most-confused signs",
                 f"<p>{n} signs are too many to label in one matrix: below, the {len(classes)} signs of the largest "
                 "confusions (taken pair by pair from the biggest off-diagonal counts), then the whole matrix as a "
                 "heat map without labels (the per-sign table and the pairs name every sign).</p>"
                 + img(submatrix_png(cm, names, classes, "Most-confused signs (colour: share of the true sign's samples)"),
                       "confusion matrix of the most-confused signs")
                 + img(overview_png(cm), f"whole {n}-sign confusion matrix", width=560), "confusion")

    images += 1
    accuracy = np.array([r.recall for r in rows])
    support = np.array([r.support for r in rows])
    without = n - int((support > 0).sum())
    missing = f" {without} sign(s) without samples are not listed." if without else ""
    page.add("Per-sign accuracy", img(per_sign_png(accuracy, support, names), "per-sign accuracy")
             + f"<p>All {n - without} signs with samples; click a column header to sort.{esc(missing)}</p>"
             + sign_table(rows), "per-sign")

    top = confused_pairs(cm, names, pairs)
    errors = f"<p>The {len(top)} largest of {off_diagonal:,} mistakes by (true, predicted) pair.</p>" if top else ""
    page.add("Most-confused pairs", errors + table(
        ["true sign", "predicted as", "count", "share of true sign", "share of all mistakes", "other way round"],
        [(t, p, c, (f"{s:.0%}", f"{s:.6f}"), f"{c / off_diagonal:.1%}", r) for t, p, c, s, r in top],
        [False, False, True, True, True, True], sortable=True) if top else '<p class="note">No mistakes.</p>', "pairs")
    return images


# -- the report --------------------------------------------------------------------------------
def _signers(run: RunDir, data_dir: Path | None, sequence_ids: np.ndarray) -> tuple[str, bool | None, list[str]]:
    """A sentence about who was evaluated, and whether none of them was seen in training."""
    notes: list[str] = []
    split = run.read_json("split.json") if (run.path / "split.json").exists() else None
    if split is None:
        return "no split.json in the run: training signers unknown", None, ["split.json missing"]
    trained = set(split["train"]["participants"]) | set(split.get("valid", {}).get("participants", []))
    evaluated: set[int] = set()
    if data_dir is not None and (data_dir / "train.csv").exists():
        from islr.data.kaggle import read_train_csv

        by_id = {s.sequence_id: s.participant_id for s in read_train_csv(data_dir)}
        evaluated = {int(by_id[int(s)]) for s in sequence_ids if int(s) in by_id}
    if not evaluated:
        evaluated = set(split.get("test", {}).get("participants", []))
        notes.append("evaluated participants taken from split.json")
    seen = sorted(evaluated & trained)
    independent = not seen
    text = (f"{len(evaluated)} evaluated signer(s), {len(trained)} training/validation signer(s); "
            + ("none of the evaluated signers was seen in training (signer-independent)" if independent
               else f"{len(seen)} evaluated signer(s) also appear in training: {seen[:10]} (signer-dependent)"))
    return text, independent, notes


def _mistake_gifs(data_dir: Path, ev: Any, names: list[str], count: int, workdir: Path) -> list[tuple[bytes, str]]:
    """GIFs of the ``count`` most confident mistakes (landmarks read from the raw parquet files)."""
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.errors import DataError
    from islr.viz.plots import animate_sequences

    predictions = ev.logits.argmax(-1)
    probabilities = softmax(ev.logits)
    wrong = np.flatnonzero(predictions != ev.labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predictions[wrong]], kind="stable")]
    by_id = {s.sequence_id: s for s in read_train_csv(data_dir)}
    gifs: list[tuple[bytes, str]] = []
    for i in wrong:
        if len(gifs) == count:
            break
        sample = by_id.get(int(ev.sequence_ids[i]))
        if sample is None:
            continue
        try:
            raw = read_landmarks(sample.path)
        except DataError:
            continue
        true, pred = names[ev.labels[i]], names[predictions[i]]
        out = animate_sequences([raw], [f"{sample.participant_id}/{sample.sequence_id}"], workdir / f"mistake{i}.gif",
                                fps=8, max_frames=48, cols=1, dpi=72)
        caption = f"true {true!r}, predicted {pred!r} ({probabilities[i, predictions[i]]:.0%})"
        gifs.append((out.read_bytes(), caption))
    return gifs


def _first_raw(data_dir: Path | None, sequence_ids: list[int]) -> np.ndarray | None:
    """Raw landmarks of the first readable listed sequence (a realistic input for latency)."""
    if data_dir is None or not (data_dir / "train.csv").exists():
        return None
    from islr.data.kaggle import read_landmarks, read_train_csv
    from islr.errors import DataError

    by_id = {s.sequence_id: s for s in read_train_csv(data_dir)}
    for sid in sequence_ids:
        if sid in by_id:
            try:
                return read_landmarks(by_id[sid].path)
            except DataError:
                continue
    return None


def build_report(run_dir: str | Path, out: str | Path, data_dir: str | Path | None = None, split: str = "test",
                 checkpoint: str = "best", examples: int = 4, threads: int = 1) -> ReportResult:
    """Evaluate ``run_dir`` and write one self-contained HTML report to ``out``."""
    from islr.evaluation.evaluate import evaluate_run

    run = RunDir(run_dir)
    cfg = run.load_config()
    data_path = Path(data_dir or cfg.data.data_dir) if (data_dir or cfg.data.data_dir) else None
    recorded = run.read_json("split.json") if (run.path / "split.json").exists() else {}
    # Latency first: TensorFlow fixes its thread count when its runtime starts.
    latency_ids = recorded.get(split if split in ("train", "valid", "test") else "test", {}).get("sequence_ids", [])
    stats = measure_model(run.path, _first_raw(data_path, [int(s) for s in latency_ids[:5]]), checkpoint, threads)
    with tempfile.TemporaryDirectory(prefix="islr-report-") as tmp:
        ev = evaluate_run(run.path, str(data_dir) if data_dir else None, split, checkpoint, out_dir=tmp)
        names = [s for s, _ in sorted(run.load_sign_map().items(), key=lambda kv: kv[1])]
        gifs = _mistake_gifs(data_path, ev, names, examples, Path(tmp)) if data_path and examples else []
    if gifs:
        why_none = ""
    elif not examples:
        why_none = "none requested (examples=0)"
    elif not (ev.logits.argmax(-1) != ev.labels).any():
        why_none = "no mistakes"
    else:
        why_none = "raw landmark files not available"
    page, images, notes = _page(run, cfg, ev, names, stats, gifs, data_path, why_none)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a full disk raises WriteError and leaves the previous report as it was.
    atomic_write_text(path, page.render())
    return ReportResult(path, ev.metrics, stats, images, notes)


def _page(run: RunDir, cfg: Any, ev: Any, names: list[str], stats: ModelStats, gifs: list[tuple[bytes, str]],
          data_path: Path | None, why_no_gifs: str) -> tuple[Page, int, list[str]]:
    m = ev.metrics
    history = run.read_history()
    predictions = ev.logits.argmax(-1)
    n = len(names)
    cm = confusion_matrix(ev.labels, predictions, n)
    signers, independent, notes = _signers(run, data_path, ev.sequence_ids)
    images = 0
    page = Page(f"{cfg.model.name} ({cfg.train.framework}) — {run.path.name}",
                f"Evaluation report of {run.path.resolve()} · {datetime.now():%Y-%m-%d %H:%M}")

    badge = ('<span class="badge good">signer-independent</span>' if independent
             else '<span class="badge warn">signer-dependent</span>' if independent is False else "")
    cards = "".join([card("accuracy", f"{m['accuracy']:.1%}"), card("top-5 accuracy", f"{m['top5']:.1%}"),
                     card("macro F1", f"{m['macro_f1']:.3f}"), card("sequences", f"{m['n']:,}"),
                     card("signs", f"{n:,}")])
    skipped = f" {m['skipped']} sequence(s) skipped." if m.get("skipped") else ""
    page.add("Metrics", f'<div class="cards">{cards}</div><p>Split: <b>{esc(m["split"])}</b> {badge}</p>'
             f"<p>{esc(signers)}.{esc(skipped)} Checkpoint: <code>{esc(m['checkpoint'])}</code>.</p>", "metrics")

    body = ""
    png = curves_png(history)
    if png:
        images += 1
        best = max(history, key=lambda r: r.get(cfg.train.monitor, -np.inf) if cfg.train.mode == "max"
                   else -r.get(cfg.train.monitor, np.inf))
        epoch_times = [r["epoch_time"] for r in history if "epoch_time" in r]
        body = img(png, "training curves") + (
            f"<p>{len(history)} epoch(s); best {esc(cfg.train.monitor)} {best.get(cfg.train.monitor, float('nan')):.4f} "
            f"at epoch {history.index(best) + 1}; mean epoch time {np.mean(epoch_times):.2f} s.</p>" if epoch_times else "")
    page.add("Training curves", body or '<p class="note">No history.json in the run.</p>', "curves")

    images += confusion_sections(page, cm, names)

    if gifs:
        images += len(gifs)
        figures = "".join(f"<figure>{img(data, caption, 'image/gif')}<figcaption>{esc(caption)}</figcaption></figure>" for data, caption in gifs)
        page.add("Mistakes, animated", "<p>The most confident wrong predictions (raw landmarks).</p>" + figures, "mistakes")
    else:
        page.add("Mistakes, animated", f'<p class="note">None shown: {esc(why_no_gifs)}.</p>', "mistakes")
        notes.append(f"no mistake GIFs: {why_no_gifs}")

    threads = stats.threads if stats.threads else "default"
    page.add("Model size and latency", table(["", "value"], [
        ("parameters", f"{stats.parameters:,}"), ("checkpoint", f"{stats.checkpoint_mb:.2f} MB"),
        ("latency per sequence", f"{stats.latency_ms:.2f} ms"),
        ("measured with", f"{stats.framework} run predictor, batch 1, {stats.frames} frames, {threads} thread(s), preprocessing included"),
    ], [False, True]), "size")
    page.add("Config", f"<pre>{esc(yaml.safe_dump(to_dict(cfg), sort_keys=False))}</pre>", "config")
    return page, images, notes
