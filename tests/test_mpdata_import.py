"""`islr import mpdata`: MP_Data keypoint folders -> the exact Kaggle layout.

Synthetic frames follow simple formulas so the expected parquet values below are written out by
hand (frame f, pose point k: x = 0.30 + 0.01 k + 0.001 f, y = 0.40 + 0.01 k, z = -0.5,
visibility 0.9; face point i: x = 0.40 + 0.0005 i + 0.001 f, y = 0.30 + 0.0002 i,
z = -0.01 - 0.0001 i; left hand j: x = 0.60 + 0.01 j + 0.001 f, y = 0.70, z = -0.01 j;
right hand j: x = 0.20 + 0.01 j + 0.001 f, y = 0.75, z = -0.02 j).
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from islr.cli import main as islr
from islr.data.kaggle import read_sign_map, read_train_csv
from islr.data.mpdata import detect_layout, import_mpdata, read_sequence
from islr.data.signs import KAGGLE_SIGNS, SignMatcher, normalise_sign, parse_aliases
from islr.data.validate import validate_dataset
from islr.errors import ConfigError, DataError


def parts(f: int) -> dict[str, np.ndarray]:
    k, i, j = np.arange(33), np.arange(468), np.arange(21)
    pose = np.stack([0.30 + 0.01 * k + 0.001 * f, 0.40 + 0.01 * k, np.full(33, -0.5), np.full(33, 0.9)], 1)
    face = np.stack([0.40 + 0.0005 * i + 0.001 * f, 0.30 + 0.0002 * i, -0.01 - 0.0001 * i], 1)
    left = np.stack([0.60 + 0.01 * j + 0.001 * f, np.full(21, 0.70), -0.01 * j], 1)
    right = np.stack([0.20 + 0.01 * j + 0.001 * f, np.full(21, 0.75), -0.02 * j], 1)
    return {"pose": pose.ravel(), "face": face.ravel(), "lh": left.ravel(), "rh": right.ravel()}


def frame_vector(f: int, order: tuple[str, ...] = ("pose", "face", "lh", "rh"), missing: tuple[str, ...] = ()) -> np.ndarray:
    p = parts(f)
    return np.concatenate([np.zeros_like(p[name]) if name in missing else p[name] for name in order])


def write_sequence(folder: Path, frames: int = 4, order=("pose", "face", "lh", "rh"), missing_at=None) -> Path:
    """``missing_at``: {frame: parts stored as zeros}."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(frames):
        np.save(folder / f"{f}.npy", frame_vector(f, order, (missing_at or {}).get(f, ())))
    return folder


def rows_of(parquet: Path) -> pd.DataFrame:
    return pd.read_parquet(parquet)


def value(table: pd.DataFrame, frame: int, part: str, index: int) -> list[float]:
    row = table[(table.frame == frame) & (table.type == part) & (table.landmark_index == index)]
    assert len(row) == 1
    return row[["x", "y", "z"]].iloc[0].tolist()


def only_parquet(out: Path) -> Path:
    files = sorted((out / "train_landmark_files").rglob("*.parquet"))
    assert len(files) == 1
    return files[0]


def assert_valid(out: Path) -> None:
    report = validate_dataset(out, workers=1, progress=False)
    assert report.ok, [(r.path, r.reason) for r in report.invalid]


def test_pose_first_1662_writes_exact_kaggle_rows(tmp_path):
    root = tmp_path / "MP_Data"
    write_sequence(root / "hello" / "0", frames=3, missing_at={1: ("lh",)})
    report = import_mpdata(root, tmp_path / "ds", participant_id=7)
    assert [(i.sign, i.frames, i.hand_frames, i.layout) for i in report.written] == [("hello", 3, 3, "pose-face-hands")]
    table = rows_of(only_parquet(tmp_path / "ds"))
    assert list(table.columns) == ["frame", "row_id", "type", "landmark_index", "x", "y", "z"]
    assert str(table.frame.dtype) == "int16" and str(table.landmark_index.dtype) == "int16"
    assert len(table) == 3 * 543
    # Kaggle row order inside a frame: face 468, left_hand 21, pose 33, right_hand 21.
    first = table[table.frame == 0]
    assert first.type.iloc[0] == "face" and first.type.iloc[468] == "left_hand"
    assert first.type.iloc[489] == "pose" and first.type.iloc[522] == "right_hand"
    assert first.row_id.iloc[500] == "0-pose-11"
    assert value(table, 0, "pose", 11) == pytest.approx([0.41, 0.51, -0.5])  # visibility dropped
    assert value(table, 2, "pose", 11) == pytest.approx([0.412, 0.51, -0.5])
    assert value(table, 0, "face", 10) == pytest.approx([0.405, 0.302, -0.011])
    assert value(table, 0, "left_hand", 3) == pytest.approx([0.63, 0.70, -0.03])
    assert value(table, 2, "right_hand", 20) == pytest.approx([0.402, 0.75, -0.4])
    # Frame 1 had no left hand: NaN in all three columns, right hand still there.
    assert np.isnan(value(table, 1, "left_hand", 0)).all()
    assert value(table, 1, "right_hand", 0) == pytest.approx([0.201, 0.75, 0.0])
    csv = read_train_csv(tmp_path / "ds")
    assert [(s.participant_id, s.sign) for s in csv] == [(7, "hello")]
    assert csv[0].sequence_id == zlib.crc32(b"7/hello/0")
    assert read_sign_map(tmp_path / "ds") == {"hello": 0}
    assert_valid(tmp_path / "ds")


@pytest.mark.parametrize("order", [("face", "pose", "lh", "rh"), ("pose", "lh", "rh", "face"),
                                   ("lh", "rh", "face", "pose")])
def test_other_1662_orders_are_detected_and_give_the_same_rows(tmp_path, order):
    write_sequence(tmp_path / "a" / "MP_Data" / "yes" / "0", frames=2)
    write_sequence(tmp_path / "b" / "MP_Data" / "yes" / "0", frames=2, order=order)
    ref = import_mpdata(tmp_path / "a", tmp_path / "ref")
    got = import_mpdata(tmp_path / "b", tmp_path / "got")
    expected = {("face", "pose", "lh", "rh"): "face-pose-hands", ("pose", "lh", "rh", "face"): "pose-hands-face",
                ("lh", "rh", "face", "pose"): "hands-face-pose"}[order]
    assert got.written[0].layout == expected
    a, b = rows_of(ref.written[0].parquet), rows_of(got.written[0].parquet)
    pd.testing.assert_frame_equal(a.drop(columns="row_id"), b.drop(columns="row_id"))
    assert value(b, 1, "pose", 0) == pytest.approx([0.301, 0.40, -0.5])
    assert value(b, 0, "face", 467) == pytest.approx([0.6335, 0.3934, -0.0567])


def test_258_pose_and_hands(tmp_path):
    seq = tmp_path / "MP_Data" / "please" / "0"
    seq.mkdir(parents=True)
    for f in range(2):
        p = parts(f)
        np.save(seq / f"{f}.npy", np.concatenate([p["pose"], p["lh"], p["rh"]]))
    report = import_mpdata(tmp_path / "MP_Data", tmp_path / "ds", participant_id=1)
    assert report.written[0].layout == "pose-hands"
    table = rows_of(report.written[0].parquet)
    assert table[table.type == "face"][["x", "y", "z"]].isna().all().all()
    assert value(table, 1, "pose", 32) == pytest.approx([0.621, 0.72, -0.5])
    assert value(table, 0, "left_hand", 20) == pytest.approx([0.80, 0.70, -0.20])
    assert_valid(tmp_path / "ds")


def test_126_hands_only(tmp_path):
    seq = tmp_path / "MP_Data" / "no" / "0"
    seq.mkdir(parents=True)
    for f in range(2):
        p = parts(f)
        np.save(seq / f"{f}.npy", np.concatenate([np.zeros(63) if f == 0 else p["lh"], p["rh"]]))
    report = import_mpdata(tmp_path / "MP_Data", tmp_path / "ds", participant_id=1)
    assert report.written[0].layout == "hands"
    table = rows_of(report.written[0].parquet)
    assert table[table.type.isin(["face", "pose"])][["x", "y", "z"]].isna().all().all()
    assert np.isnan(value(table, 0, "left_hand", 5)).all()
    assert value(table, 1, "left_hand", 5) == pytest.approx([0.651, 0.70, -0.05])
    assert value(table, 0, "right_hand", 1) == pytest.approx([0.21, 0.75, -0.02])
    assert_valid(tmp_path / "ds")


def test_bad_sequences_are_reported_by_file_and_the_rest_is_imported(tmp_path):
    root = tmp_path / "MP_Data"
    write_sequence(root / "hello" / "0")
    ragged = write_sequence(root / "hello" / "1", frames=5)
    (ragged / "3.npy").unlink()
    wrong = write_sequence(root / "hello" / "2")
    np.save(wrong / "2.npy", np.zeros(1000))
    unreadable = write_sequence(root / "hello" / "3")
    (unreadable / "1.npy").write_bytes(b"not a numpy file")
    (root / "hello" / "4").mkdir()
    no_hand = write_sequence(root / "hello" / "5", frames=2, missing_at={0: ("lh", "rh"), 1: ("lh", "rh")})
    report = import_mpdata(root, tmp_path / "ds", participant_id=3)
    assert [i.source.name for i in report.written] == ["0"]
    reasons = dict(report.skipped)
    assert set(reasons) == {str(ragged), str(wrong), str(unreadable), str(root / "hello" / "4"), str(no_hand)}
    assert reasons[str(ragged)] == f"{ragged}: ragged frame numbering: 3.npy missing from frames 0..4"
    assert reasons[str(wrong)] == f"{wrong / '2.npy'}: 1000 values, but the other frames of this sequence have 1662"
    assert reasons[str(unreadable)].startswith(f"{unreadable / '1.npy'}: unreadable .npy file")
    assert reasons[str(root / "hello" / "4")] == f"{root / 'hello' / '4'}: empty sequence: no <frame>.npy files"
    assert reasons[str(no_hand)] == f"{no_hand}: no hand detected in any of its 2 frames"
    assert report.roots[0].skipped == 5 and report.roots[0].sequences == 1
    assert len(read_train_csv(tmp_path / "ds")) == 1
    assert_valid(tmp_path / "ds")


def test_unsupported_length_and_odd_file_names(tmp_path):
    seq = tmp_path / "s"
    seq.mkdir()
    np.save(seq / "0.npy", np.zeros(1000))
    with pytest.raises(DataError, match=r"0\.npy: 1000 values a frame; expected 1662"):
        read_sequence(seq)
    np.save(seq / "0.npy", frame_vector(0))
    np.save(seq / "0 (copy).npy", frame_vector(0))
    with pytest.raises(DataError, match=r"0 \(copy\)\.npy: file name is not a frame number"):
        read_sequence(seq)


def test_frames_not_starting_at_zero_keep_their_numbers(tmp_path):
    seq = tmp_path / "MP_Data" / "yes" / "0"
    seq.mkdir(parents=True)
    for f in (1, 2, 3):
        np.save(seq / f"{f}.npy", frame_vector(f))
    report = import_mpdata(tmp_path / "MP_Data", tmp_path / "ds", participant_id=0)
    assert sorted(set(rows_of(report.written[0].parquet).frame)) == [1, 2, 3]


def test_ambiguous_and_impossible_layouts_are_refused():
    # 258 values, all in (0, 1) except zeros exactly where either order puts a wrist z:
    # pose-hands (wrists at 134 and 197) and hands-pose (wrists at 2 and 65) both fit.
    frame = np.linspace(0.1, 0.9, 258)
    frame[[2, 65, 134, 197]] = 0.0
    with pytest.raises(DataError, match="seq: ambiguous layout: the 258-value frames fit pose-hands, hands-pose"):
        detect_layout(np.stack([frame, frame]), "seq")
    bad = frame_vector(0)
    bad[3] = 1.5  # pose visibility out of range and no other order fits either
    with pytest.raises(DataError, match="fit no known layout .*pose-face-hands: pose visibility"):
        detect_layout(bad[None], "seq")


def test_only_hands_detected_reads_the_same_in_every_order():
    frame = frame_vector(0, missing=("pose", "face"))
    assert detect_layout(frame[None], "seq").name == "pose-face-hands"


def test_sign_names_aliases_and_unknown_signs(tmp_path):
    root = tmp_path / "MP_Data"
    for name in ["Thank_you", "thank-you", "thanks", "Goodbye", "HELLO", "hi", "banana"]:
        write_sequence(root / name / "0", frames=2)
    report = import_mpdata(root, tmp_path / "ds", participant_id=2, aliases={"Hi": "hello"})
    signs = {i.source.parent.name: i.sign for i in report.written}
    assert signs == {"Thank_you": "thankyou", "thank-you": "thankyou", "thanks": "thankyou",
                     "Goodbye": "bye", "HELLO": "hello", "hi": "hello"}
    assert report.unknown_signs == {str(root / "banana"): 1}
    # A new dataset's map: the imported signs in Kaggle order (bye 33, hello 113, thankyou 220).
    assert read_sign_map(tmp_path / "ds") == {"bye": 0, "hello": 1, "thankyou": 2}
    report = import_mpdata(root, tmp_path / "ds2", participant_id=2, add_unknown=True)
    assert {i.sign for i in report.written} == {"thankyou", "bye", "hello", "hi", "banana"}
    with pytest.raises(ConfigError, match="no known sign"):
        import_mpdata(root, tmp_path / "ds3", aliases={"hi": "helo"})


def test_sign_matcher_rules():
    assert normalise_sign(" Thank you ") == "thankyou" and normalise_sign("call_on-phone") == "callonphone"
    matcher = SignMatcher([["Thank_You"], KAGGLE_SIGNS])
    assert matcher.match("thanks") == "Thank_You"  # the dataset's own spelling wins
    assert matcher.match("television") == "TV" and matcher.match("mother") == "mom"
    assert matcher.match("sorry") is None
    assert parse_aliases(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(ValueError, match="FROM=TO"):
        parse_aliases(["nothing"])
    assert len(KAGGLE_SIGNS) == 250 == len(set(KAGGLE_SIGNS))


def test_several_roots_get_one_stable_participant_each(tmp_path):
    write_sequence(tmp_path / "src" / "alice__repo" / "MP_Data" / "hello" / "0", frames=2)
    write_sequence(tmp_path / "src" / "bob__repo" / "MP_Data" / "hello" / "0", frames=2)
    write_sequence(tmp_path / "src" / "bob__repo" / "MP_Data" / "yes" / "0", frames=2)
    report = import_mpdata(tmp_path / "src", tmp_path / "ds")
    ids = {r.root.parent.name: r.participant_id for r in report.roots}
    assert ids == {"alice__repo": zlib.crc32(b"alice__repo/MP_Data"), "bob__repo": zlib.crc32(b"bob__repo/MP_Data")}
    # The same roots imported from one level up keep their ids (and replace, not duplicate, rows).
    again = import_mpdata(tmp_path, tmp_path / "ds")
    assert {r.participant_id for r in again.roots} == set(ids.values())
    assert len(read_train_csv(tmp_path / "ds")) == 3
    with pytest.raises(ConfigError, match="single MP_Data folder"):
        import_mpdata(tmp_path / "src", tmp_path / "ds", participant_id=5)
    assert_valid(tmp_path / "ds")


def test_extending_a_dataset_keeps_rows_and_indices(tmp_path):
    write_sequence(tmp_path / "one" / "MP_Data" / "yes" / "0", frames=2)
    write_sequence(tmp_path / "two" / "MP_Data" / "hello" / "0", frames=2)
    write_sequence(tmp_path / "two" / "MP_Data" / "yes" / "0", frames=2)
    out = tmp_path / "ds"
    import_mpdata(tmp_path / "one", out, base_sign_map={"zebra": 0, "yes": 1})
    before = (out / "train.csv").read_text().splitlines()
    import_mpdata(tmp_path / "two", out)
    after = (out / "train.csv").read_text().splitlines()
    assert after[:2] == before and len(after) == 4
    assert json.loads((out / "sign_to_prediction_index_map.json").read_text()) == {"zebra": 0, "yes": 1, "hello": 2}
    with pytest.raises(ConfigError, match="already has a sign map"):
        import_mpdata(tmp_path / "two", out, base_sign_map={"yes": 0})
    assert_valid(out)


def test_cli_import_mpdata(tmp_path, capsys):
    write_sequence(tmp_path / "MP_Data" / "thanks" / "0", frames=2)
    write_sequence(tmp_path / "MP_Data" / "wave" / "0", frames=2)
    out = tmp_path / "ds"
    code = islr(["import", "mpdata", str(tmp_path / "MP_Data"), "--out", str(out), "--participant-id", "9",
                 "--sign-alias", "wave=hello", "--sign-map", "kaggle"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 sequences written" in printed and "signs: hello, thankyou" in printed
    assert read_sign_map(out) == {name: i for i, name in enumerate(KAGGLE_SIGNS)}
    assert islr(["import", "mpdata", str(tmp_path / "MP_Data"), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "unknown sign 'wave'" in err
    assert islr(["import", "mpdata", str(tmp_path / "MP_Data"), "--out", str(out), "--sign-alias", "bad"]) == 2
    assert "FROM=TO" in capsys.readouterr().err


def _mpdata_dir(real_data_dir: Path) -> Path:
    path = real_data_dir.parent / "mpdata-dev"
    if not (path / "provenance.csv").exists():
        pytest.skip(f"webcam keypoints not found at {path}")
    return path


@pytest.mark.real
def test_real_mpdata_dev_imports_in_full(real_data_dir, tmp_path):
    src = _mpdata_dir(real_data_dir)
    report = import_mpdata(src, tmp_path / "ds")
    assert len(report.written) == 140 and not report.skipped and not report.unknown_signs
    assert {i.sign for i in report.written} == {"hello", "thankyou", "yes", "no", "please", "bye"}
    folders = sorted(p.name for p in src.iterdir() if (p / "MP_Data").is_dir())
    assert len(folders) == 10
    assert sorted(r.root.parent.name for r in report.roots) == folders
    assert len({r.participant_id for r in report.roots}) == 10
    samples = read_train_csv(tmp_path / "ds")
    assert len(samples) == 140 and len({s.participant_id for s in samples}) == 10
    # The published signs per folder (provenance.csv) survive the name matching.
    provenance = pd.read_csv(src / "provenance.csv")
    expected = sorted(zip(provenance.folder.str.split("/").str[0], provenance.sign, strict=True))
    got = sorted((i.source.parents[2].name, i.sign) for i in report.written)
    assert got == expected
    # One signer stores pose, hands, face: detected from the values, not assumed.
    layouts = {r.root.parent.name: set(r.layouts) for r in report.roots}
    assert layouts.pop("Quisha16__Sign-Language-Recognition") == {"pose-hands-face"}
    assert all(v == {"pose-face-hands"} for v in layouts.values())
    assert_valid(tmp_path / "ds")


@pytest.mark.real
def test_real_import_into_a_copy_of_asl_signs(real_data_dir, tmp_path):
    src = _mpdata_dir(real_data_dir)
    copy = tmp_path / "asl"
    shutil.copytree(real_data_dir, copy)
    original_map = read_sign_map(copy)
    assert list(KAGGLE_SIGNS) == sorted(original_map, key=original_map.get)
    rows_before = (copy / "train.csv").read_text().splitlines()
    import_mpdata(src, copy)
    rows_after = (copy / "train.csv").read_text().splitlines()
    assert rows_after[:len(rows_before)] == rows_before and len(rows_after) == len(rows_before) + 140
    assert read_sign_map(copy) == original_map
    assert_valid(copy)


def test_forced_layout_skips_detection_and_checks_the_length(tmp_path):
    seq = write_sequence(tmp_path / "MP_Data" / "yes" / "0", frames=2, order=("face", "pose", "lh", "rh"))
    report = import_mpdata(tmp_path / "MP_Data", tmp_path / "ds", participant_id=1, layout="face-pose-hands")
    assert report.written[0].layout == "face-pose-hands"
    assert value(rows_of(report.written[0].parquet), 0, "pose", 11) == pytest.approx([0.41, 0.51, -0.5])
    report = import_mpdata(tmp_path / "MP_Data", tmp_path / "ds2", participant_id=1, layout="pose-hands")
    assert report.skipped == [(str(seq), f"{seq}: 1662 values a frame, layout pose-hands has 258")]
    with pytest.raises(ConfigError, match="unknown layout 'nope'"):
        import_mpdata(tmp_path / "MP_Data", tmp_path / "ds3", layout="nope")
