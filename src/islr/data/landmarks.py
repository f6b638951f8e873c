"""The MediaPipe Holistic layout of the Kaggle asl-signs files, as data.

Every frame has 543 rows in a fixed order: face (468), left hand (21), pose (33), right hand (21).
Named subsets are index arrays into those 543 rows; each has a mirror permutation that maps a
landmark to its left/right counterpart *within the subset*, so a horizontally flipped sequence
keeps its meaning (the left hand becomes the right hand, the left eye the right eye, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS_PER_FRAME = 543
FACE_START, FACE_COUNT = 0, 468
LEFT_HAND_START, HAND_COUNT = 468, 21
POSE_START, POSE_COUNT = 489, 33
RIGHT_HAND_START = 522

#: Row order of the ``type`` column in every frame.
PART_ORDER: tuple[tuple[str, int], ...] = (
    ("face", FACE_COUNT),
    ("left_hand", HAND_COUNT),
    ("pose", POSE_COUNT),
    ("right_hand", HAND_COUNT),
)

#: (first row, rows) of each part in a frame, by part name (the ``type`` column's values).
PART_SLOTS: dict[str, tuple[int, int]] = {
    "face": (FACE_START, FACE_COUNT),
    "left_hand": (LEFT_HAND_START, HAND_COUNT),
    "pose": (POSE_START, POSE_COUNT),
    "right_hand": (RIGHT_HAND_START, HAND_COUNT),
}

LEFT_HAND = np.arange(LEFT_HAND_START, LEFT_HAND_START + HAND_COUNT)
RIGHT_HAND = np.arange(RIGHT_HAND_START, RIGHT_HAND_START + HAND_COUNT)
HANDS = np.concatenate([LEFT_HAND, RIGHT_HAND])

# Lips: 40 face-mesh points, outer then inner contour, in the seed's order (its FACE_LANDMARKS):
# each half-contour runs from the subject's right corner (61, 78) to the left one (291, 308).
LIPS = np.array(
    [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
     78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
)
# The same 40 points in the order the Kaggle 1st-place solution published (its LIP): 0 first.
# Feature position p of a kaggle118 model is this list's point p, so the order is part of the model.
WINNER_LIPS = np.array(
    [0, 61, 185, 40, 39, 37, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
     78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
)
# Pose 11-24 (shoulders, elbows, wrists, hand points, hips) as rows 500-513: the seed's choice.
SEED_POSE = np.arange(POSE_START + 11, POSE_START + 25)
NOSE = np.array([1, 2, 98, 327])
# Eye contours of the face mesh (16 points each); "right" is the subject's right eye.
RIGHT_EYE = np.array([33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173])
LEFT_EYE = np.array([263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398])

# Face-mesh left/right pairs for the points used above (the mesh is symmetric about 0-17-13-14...).
# They are the pairs the 1st-place solution swaps when it flips a frame: its 18 LLIP/RLIP lip
# pairs, LNOSE/RNOSE (98, 327) and REYE/LEYE element by element; 0, 17, 13, 14, 1 and 2 stay.
_FACE_PAIRS = [
    (61, 291), (185, 409), (40, 270), (39, 269), (37, 267), (146, 375), (91, 321), (181, 405),
    (84, 314), (78, 308), (191, 415), (80, 310), (81, 311), (82, 312), (95, 324), (88, 318),
    (178, 402), (87, 317), (98, 327),
] + list(zip(RIGHT_EYE.tolist(), LEFT_EYE.tolist(), strict=True))
# Pose pairs (MediaPipe pose indices): eyes, ears, mouth, shoulders ... feet.
_POSE_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18),
               (19, 20), (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)]


# -- the skeleton drawn by every viewer (plots, the camera overlay, the served page) ---------------
#: Bones of the 21-point MediaPipe hand, as positions within a hand's rows
#: (wrist 0; thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20; the palm 0-5-9-13-17-0).
HAND_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
#: Upper-body bones of the 33-point MediaPipe pose, as positions within the pose's rows: shoulders
#: 11-12, arms to the wrists 15-16, each wrist's pinky/index/thumb points 17-22, torso to the hips
#: 23-24. The face and legs are left out: the face mesh shows the face and signs end at the hips.
POSE_EDGES: tuple[tuple[int, int], ...] = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (15, 17), (15, 19), (15, 21), (17, 19),
    (16, 18), (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24),
)


def _full_mirror() -> np.ndarray:
    """Permutation of all 543 rows that swaps every left landmark with its right twin."""
    perm = np.arange(ROWS_PER_FRAME)
    for a, b in _FACE_PAIRS:
        perm[a], perm[b] = b, a
    perm[LEFT_HAND], perm[RIGHT_HAND] = RIGHT_HAND, LEFT_HAND
    for a, b in _POSE_PAIRS:
        perm[POSE_START + a], perm[POSE_START + b] = POSE_START + b, POSE_START + a
    return perm


#: ``FULL_MIRROR[i]`` is the row that row ``i`` becomes after a horizontal flip.
FULL_MIRROR = _full_mirror()


@dataclass(frozen=True)
class LandmarkSubset:
    """A named selection of the 543 rows and its left/right mirror permutation."""

    name: str
    indices: np.ndarray
    description: str

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def mirror(self) -> np.ndarray:
        """Positions within the subset: ``x[:, mirror]`` swaps left and right landmarks."""
        position = {int(row): i for i, row in enumerate(self.indices)}
        try:
            return np.array([position[int(FULL_MIRROR[row])] for row in self.indices])
        except KeyError as missing:  # a subset must contain both sides of every pair
            raise ValueError(f"subset {self.name!r} lacks the mirror of row {missing}") from None

    def position_of(self, row: int) -> int:
        """Position of raw row ``row`` inside this subset."""
        hits = np.flatnonzero(self.indices == row)
        if not len(hits):
            raise KeyError(f"row {row} is not in subset {self.name!r}")
        return int(hits[0])


SUBSETS: dict[str, LandmarkSubset] = {
    "all": LandmarkSubset("all", np.arange(ROWS_PER_FRAME), "all 543 Holistic rows"),
    "seed96": LandmarkSubset(
        "seed96",
        np.concatenate([LIPS, LEFT_HAND, RIGHT_HAND, SEED_POSE]),
        "the seed project's 96: 40 lips, 21+21 hands, pose 500-513",
    ),
    "kaggle118": LandmarkSubset(
        "kaggle118",
        np.concatenate([WINNER_LIPS, LEFT_HAND, RIGHT_HAND, NOSE, RIGHT_EYE, LEFT_EYE]),
        "Kaggle 1st place's 118 in its published order: 40 lips, 21+21 hands, 4 nose, 16+16 eyes",
    ),
    "hands": LandmarkSubset("hands", HANDS, "both hands, 42 points"),
}


def get_subset(name: str) -> LandmarkSubset:
    """Look up a named landmark subset (``all``, ``seed96``, ``kaggle118``, ``hands``)."""
    try:
        return SUBSETS[name]
    except KeyError:
        raise KeyError(f"unknown landmark subset {name!r}; known: {sorted(SUBSETS)}") from None


def part_of_row(row: int) -> str:
    """Name of the body part a raw row belongs to."""
    start = 0
    for part, count in PART_ORDER:
        if row < start + count:
            return part
        start += count
    raise IndexError(row)
