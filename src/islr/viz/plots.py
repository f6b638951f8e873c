"""Dataset plots: samples and mean length per sign (PNG), and animated landmarks of a sign (GIF).

matplotlib runs with the Agg backend (no display needed). Lengths come from the parquet footers
(rows / 543), so a plot over many files does not read their landmarks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from islr.data.kaggle import TRAIN_CSV, parquet_frame_count, read_landmarks, read_train_csv
from islr.data.landmarks import HAND_EDGES, LEFT_HAND, LIPS, POSE_EDGES, POSE_START, RIGHT_HAND
from islr.errors import DataError

UPPER_POSE = np.arange(POSE_START + 11, POSE_START + 25)  # shoulders to hips
DRAWN = np.concatenate([np.arange(468), LEFT_HAND, RIGHT_HAND, UPPER_POSE])
COLOURS = {"face": "#c8c8c8", "lips": "#d62728", "left_hand": "#1f77b4", "right_hand": "#2ca02c", "pose": "#ff7f0e"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sequence_table(csv_or_dir: str | Path, lengths: bool = True) -> pd.DataFrame:
    """``sign, participant_id, sequence_id, frames`` for every row of train.csv.

    ``csv_or_dir`` is a Kaggle folder or a train.csv-style file (its ``path`` column is taken
    relative to the file's folder). ``frames`` is NaN where the parquet file is absent or unreadable
    (the full competition metadata comes without its landmark files).
    """
    source = Path(csv_or_dir)
    if source.is_dir():
        root, name = source, TRAIN_CSV
    elif source.exists():
        root, name = source.parent, source.name
    else:
        raise DataError(source, "no such file or folder")
    samples = read_train_csv(root, name)
    frames = np.full(len(samples), np.nan)
    if lengths:
        for i, sample in enumerate(samples):
            if os.path.exists(sample.path):
                # An unreadable file has no length; `islr validate` reports it.
                with contextlib.suppress(DataError):
                    frames[i] = parquet_frame_count(sample.path)
    return pd.DataFrame(
        {
            "sign": [s.sign for s in samples],
            "participant_id": [s.participant_id for s in samples],
            "sequence_id": [s.sequence_id for s in samples],
            "frames": frames,
        }
    )


def _bars(ax, values: pd.Series, top: int, title: str, xlabel: str, colour: str) -> None:
    """Horizontal bars of all values (few signs) or the ``top`` largest and smallest (many)."""
    values = values.sort_values(ascending=False)
    if len(values) > 2 * top:
        shown = pd.concat([values.iloc[:top], values.iloc[-top:]])
        hidden = len(values) - 2 * top
    else:
        shown, hidden = values, 0
    y = np.arange(len(shown))
    if hidden:
        y[top:] += 1  # a blank slot marks the signs left out
    bars = ax.barh(y, shown.to_numpy(), color=colour)
    ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=2)
    ax.set_yticks(y, [str(s) for s in shown.index], fontsize=7)
    ax.invert_yaxis()
    if hidden:
        ax.text(0.5, top, f"... {hidden} signs not shown ...", transform=ax.get_yaxis_transform(),
                ha="center", va="center", fontsize=8, style="italic")
        title = f"{title}: top and bottom {top}"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.margins(y=0.01)


def _histogram(ax, values: pd.Series, title: str, xlabel: str, colour: str) -> None:
    ax.hist(values.to_numpy(), bins=min(40, max(5, len(values) // 3)), color=colour)
    ax.axvline(float(values.median()), color="black", linestyle="--", linewidth=1,
               label=f"median {values.median():.1f}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("signs", fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    ax.tick_params(labelsize=8)


def plot_distribution(csv_or_dir: str | Path, out_png: str | Path, top: int = 20) -> Path:
    """Samples per sign and, where parquet files are present, mean length per sign, as a PNG.

    Each quantity gets a histogram over all signs and a sorted bar chart; with more than
    ``2 * top`` signs the bar chart shows the ``top`` largest and smallest so labels stay readable.
    """
    plt = _pyplot()
    table = sequence_table(csv_or_dir)
    counts = table["sign"].value_counts()
    with_length = table.dropna(subset=["frames"])
    mean_length = with_length.groupby("sign")["frames"].mean()
    rows = 2 if len(mean_length) else 1
    fig, axes = plt.subplots(rows, 2, figsize=(13, 6.5 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.2]})
    _histogram(axes[0, 0], counts, "Signs by number of sequences", "sequences", "#4c72b0")
    _bars(axes[0, 1], counts, top, "Sequences per sign", "sequences", "#4c72b0")
    if rows == 2:
        _histogram(axes[1, 0], mean_length, "Signs by mean length", "mean frames", "#dd8452")
        _bars(axes[1, 1], mean_length, top, "Mean length per sign", "mean frames", "#dd8452")
    lengths_note = (f"lengths from {len(with_length):,} parquet files" if len(with_length)
                    else "no landmark files found, so no lengths")
    fig.suptitle(f"{Path(csv_or_dir).name}: {len(table):,} sequences, {len(counts)} signs, "
                 f"{table['participant_id'].nunique()} participants; {lengths_note}", fontsize=11)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _limits(data: np.ndarray) -> tuple[float, float, float, float]:
    """Square x/y limits around every drawn landmark of the whole sequence, with a margin."""
    xy = data[..., :2].reshape(-1, 2)
    xy = xy[~np.isnan(xy).any(axis=1)]
    if not len(xy):
        return 0.0, 1.0, 0.0, 1.0
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.05) * 1.08
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def _segments(points: np.ndarray, edges: tuple[tuple[int, int], ...]) -> list[np.ndarray]:
    return [points[[a, b]] for a, b in edges if not np.isnan(points[[a, b]]).any()]


def plot_sign(
    data_dir: str | Path,
    sign: str,
    out_gif: str | Path,
    n_samples: int = 6,
    fps: int = 10,
    max_frames: int = 120,
) -> Path:
    """Animate the 2-D landmarks of up to ``n_samples`` sequences of ``sign`` side by side (GIF).

    The first readable sequences of the sign in train.csv order are shown; hands, lips and the
    upper-body pose are coloured, the face mesh is grey, y grows downwards as in the image.
    Shorter sequences hold their last frame; at most ``max_frames`` frames are drawn.
    """
    data_dir = Path(data_dir)
    samples = read_train_csv(data_dir)
    of_sign = [s for s in samples if s.sign == sign]
    if not of_sign:
        known = sorted({s.sign for s in samples})
        raise DataError(data_dir / TRAIN_CSV, f"no sequence of sign {sign!r}; known signs include {known[:10]}")
    chosen, arrays = [], []
    for sample in of_sign:
        try:
            arrays.append(read_landmarks(sample.path)[..., :2])
        except DataError:
            continue  # skip unreadable files, like every batch job
        chosen.append(sample)
        if len(chosen) == n_samples:
            break
    if not chosen:
        raise DataError(data_dir, f"none of the {len(of_sign)} files of sign {sign!r} is readable")

    titles = [f"{s.participant_id}/{s.sequence_id}" for s in chosen]
    return animate_sequences(arrays, titles, out_gif, fps=fps, max_frames=max_frames,
                             suptitle=f"sign {sign!r}: {len(chosen)} sequences")


def animate_sequences(
    sequences: list[np.ndarray],
    titles: list[str],
    out_gif: str | Path,
    fps: int = 10,
    max_frames: int = 120,
    suptitle: str = "",
    cols: int = 3,
    dpi: int = 80,
) -> Path:
    """Animate raw landmark sequences ``(frames, 543, >=2)`` side by side as a GIF.

    Each panel shows one sequence with ``titles[i]`` and the current frame number; hands, lips and
    the upper-body pose are coloured, the face mesh is grey, y grows downwards as in the image.
    Shorter sequences hold their last frame; at most ``max_frames`` frames are drawn.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.collections import LineCollection

    if not sequences or len(sequences) != len(titles):
        raise ValueError("animate_sequences needs one title per sequence and at least one sequence")
    plt = _pyplot()
    arrays = [np.asarray(s)[..., :2] for s in sequences]
    cols = min(cols, len(arrays))
    rows = -(-len(arrays) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    artists = []
    for ax, name, data in zip(axes.flat, titles, arrays, strict=False):
        x0, x1, y0, y1 = _limits(data[:, DRAWN])
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)  # inverted: image coordinates
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        parts = {
            "face": ax.scatter([], [], s=1, c=COLOURS["face"]),
            "lips": ax.scatter([], [], s=4, c=COLOURS["lips"]),
            "pose": ax.scatter([], [], s=8, c=COLOURS["pose"]),
            "left_hand": ax.scatter([], [], s=6, c=COLOURS["left_hand"]),
            "right_hand": ax.scatter([], [], s=6, c=COLOURS["right_hand"]),
        }
        lines = {
            "pose": ax.add_collection(LineCollection([], colors=COLOURS["pose"], linewidths=1)),
            "left_hand": ax.add_collection(LineCollection([], colors=COLOURS["left_hand"], linewidths=1)),
            "right_hand": ax.add_collection(LineCollection([], colors=COLOURS["right_hand"], linewidths=1)),
        }
        # The title changes every frame; set its longest form now so the layout leaves room for it.
        title = ax.set_title(f"{name}  frame {len(data)}/{len(data)}", fontsize=8)
        artists.append((name, data, parts, lines, title))
    for ax in list(axes.flat)[len(arrays):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=k.replace("_", " "))
               for k, c in COLOURS.items()]
    # One legend row fits under two or more panels; a single panel needs two rows.
    ncol = len(handles) if cols > 1 else 3
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if cols > 1 else 0.1, 1, 0.96 if suptitle else 1))
    n_frames = min(max_frames, max(len(a) for a in arrays))

    def draw(t: int):
        changed = []
        for name, data, parts, lines, title in artists:
            f = min(t, len(data) - 1)
            frame = data[f]
            chunks = {"face": frame[:468], "lips": frame[LIPS], "pose": frame[UPPER_POSE],
                      "left_hand": frame[LEFT_HAND], "right_hand": frame[RIGHT_HAND]}
            for part, points in chunks.items():
                parts[part].set_offsets(points[~np.isnan(points).any(axis=1)].reshape(-1, 2))
            lines["pose"].set_segments(_segments(frame[POSE_START:POSE_START + 33], POSE_EDGES))
            lines["left_hand"].set_segments(_segments(frame[LEFT_HAND], HAND_EDGES))
            lines["right_hand"].set_segments(_segments(frame[RIGHT_HAND], HAND_EDGES))
            title.set_text(f"{name}  frame {f + 1}/{len(data)}")
            changed += [*parts.values(), *lines.values(), title]
        return changed

    animation = FuncAnimation(fig, draw, frames=n_frames, blit=False)
    out = Path(out_gif)
    out.parent.mkdir(parents=True, exist_ok=True)
    animation.save(out, writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return out
