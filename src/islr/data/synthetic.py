"""A learnable synthetic dataset written in the exact Kaggle asl-signs layout.

Every sign has its own hand trajectory (start place relative to the face, a two-harmonic path
and drift), its own handshape change (finger curls) and wrist rotation, and is one-handed or
two-handed (mirrored or with a still base hand). Every participant has their own position,
size, speed, style (amplitude, jitter, head tilt), hand-detection failure rate, and some are
left-handed (the whole body mirrored, so the left hand leads). Face (468), pose (33) and both
hands (21 each) get plausible image coordinates; hands are NaN in rest frames at the start and
end, in short detection dropouts, and the idle hand of one-handed signs is mostly missing.

Classes differ much more than signers do, so a small model reaches high accuracy on unseen
participants. Output is deterministic in ``seed``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islr.data.kaggle import LANDMARK_DIR, SIGN_MAP_JSON, TRAIN_CSV, write_landmarks
from islr.data.landmarks import (
    FACE_COUNT,
    FULL_MIRROR,
    LEFT_EYE,
    LEFT_HAND,
    LIPS,
    POSE_START,
    RIGHT_EYE,
    RIGHT_HAND,
    ROWS_PER_FRAME,
)

_FACE_CENTRE = np.array([0.5, 0.32])
_MOUTH = np.array([0.5, 0.41])
# Finger layout of a right hand, palm to the camera, fingers up, in units of hand size:
# (MCP base x, base y, direction in degrees from "up" toward +x, three segment lengths).
_FINGERS = (
    (0.22, -0.18, 55.0, (0.28, 0.24, 0.20)),  # thumb (toward the body midline)
    (0.12, -0.62, 8.0, (0.30, 0.18, 0.15)),  # index
    (0.00, -0.64, 0.0, (0.33, 0.20, 0.16)),  # middle
    (-0.12, -0.60, -8.0, (0.30, 0.18, 0.15)),  # ring
    (-0.22, -0.52, -18.0, (0.24, 0.14, 0.12)),  # pinky
)


@dataclass
class SignSpec:
    """What makes one synthetic sign recognisable."""

    start: np.ndarray  # dominant wrist start, relative to the face centre
    harmonics: np.ndarray  # (2 harmonics, 2 dims, sin/cos) path amplitudes
    drift: np.ndarray  # (2,) straight movement over the sign
    curls_from: np.ndarray  # (5,) finger curls at the start (0 straight .. 1 fist)
    curls_to: np.ndarray  # (5,) at the end
    angle: float  # wrist rotation (radians)
    angle_swing: float
    hands: str  # "one", "mirror" (both move symmetrically) or "base" (other hand still)
    base_at: np.ndarray  # (2,) the still hand's place, relative to the face centre
    frames: int  # typical length at speed 1


@dataclass
class Signer:
    """What makes one synthetic participant look different."""

    participant_id: int
    offset: np.ndarray
    scale: float
    speed: float
    left_handed: bool
    amplitude: float
    jitter: float
    tilt: float
    dropout: float
    face_z: np.ndarray = field(repr=False)


@dataclass
class SyntheticInfo:
    """Summary of a generated dataset."""

    out_dir: Path
    files: int
    signs: list[str]
    participants: list[int]
    left_handed: list[int]


def _face_template(rng: np.random.Generator) -> np.ndarray:
    """468 face-mesh points (x, y, z) with symmetric lips, eyes and nose at their mesh rows."""
    face = np.zeros((FACE_COUNT, 3))
    r = np.sqrt(rng.random(FACE_COUNT))
    a = rng.uniform(0, 2 * np.pi, FACE_COUNT)
    face[:, 0] = _FACE_CENTRE[0] + 0.085 * r * np.cos(a)
    face[:, 1] = _FACE_CENTRE[1] + 0.115 * r * np.sin(a)
    face[:, 2] = -0.04 * (1 - r**2) + rng.normal(0, 0.003, FACE_COUNT)

    def ring(rows: np.ndarray, theta: np.ndarray, centre: np.ndarray, rx: float, ry: float, sign: float) -> None:
        face[rows, 0] = centre[0] + rx * np.cos(theta)
        face[rows, 1] = centre[1] - sign * ry * np.sin(theta)
        face[rows, 2] = -0.035

    # Outer lips: 11 upper points corner to corner, 9 lower ones; inner: 10 upper, 9 lower, corner.
    ring(LIPS[:11], np.pi * (1 - np.arange(11) / 10), _MOUTH, 0.034, 0.012, +1)
    ring(LIPS[11:20], np.pi * (1 - np.arange(1, 10) / 10), _MOUTH, 0.034, 0.014, -1)
    ring(LIPS[20:30], np.pi * (1 - np.arange(10) / 10), _MOUTH, 0.024, 0.005, +1)
    ring(LIPS[30:39], np.pi * (1 - np.arange(1, 10) / 10), _MOUTH, 0.024, 0.005, -1)
    ring(LIPS[39:40], np.zeros(1), _MOUTH, 0.024, 0.005, +1)
    eye_theta = np.concatenate([np.pi * (1 - np.arange(9) / 8), np.pi * (1 - np.arange(1, 8) / 8)])
    eye_sign = np.concatenate([-np.ones(9), np.ones(7)])
    for k, row in enumerate(RIGHT_EYE):  # the subject's right eye is on the image left
        face[row] = [0.46 + 0.016 * np.cos(eye_theta[k]), 0.285 - eye_sign[k] * 0.006 * np.sin(eye_theta[k]), -0.02]
    for right, left in zip(RIGHT_EYE, LEFT_EYE, strict=True):
        face[left] = [1.0 - face[right, 0], face[right, 1], face[right, 2]]
    face[[1, 2, 98, 327]] = [[0.5, 0.345, -0.06], [0.5, 0.36, -0.05], [0.485, 0.355, -0.04], [0.515, 0.355, -0.04]]
    return face


def _pose_template() -> np.ndarray:
    """33 pose points (x, y, z) of a person facing the camera (subject's left on the image right)."""
    pose = np.zeros((33, 3))
    named = {
        0: (0.5, 0.34), 1: (0.47, 0.285), 2: (0.46, 0.285), 3: (0.45, 0.285), 7: (0.42, 0.30), 9: (0.48, 0.40),
        12: (0.34, 0.58), 14: (0.30, 0.80), 16: (0.36, 0.95), 18: (0.365, 1.0), 20: (0.37, 1.0), 22: (0.37, 0.99),
        24: (0.40, 0.98), 26: (0.40, 1.35), 28: (0.40, 1.70), 30: (0.40, 1.75), 32: (0.41, 1.80),
    }
    for row, (x, y) in named.items():
        pose[row, :2] = (x, y)
        twin = int(FULL_MIRROR[POSE_START + row]) - POSE_START
        pose[twin, :2] = (1.0 - x, y)
    pose[:, 2] = np.linspace(-0.9, 0.3, 33)
    return pose


def _hand(wrist: np.ndarray, angle: np.ndarray, curls: np.ndarray, size: float, side: float) -> np.ndarray:
    """21 hand points per frame from wrist ``(T, 2)``, rotation ``(T,)`` and curls ``(T, 5)``.

    ``side`` is +1 for a right hand (thumb toward +x) and -1 for a left hand.
    """
    frames = len(wrist)
    pts = np.zeros((frames, 21, 3))
    for f, (bx, by, deg, seg) in enumerate(_FINGERS):
        base = np.array([side * bx, by])
        direction = np.deg2rad(deg) * side
        d = np.array([np.sin(direction), -np.cos(direction)])
        pos = np.broadcast_to(base, (frames, 2)).copy()
        z = np.zeros(frames)
        bend = np.zeros(frames)
        row = 1 + 4 * f
        pts[:, row, :2] = pos
        for k, length in enumerate(seg):
            bend = bend + curls[:, f] * (0.55 if f == 0 else 0.85) * (1.0 if k else 0.7)
            pos = pos + length * np.cos(bend)[:, None] * d
            z = z - length * np.sin(bend)
            pts[:, row + 1 + k, :2] = pos
            pts[:, row + 1 + k, 2] = z
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = pts[..., 0].copy(), pts[..., 1].copy()
    pts[..., 0] = wrist[:, :1] + size * (c * x - s * y)
    pts[..., 1] = wrist[:, 1:] + size * (s * x + c * y)
    pts[..., 2] = size * pts[..., 2] * 0.5
    return pts


def _sign_specs(n: int, rng: np.random.Generator) -> list[SignSpec]:
    specs = []
    for _ in range(n):
        hands = rng.choice(["one", "one", "mirror", "base"])
        specs.append(
            SignSpec(
                start=np.array([rng.uniform(-0.22, 0.06), rng.uniform(-0.08, 0.32)]),
                harmonics=rng.normal(0, 0.045, (2, 2, 2)),
                drift=rng.normal(0, 0.07, 2),
                curls_from=rng.choice([0.0, 0.5, 1.0], 5) + rng.uniform(-0.1, 0.1, 5),
                curls_to=rng.choice([0.0, 0.5, 1.0], 5) + rng.uniform(-0.1, 0.1, 5),
                angle=rng.uniform(-0.9, 0.9),
                angle_swing=rng.uniform(-0.6, 0.6),
                hands=str(hands),
                base_at=np.array([rng.uniform(0.02, 0.12), rng.uniform(0.25, 0.40)]),
                frames=int(rng.integers(16, 40)),
            )
        )
    return specs


def _signers(n: int, rng: np.random.Generator) -> list[Signer]:
    ids = rng.choice(np.arange(10_000, 65_000), size=n, replace=False)
    signers = [
        Signer(
            participant_id=int(pid),
            offset=rng.uniform(-0.06, 0.06, 2),
            scale=float(rng.uniform(0.85, 1.15)),
            speed=float(rng.uniform(0.75, 1.3)),
            left_handed=bool(rng.random() < 0.2),
            amplitude=float(rng.uniform(0.85, 1.15)),
            jitter=float(rng.uniform(0.001, 0.004)),
            tilt=float(np.deg2rad(rng.uniform(-5, 5))),
            dropout=float(rng.uniform(0.0, 0.12)),
            face_z=rng.normal(0, 0.01, FACE_COUNT),
        )
        for pid in ids
    ]
    if n >= 4 and not any(s.left_handed for s in signers):
        signers[-1].left_handed = True  # always show the model some left-handed signing
    return signers


def _sequence(spec: SignSpec, who: Signer, face: np.ndarray, pose: np.ndarray, frames: int,
              rng: np.random.Generator) -> np.ndarray:
    """One ``(frames, 543, 3)`` recording of ``spec`` by ``who`` (NaN where undetected)."""
    out = np.full((frames, ROWS_PER_FRAME, 3), np.nan)
    rest_in = int(rng.integers(0, 4)) if frames > 12 else 0
    rest_out = int(rng.integers(0, 4)) if frames > 12 else 0
    active = frames - rest_in - rest_out
    t = np.linspace(0.0, 1.0, active)
    amp = who.amplitude * rng.uniform(0.85, 1.15)
    phase = rng.normal(0, 0.15, 2)
    path = spec.start + rng.normal(0, 0.012, 2) + np.outer(t, spec.drift) * amp
    for k in range(2):
        w = 2 * np.pi * (k + 1) * t[:, None]
        path = path + amp * (spec.harmonics[k, :, 0] * np.sin(w + phase[k]) + spec.harmonics[k, :, 1] * (np.cos(w + phase[k]) - 1))
    wrist = _FACE_CENTRE + path
    angle = spec.angle + spec.angle_swing * np.sin(np.pi * t) + rng.normal(0, 0.05)
    ease = (0.5 - 0.5 * np.cos(np.pi * t))[:, None]
    curls = np.clip(spec.curls_from * (1 - ease) + spec.curls_to * ease, 0.0, 1.0)
    size = 0.11

    sl = slice(rest_in, rest_in + active)
    head = 0.004 * np.sin(np.linspace(0, 2 * np.pi * rng.uniform(0.5, 1.5), frames) + rng.uniform(0, 6))
    out[:, :FACE_COUNT] = face + np.stack([head, 0.5 * head, np.zeros(frames)], -1)[:, None, :]
    out[:, :FACE_COUNT, 2] += who.face_z
    out[:, POSE_START : POSE_START + 33] = pose
    out[sl, RIGHT_HAND] = _hand(wrist, angle, curls, size, +1.0)
    if spec.hands == "mirror":
        other = np.stack([1.0 - wrist[:, 0], wrist[:, 1]], -1)
        out[sl, LEFT_HAND] = _hand(other, -angle, curls, size, -1.0)
    elif spec.hands == "base":
        still = _FACE_CENTRE + spec.base_at + rng.normal(0, 0.004, (active, 2))
        out[sl, LEFT_HAND] = _hand(still, np.full(active, 0.3), np.full((active, 5), 0.2), size, -1.0)
    elif rng.random() < 0.3:  # the idle hand sometimes shows, low and still
        idle = np.array([0.66, 0.86]) + rng.normal(0, 0.005, (active, 2))
        out[sl, LEFT_HAND] = _hand(idle, np.full(active, 0.1), np.full((active, 5), 0.4), size, -1.0)
    # Pose wrists, elbows and hand points follow the hands (rest position when a hand is missing).
    for hand_rows, wrist_row, elbow_row, shoulder_row in ((RIGHT_HAND, 16, 14, 12), (LEFT_HAND, 15, 13, 11)):
        seen = ~np.isnan(out[:, hand_rows[0], 0])
        w = out[seen, hand_rows[0], :2]
        out[seen, POSE_START + wrist_row, :2] = w
        shoulder = pose[shoulder_row, :2]
        out[seen, POSE_START + elbow_row, :2] = (shoulder + w) / 2 + np.array([0.0, 0.12])
        for hand_pt, pose_pt in ((20, wrist_row + 2), (8, wrist_row + 4), (4, wrist_row + 6)):
            out[seen, POSE_START + pose_pt, :2] = out[seen, hand_rows[hand_pt], :2]
    # Short detection failures of each hand.
    for rows in (RIGHT_HAND, LEFT_HAND):
        starts = np.flatnonzero(rng.random(frames) < who.dropout)
        for s0 in starts:
            out[s0 : s0 + int(rng.integers(1, 4)), rows] = np.nan
    out[..., :2] += rng.normal(0, who.jitter, out[..., :2].shape)
    if who.left_handed:  # mirror the whole body: the left hand leads
        out = out[:, FULL_MIRROR]
        out[..., 0] = 1.0 - out[..., 0]
    # The signer's place, size and head tilt in the picture.
    c, s = np.cos(who.tilt), np.sin(who.tilt)
    xy = out[..., :2] - 0.5
    rotated = np.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], -1)
    out[..., :2] = 0.5 + who.scale * rotated + who.offset
    return out.astype(np.float32)


def _unique_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct Kaggle-like sequence ids (10-digit numbers), in random order."""
    ids = np.zeros(0, dtype=np.int64)
    while len(ids) < n:
        more = rng.integers(10**9, 4 * 10**9, size=2 * n + 8, dtype=np.int64)
        ids = np.concatenate([ids, more])
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
    return ids[:n]


def default_sign_names(n: int) -> list[str]:
    """``sign000``, ``sign001``, ..."""
    return [f"sign{i:03d}" for i in range(n)]


@dataclass
class _World:
    """Everything shared by the recordings of one generated dataset (sent to worker processes)."""

    out_dir: Path
    seed: int
    face: np.ndarray
    pose: np.ndarray
    specs: list[SignSpec]
    people: list[Signer]
    names: list[str]
    min_frames: int
    max_frames: int


def _write_jobs(world: _World, jobs: list[tuple[int, ...]]) -> list[tuple[str, int, int, str]]:
    """Generate and write recordings ``(k, person, sign, sequence_id[, frames])``; returns
    train.csv rows. Without ``frames`` the length follows the sign and the signer's speed."""
    rows = []
    for job in jobs:
        k, p, c, sid = job[:4]
        who, spec = world.people[p], world.specs[c]
        sample_rng = np.random.default_rng([world.seed, 4, k])
        frames = int(round(spec.frames * who.speed * sample_rng.uniform(0.85, 1.15)))
        frames = int(np.clip(frames, world.min_frames, world.max_frames))
        if len(job) > 4:
            frames = int(job[4])  # a replica's length, drawn from the measured distribution
        landmarks = _sequence(spec, who, world.face, world.pose, frames, sample_rng)
        rel = f"{LANDMARK_DIR}/{who.participant_id}/{sid}.parquet"
        write_landmarks(world.out_dir / rel, landmarks, first_frame=int(sample_rng.integers(0, 200)))
        rows.append((rel, who.participant_id, sid, world.names[c]))
    return rows


def generate(
    out_dir: str | Path,
    signs: int = 10,
    participants: int = 5,
    per_sign: int = 4,
    seed: int = 0,
    min_frames: int = 10,
    max_frames: int = 48,
    sign_names: list[str] | None = None,
    workers: int = 1,
) -> SyntheticInfo:
    """Write a synthetic dataset in Kaggle layout to ``out_dir``.

    ``per_sign`` recordings of each of ``signs`` signs by each of ``participants`` participants
    (``signs * participants * per_sign`` files), each ``min_frames..max_frames`` frames long.
    ``sign_names`` (at least ``signs`` of them) replaces ``sign000``, ``sign001``, ...
    ``workers`` processes write the files (0 = all cores); the output does not depend on it.
    """
    if signs < 1 or participants < 1 or per_sign < 1:
        raise ValueError("signs, participants and per_sign must be >= 1")
    if not 1 <= min_frames <= max_frames:
        raise ValueError("need 1 <= min_frames <= max_frames")
    names = list(sign_names[:signs]) if sign_names else default_sign_names(signs)
    if len(names) < signs or len(set(names)) != len(names):
        raise ValueError(f"need {signs} distinct sign names, got {len(set(names))}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    world = _World(
        out_dir=out_dir,
        seed=seed,
        face=_face_template(np.random.default_rng([seed, 1])),
        pose=_pose_template(),
        specs=_sign_specs(signs, np.random.default_rng([seed, 2])),
        people=_signers(participants, np.random.default_rng([seed, 3])),
        names=names,
        min_frames=min_frames,
        max_frames=max_frames,
    )
    sequence_ids = _unique_ids(rng, signs * participants * per_sign)
    jobs = []
    for p in range(participants):
        for c in range(signs):
            for _ in range(per_sign):
                k = len(jobs)
                jobs.append((k, p, c, int(sequence_ids[k])))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _run(world, jobs, workers)
    with open(out_dir / TRAIN_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "participant_id", "sequence_id", "sign"])
        writer.writerows(rows)
    (out_dir / SIGN_MAP_JSON).write_text(json.dumps({name: i for i, name in enumerate(names)}))
    return SyntheticInfo(
        out_dir=out_dir,
        files=len(rows),
        signs=names,
        participants=[p.participant_id for p in world.people],
        left_handed=[p.participant_id for p in world.people if p.left_handed],
    )


def _run(world: _World, jobs: list[tuple[int, int, int, int]], workers: int) -> list[tuple[str, int, int, str]]:
    """Write every job, in worker processes when that pays; rows come back in job order."""
    from islr.data.cache import _mp_context, default_workers

    workers = workers or default_workers()
    if workers <= 1 or len(jobs) < 64:
        return _write_jobs(world, jobs)
    from concurrent.futures import ProcessPoolExecutor

    parts = [jobs[i :: workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as pool:
        done = list(pool.map(_write_jobs, [world] * len(parts), parts))
    by_k = {job[0]: row for part, rows in zip(parts, done, strict=True) for job, row in zip(part, rows, strict=True)}
    return [by_k[k] for k in range(len(jobs))]
