"""The landmark layout as data: the seed's 96, Kaggle's 118 and the mirror permutations."""

from __future__ import annotations

import numpy as np
import pytest

from islr.data.landmarks import (
    FULL_MIRROR,
    LEFT_EYE,
    LEFT_HAND,
    LIPS,
    NOSE,
    RIGHT_EYE,
    RIGHT_HAND,
    ROWS_PER_FRAME,
    SUBSETS,
    get_subset,
    part_of_row,
)

# The seed's config.USEFUL_ALL_LANDMARKS, copied literally from the seed documentation.
SEED_USEFUL_ALL_LANDMARKS = [
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146,
    91, 181, 84, 17, 314, 405, 321, 375, 78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178,
    87, 14, 317, 402, 318, 324, 308, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477, 478, 479,
    480, 481, 482, 483, 484, 485, 486, 487, 488, 522, 523, 524, 525, 526, 527, 528, 529, 530, 531,
    532, 533, 534, 535, 536, 537, 538, 539, 540, 541, 542, 500, 501, 502, 503, 504, 505, 506, 507,
    508, 509, 510, 511, 512, 513,
]
# The seed's within-subset index arrays (config.FACE_INDICES, LEFT_HAND_INDICES, ...).
SEED_FACE_INDICES = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
    25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
]
SEED_LEFT_HAND_INDICES = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54,
                          55, 56, 57, 58, 59, 60]
SEED_RIGHT_HAND_INDICES = [61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75,
                           76, 77, 78, 79, 80, 81]
SEED_POSE_INDICES = [82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95]


def test_seed96_is_the_seed_config():
    seed96 = get_subset("seed96")
    assert seed96.indices.tolist() == SEED_USEFUL_ALL_LANDMARKS
    rows = seed96.indices
    assert rows[SEED_FACE_INDICES].tolist() == SEED_USEFUL_ALL_LANDMARKS[:40]
    assert rows[SEED_LEFT_HAND_INDICES].tolist() == list(range(468, 489))
    assert rows[SEED_RIGHT_HAND_INDICES].tolist() == list(range(522, 543))
    assert rows[SEED_POSE_INDICES].tolist() == list(range(500, 514))
    assert {part_of_row(r) for r in rows[SEED_FACE_INDICES]} == {"face"}
    assert {part_of_row(r) for r in rows[SEED_POSE_INDICES]} == {"pose"}


def test_kaggle118_composition():
    sub = get_subset("kaggle118")
    assert len(sub) == 118 == len(set(sub.indices.tolist()))
    assert sub.indices[:40].tolist() == LIPS.tolist()
    assert sub.indices[40:82].tolist() == list(range(468, 489)) + list(range(522, 543))
    assert sub.indices[82:86].tolist() == NOSE.tolist() == [1, 2, 98, 327]
    assert sub.indices[86:102].tolist() == RIGHT_EYE.tolist()
    assert sub.indices[102:118].tolist() == LEFT_EYE.tolist()
    assert {part_of_row(r) for r in sub.indices[:40]} | {part_of_row(r) for r in sub.indices[82:]} == {"face"}


def test_subset_sizes_and_unknown_name():
    assert {name: len(s) for name, s in SUBSETS.items()} == {
        "all": 543, "seed96": 96, "kaggle118": 118, "hands": 42,
    }
    with pytest.raises(KeyError, match="unknown landmark subset 'nope'"):
        get_subset("nope")


@pytest.mark.parametrize("name", sorted(SUBSETS))
def test_mirror_is_an_involution_permutation(name):
    mirror = get_subset(name).mirror
    n = len(get_subset(name))
    assert sorted(mirror.tolist()) == list(range(n))
    assert mirror[mirror].tolist() == list(range(n))


@pytest.mark.parametrize("name", sorted(SUBSETS))
def test_mirror_swaps_hands(name):
    sub = get_subset(name)
    mirrored_rows = sub.indices[sub.mirror]
    for left, right in zip(LEFT_HAND, RIGHT_HAND, strict=True):
        assert mirrored_rows[sub.position_of(left)] == right
        assert mirrored_rows[sub.position_of(right)] == left


@pytest.mark.parametrize("name", ["all", "seed96", "kaggle118"])
def test_mirror_swaps_lips_and_fixes_centre(name):
    sub = get_subset(name)
    mirrored_rows = sub.indices[sub.mirror]
    assert mirrored_rows[sub.position_of(61)] == 291
    assert mirrored_rows[sub.position_of(291)] == 61
    assert mirrored_rows[sub.position_of(78)] == 308
    for centre in (0, 17, 13, 14):
        assert mirrored_rows[sub.position_of(centre)] == centre
    # Every lip point maps onto a lip point.
    lips = {sub.position_of(r) for r in LIPS}
    assert {int(sub.mirror[p]) for p in lips} == lips


@pytest.mark.parametrize("name", ["all", "kaggle118"])
def test_mirror_swaps_eyes_and_nose(name):
    sub = get_subset(name)
    mirrored_rows = sub.indices[sub.mirror]
    for right, left in zip(RIGHT_EYE, LEFT_EYE, strict=True):
        assert mirrored_rows[sub.position_of(right)] == left
        assert mirrored_rows[sub.position_of(left)] == right
    assert mirrored_rows[sub.position_of(98)] == 327
    assert mirrored_rows[sub.position_of(1)] == 1


def test_seed96_mirror_swaps_pose_shoulders():
    sub = get_subset("seed96")
    pose11, pose12 = 489 + 11, 489 + 12
    mirrored_rows = sub.indices[sub.mirror]
    assert mirrored_rows[sub.position_of(pose11)] == pose12
    assert mirrored_rows[sub.position_of(pose12)] == pose11
    # Positions: pose 500..513 sit at 82..95, so 82 <-> 83 and the hips 94 <-> 95.
    assert sub.mirror[82] == 83 and sub.mirror[94] == 95
    assert sub.mirror[SEED_LEFT_HAND_INDICES].tolist() == SEED_RIGHT_HAND_INDICES


def test_mirror_applied_to_data_moves_values():
    rng = np.random.default_rng(0)
    frame = rng.normal(size=(1, ROWS_PER_FRAME, 2))
    flipped = frame[:, FULL_MIRROR]
    assert np.array_equal(flipped[0, 468:489], frame[0, 522:543])
    assert np.array_equal(flipped[0, 61], frame[0, 291])
    assert np.array_equal(flipped[0, 0], frame[0, 0])
    assert np.array_equal(flipped[:, FULL_MIRROR], frame)


@pytest.mark.real
def test_face_mirror_pairs_are_symmetric_on_real_faces(real_data_dir):
    """On genuine frames every mirrored face pair straddles the facial midline at equal height."""
    from islr.data.kaggle import read_landmarks

    sub = get_subset("kaggle118")
    face = np.array([i for i, row in enumerate(sub.indices) if part_of_row(row) == "face"])
    files = sorted((real_data_dir / "train_landmark_files").glob("*/*.parquet"))[:20]
    data = np.concatenate([read_landmarks(f)[:, sub.indices, :2] for f in files])
    data = data[~np.isnan(data[:, face, 0]).any(axis=1)]
    assert len(data) > 100
    centre = data[:, [sub.position_of(0), sub.position_of(17), sub.position_of(1)], 0].mean(axis=1)
    width = np.ptp(data[:, face, 0], axis=1)
    mirrored = data[:, sub.mirror]
    midpoint_off = np.abs((data[:, face, 0] + mirrored[:, face, 0]) / 2 - centre[:, None]) / width[:, None]
    height_off = np.abs(data[:, face, 1] - mirrored[:, face, 1]) / width[:, None]
    assert np.median(midpoint_off) < 0.05
    assert np.median(height_off) < 0.05
    # A wrong pairing (outer lip corner 61 with inner corner 78) is far off the midline.
    wrong = np.abs((data[:, sub.position_of(61), 0] + data[:, sub.position_of(78), 0]) / 2 - centre) / width
    assert np.median(wrong) > 0.15
