"""``islr synth --like``: a replica with the participants, signs and counts of a real train.csv."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from islr.cli import main
from islr.data.kaggle import parquet_frame_count, read_sign_map, read_train_csv, read_train_table
from islr.data.replica import draw_lengths, length_histogram, measure_lengths, plan_replica
from islr.data.validate import validate_dataset

# (participant, sign) -> rows: uneven on purpose, one cell of a single row.
CELLS = {(101, "apple"): 3, (101, "ball"): 1, (202, "apple"): 2, (202, "cat"): 4, (303, "ball"): 2}


def _like_csv(tmp_path: Path) -> Path:
    path = tmp_path / "like" / "train.csv"
    path.parent.mkdir()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "participant_id", "sequence_id", "sign"])
        sid = 5000
        for (pid, sign), count in CELLS.items():
            for _ in range(count):
                sid += 7
                writer.writerow([f"train_landmark_files/{pid}/{sid}.parquet", pid, sid, sign])
    return path


def _cells(samples) -> Counter:
    return Counter((s.participant_id, s.sign) for s in samples)


def test_replica_matches_counts_layout_and_measured_lengths(tmp_path: Path) -> None:
    like = _like_csv(tmp_path)
    out = tmp_path / "replica"
    assert main(["synth", str(out), "--like", str(like), "--workers", "1", "--seed", "3"]) == 0
    written = read_train_csv(out)
    assert _cells(written) == Counter(CELLS)
    wanted = read_train_table(like.parent).samples
    assert [(s.participant_id, s.sequence_id) for s in written] == [(s.participant_id, s.sequence_id) for s in wanted]
    assert read_sign_map(out) == {"apple": 0, "ball": 1, "cat": 2}
    report = validate_dataset(out, workers=1, progress=False)
    assert report.ok and len(report.rows) == sum(CELLS.values())
    assert main(["validate", str(out), "--workers", "1", "--report", str(tmp_path / "r.csv")]) == 0
    histogram = length_histogram()
    frames = [parquet_frame_count(s.path) for s in written]
    assert all(f in histogram for f in frames)  # every length is one measured on a genuine file
    assert frames == draw_lengths(len(written), 3).tolist()


def test_replica_is_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    like = _like_csv(tmp_path)
    assert main(["synth", str(tmp_path / "a"), "--like", str(like), "--workers", "1"]) == 0
    assert main(["synth", str(tmp_path / "b"), "--like", str(like), "--workers", "2"]) == 0
    for s in read_train_csv(tmp_path / "a"):
        twin = tmp_path / "b" / s.path.relative_to(tmp_path / "a")
        assert s.path.read_bytes() == twin.read_bytes()


def test_fraction_is_stratified_and_keeps_every_sign_and_participant(tmp_path: Path) -> None:
    samples = read_train_table(_like_csv(tmp_path).parent).samples
    for seed in range(20):
        kept = plan_replica(samples, 0.3, seed)
        assert {s.sign for s in kept} == {"apple", "ball", "cat"}
        assert {s.participant_id for s in kept} == {101, 202, 303}
        for cell, count in _cells(kept).items():
            assert count <= CELLS[cell]
        positions = [samples.index(s) for s in kept]
        assert positions == sorted(positions)  # CSV order
    assert plan_replica(samples, 1.0) == samples
    # Stochastic rounding: each cell keeps fraction * count on average.
    mean = np.mean([_cells(plan_replica(samples, 0.5, seed))[(202, "cat")] for seed in range(200)])
    assert 1.7 < mean < 2.3


def test_bad_fraction_and_bad_csv_are_one_line_errors(tmp_path: Path, capsys) -> None:
    like = _like_csv(tmp_path)
    assert main(["synth", str(tmp_path / "x"), "--like", str(like), "--fraction", "0"]) == 2
    assert "fraction must be in (0, 1]" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "x"), "--fraction", "0.5"]) == 2
    assert "--fraction needs --like" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("path,participant_id,sign\n")
    assert main(["synth", str(tmp_path / "y"), "--like", str(bad)]) == 2
    assert "bad.csv" in capsys.readouterr().err


@pytest.mark.real
def test_shipped_lengths_are_those_of_the_genuine_files(real_data_dir: Path) -> None:
    from islr.data.real_lengths import FILES

    provenance = real_data_dir.parent / "asl-signs-provenance.csv"
    with open(provenance) as f:
        keep = [(int(r["participant_id"]), int(r["sequence_id"])) for r in csv.DictReader(f)
                if r["kind"] == "original_parquet"]
    assert Counter(measure_lengths(real_data_dir, keep)) == Counter(length_histogram())
    assert sum(length_histogram().values()) == FILES == len(keep)


@pytest.mark.real
def test_replica_plan_of_the_full_csv_keeps_participants_and_signs(real_full_csv: Path) -> None:
    full = read_train_table(real_full_csv.parent, real_full_csv.name).samples
    assert len(full) == 94_477
    kept = plan_replica(full, 0.001, seed=0)
    assert {s.sign for s in kept} == {s.sign for s in full}
    assert {s.participant_id for s in kept} == {s.participant_id for s in full}
    assert len(set(kept)) == len(kept)
    assert 0.001 * len(full) * 0.7 < len(kept) <= 0.001 * len(full) * 1.3 + 250 + 21  # + fix-ups
    # One row a cell on average for a fraction of 1 / mean cell size: the cells keep their weight.
    cells = _cells(full)
    per_cell = plan_replica(full, 1 / np.mean(list(cells.values())), seed=1)
    assert abs(len(per_cell) - len(cells)) < 0.1 * len(cells)
