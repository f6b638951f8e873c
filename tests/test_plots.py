"""Dataset plots: the distribution PNG and the animated sign GIF, on tiny and on genuine data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from islr.cli import main
from islr.errors import DataError
from islr.viz.plots import plot_distribution, plot_sign, sequence_table
from tiny_kaggle import checksums, good_dataset, sequence, write_dataset


def test_sequence_table_reads_lengths_from_footers(tmp_path):
    root = write_dataset(tmp_path / "data", [
        (1, 101, "hello", sequence(12)), (1, 102, "bye", sequence(5)), (2, 201, "hello", None),
    ])
    table = sequence_table(root)
    assert table["sign"].tolist() == ["hello", "bye", "hello"]
    assert table["frames"].tolist()[:2] == [12, 5] and np.isnan(table["frames"].iloc[2])
    assert sequence_table(root / "train.csv")["frames"].tolist()[:2] == [12, 5]
    with pytest.raises(DataError, match="no such file or folder"):
        sequence_table(tmp_path / "nope.csv")


def test_distribution_png_with_and_without_lengths(tmp_path):
    root = good_dataset(tmp_path / "data")
    with_lengths = plot_distribution(root, tmp_path / "a.png")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "train.csv").write_bytes((root / "train.csv").read_bytes())
    counts_only = plot_distribution(tmp_path / "meta" / "train.csv", tmp_path / "b.png")
    # Two rows of panels (counts, mean length) when files are present, one row without them.
    assert Image.open(with_lengths).size == (1300, 1300)
    assert Image.open(counts_only).size == (1300, 650)


@pytest.mark.real
def test_distribution_of_real_data(real_data_dir, real_full_csv, tmp_path):
    table = sequence_table(real_full_csv)
    assert len(table) == 94477 and table["sign"].nunique() == 250 and table["frames"].isna().all()
    real = sequence_table(real_data_dir)
    assert real["frames"].sum() == 10002 and real["frames"].notna().all()
    assert Image.open(plot_distribution(real_full_csv, tmp_path / "full.png")).size == (1300, 650)


def test_sign_gif(tmp_path):
    root = write_dataset(tmp_path / "data", [
        (1, 101, "hello", sequence(7, 1, no_hand=(2,))), (1, 102, "hello", sequence(4, 2)),
        (1, 103, "bye", sequence(3, 3)), (2, 201, "hello", sequence(5, 4)),
    ])
    before = checksums(root)
    out = plot_sign(root, "hello", tmp_path / "g" / "hello.gif", n_samples=2, fps=5)
    gif = Image.open(out)
    assert gif.n_frames == 7  # the longest chosen sequence; the other holds its last frame
    assert gif.info["duration"] == 200
    assert checksums(root) == before
    with pytest.raises(DataError, match="no sequence of sign 'zebra'"):
        plot_sign(root, "zebra", tmp_path / "z.gif")


def test_cli_plots(kaggle_dir, tmp_path, capsys):
    sign = "hello" if kaggle_dir.name == "asl-signs" else "sign002"
    png, gif = tmp_path / "d.png", tmp_path / f"{sign}.gif"
    assert main(["plot", "distribution", str(kaggle_dir), "--out", str(png)]) == 0
    assert main(["plot", "sign", str(kaggle_dir), "--sign", sign, "--out", str(gif), "--n", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {png}", f"wrote {gif}"]
    frames = Image.open(gif)
    assert frames.n_frames > 1
    # The frames differ: the landmarks move.
    first = np.asarray(frames.convert("RGB")).copy()
    frames.seek(frames.n_frames - 1)
    assert (np.asarray(frames.convert("RGB")) != first).any()
