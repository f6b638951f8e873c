"""MediaPipe keypoint folders (the ``MP_Data`` layout of a popular tutorial) -> the Kaggle layout.

A *root* holds ``<root>/<sign>/<sequence>/<frame>.npy``: one float vector a frame. Known vectors:

- 1662 values: pose 33 x (x, y, z, visibility), face 468 x 3, left hand 21 x 3, right hand
  21 x 3. The tutorial writes pose, face, hands; others write the face first, or the hands before
  the face: every order of the three blocks (hands always left then right) is a candidate.
- 258 values: pose and hands; 126 values: the two hands.

A part that was not detected is stored as zeros. The layout is detected per sequence from the
values themselves: pose visibility lies in [0, 1], a hand's wrist has z = 0 (MediaPipe hand z is
relative to the wrist) and a detected part holds no long run of exact zeros. A sequence that fits
no candidate, or several that give different landmarks, is refused with the reason.

Each sequence becomes ``OUT/train_landmark_files/<participant>/<sequence>.parquet`` in the exact
Kaggle schema (face, left_hand, pose, right_hand; visibility dropped; missing parts NaN) and a row
of ``OUT/train.csv``. Ids are stable, so importing again replaces rather than duplicates:

- participant id: one per root, the CRC-32 of ``"<parent folder>/<root folder>"`` (for
  ``owner__repo/MP_Data`` that names the signer), or the one given for a single root;
- sequence id: the CRC-32 of ``"<participant>/<sign folder>/<sequence folder>"``.

Sign folders are matched to sign names with :class:`islr.data.signs.SignMatcher`. A bad sequence
(ragged frame numbers, a wrong vector length, an unreadable file, no frames, no hand in any frame)
is reported with the file and skipped; the rest is imported.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islr.data.kaggle import LANDMARK_DIR, write_landmarks
from islr.data.kaggle_writer import TrainRow, add_rows, existing_sign_map, read_rows
from islr.data.landmarks import (
    FACE_START,
    HANDS,
    LEFT_HAND_START,
    POSE_START,
    RIGHT_HAND_START,
    ROWS_PER_FRAME,
)
from islr.data.signs import KAGGLE_SIGNS, SignMatcher
from islr.errors import ConfigError, DataError
from islr.fileio import atomic_path

#: part -> (points, values per point, first Kaggle row)
PARTS: dict[str, tuple[int, int, int]] = {
    "pose": (33, 4, POSE_START),
    "face": (468, 3, FACE_START),
    "left_hand": (21, 3, LEFT_HAND_START),
    "right_hand": (21, 3, RIGHT_HAND_START),
}
_BLOCKS = {"pose": ("pose",), "face": ("face",), "hands": ("left_hand", "right_hand")}
#: Layout names by vector length, the tutorial's first.
CANDIDATES: dict[int, tuple[str, ...]] = {
    1662: ("pose-face-hands", "face-pose-hands", "pose-hands-face", "face-hands-pose",
           "hands-pose-face", "hands-face-pose"),
    258: ("pose-hands", "hands-pose"),
    126: ("hands",),
}
#: MediaPipe reports a hand's wrist at z = 0 (about 1e-6 in float32 files).
WRIST_Z_TOLERANCE = 1e-4
#: A detected part never holds this many exact zeros in a row; a missing one is all zeros.
ZERO_RUN = 12
#: The Kaggle ``frame`` column is int16.
MAX_FRAME = 32767


@dataclass(frozen=True)
class Layout:
    """The order of the parts in one frame vector."""

    name: str
    parts: tuple[str, ...]

    @property
    def length(self) -> int:
        return sum(PARTS[p][0] * PARTS[p][1] for p in self.parts)

    def spans(self) -> dict[str, tuple[int, int]]:
        """part -> (start, stop) within the vector."""
        spans, start = {}, 0
        for part in self.parts:
            stop = start + PARTS[part][0] * PARTS[part][1]
            spans[part] = (start, stop)
            start = stop
        return spans


LAYOUTS: dict[str, Layout] = {
    name: Layout(name, tuple(p for block in name.split("-") for p in _BLOCKS[block]))
    for names in CANDIDATES.values() for name in names
}


def _zero_run(block: np.ndarray) -> bool:
    """Whether any row of ``block`` holds ZERO_RUN exact zeros in a row."""
    if block.shape[0] == 0 or block.shape[1] < ZERO_RUN:
        return False
    windows = np.lib.stride_tricks.sliding_window_view(block == 0, ZERO_RUN, axis=1)
    return bool(windows.all(axis=-1).any())


def contradiction(vectors: np.ndarray, layout: Layout) -> str | None:
    """Why ``vectors`` (frames, length) cannot be in ``layout``, or None when they fit."""
    for part, (start, stop) in layout.spans().items():
        block = vectors[:, start:stop]
        present = block.any(axis=1)
        seen = block[present]
        if part == "pose":
            visibility = seen[:, 3::4]
            if ((visibility < 0) | (visibility > 1)).any():
                return f"pose visibility (values {start + 3}, {start + 7}, ...) not within [0, 1]"
        elif part != "face" and (np.abs(seen[:, 2]) > WRIST_Z_TOLERANCE).any():
            return f"{part} wrist z (value {start + 2}) is not 0"
        if _zero_run(seen):
            return f"{part} (values {start}..{stop - 1}) is partly zeros"
    return None


def to_landmarks(vectors: np.ndarray, layout: Layout) -> np.ndarray:
    """Frame vectors in ``layout`` -> float64 ``(frames, 543, 3)``; missing parts NaN."""
    frames = len(vectors)
    out = np.full((frames, ROWS_PER_FRAME, 3), np.nan)
    for part, (start, stop) in layout.spans().items():
        points, values, row = PARTS[part]
        block = vectors[:, start:stop]
        present = block.any(axis=1)
        xyz = block.reshape(frames, points, values)[:, :, :3]
        out[present, row:row + points] = xyz[present]
    return out


def detect_layout(vectors: np.ndarray, where: str | Path) -> Layout:
    """The one layout the frame vectors of a sequence fit; DataError naming ``where`` otherwise."""
    length = vectors.shape[1]
    names = CANDIDATES.get(length)
    if names is None:
        raise DataError(where, f"{length} values a frame; expected {_lengths()}")
    reasons = {name: contradiction(vectors, LAYOUTS[name]) for name in names}
    fits = [name for name in names if reasons[name] is None]
    if len(fits) == 1:
        return LAYOUTS[fits[0]]
    if not fits:
        why = "; ".join(f"{name}: {reason}" for name, reason in reasons.items())
        raise DataError(where, f"the {length}-value frames fit no known layout ({why}); "
                               "pass the layout explicitly if you know it")
    first = to_landmarks(vectors, LAYOUTS[fits[0]])
    if all(np.array_equal(first, to_landmarks(vectors, LAYOUTS[n]), equal_nan=True) for n in fits[1:]):
        return LAYOUTS[fits[0]]  # e.g. only hands detected: every order reads the same
    raise DataError(where, f"ambiguous layout: the {length}-value frames fit {', '.join(fits)}; "
                           "pass the layout explicitly")


def _lengths() -> str:
    return "1662 (pose, face, hands), 258 (pose, hands) or 126 (hands)"


def _load_vector(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        text = str(exc).strip().splitlines()
        raise DataError(path, f"unreadable .npy file ({text[0] if text else type(exc).__name__})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(path, "not a single array (.npz archive?)")
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise DataError(path, f"expected one vector a frame, got an array of shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise DataError(path, f"expected numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise DataError(path, "holds NaN or infinite values (missing parts must be zeros)")
    return array.astype(np.float64)


def read_sequence(folder: str | Path) -> tuple[np.ndarray, int]:
    """Read ``folder/<frame>.npy`` -> (float64 ``(frames, length)``, first frame number).

    Frame numbers must be consecutive and every vector the same length; any problem raises
    :class:`DataError` naming the file (or the folder, for a missing frame or no frames).
    """
    folder = Path(folder)
    numbered: dict[int, Path] = {}
    for path in sorted(folder.glob("*.npy")):
        try:
            number = int(path.stem)
        except ValueError:
            raise DataError(path, "file name is not a frame number (expected <frame>.npy)") from None
        if number in numbered:
            raise DataError(path, f"frame {number} appears twice (also {numbered[number].name})")
        numbered[number] = path
    if not numbered:
        raise DataError(folder, "empty sequence: no <frame>.npy files")
    order = sorted(numbered)
    first, last = order[0], order[-1]
    if last - first + 1 != len(order):
        missing = sorted(set(range(first, last + 1)) - set(order))
        shown = ", ".join(f"{m}.npy" for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(folder, f"ragged frame numbering: {shown} missing from frames {first}..{last}")
    if first < 0 or last > MAX_FRAME:
        raise DataError(numbered[last if last > MAX_FRAME else first],
                        f"frame numbers must lie in 0..{MAX_FRAME} (the Kaggle int16 frame column)")
    vectors = [_load_vector(numbered[n]) for n in order]
    lengths = Counter(len(v) for v in vectors)
    common = lengths.most_common(1)[0][0]
    for n, vector in zip(order, vectors, strict=True):
        if len(vector) != common:
            raise DataError(numbered[n], f"{len(vector)} values, but the other frames of this "
                                         f"sequence have {common}")
    if common not in CANDIDATES:
        raise DataError(numbered[first], f"{common} values a frame; expected {_lengths()}")
    return np.stack(vectors), first


@dataclass
class ImportedSequence:
    """One sequence folder written into the dataset."""

    source: Path
    parquet: Path
    participant_id: int
    sequence_id: int
    sign: str
    frames: int
    hand_frames: int
    layout: str


@dataclass
class RootSummary:
    """What one root (one signer) contributed."""

    root: Path
    participant_id: int
    sequences: int = 0
    frames: int = 0
    hand_frames: int = 0
    skipped: int = 0
    layouts: Counter = field(default_factory=Counter)


@dataclass
class ImportReport:
    """Outcome of :func:`import_mpdata`: written sequences, skipped ones ``(path, reason)``,
    unknown sign folders (``path -> sequences``), notes about ignored files, per-root summaries."""

    out: Path
    written: list[ImportedSequence] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unknown_signs: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    roots: list[RootSummary] = field(default_factory=list)
    sign_map: dict[str, int] = field(default_factory=dict)


def find_roots(src: str | Path) -> tuple[list[Path], list[str]]:
    """Folders under ``src`` (itself included) laid out as ``<sign>/<sequence>/<frame>.npy``.

    Returns the roots and notes about ``.npy`` files outside that layout (ignored).
    """
    src = Path(src)
    counts: Counter = Counter()
    notes = []
    for path in src.rglob("*.npy"):
        depth = len(path.relative_to(src).parts)
        if depth < 3:
            notes.append(f"{path}: not inside <root>/<sign>/<sequence>/; ignored")
            continue
        counts[path.parents[2]] += 1
    keep = []
    for root in sorted(counts):
        rivals = [o for o in counts if o != root and (o in root.parents or root in o.parents)]
        if all((counts[root], len(root.parts)) > (counts[o], len(o.parts)) for o in rivals):
            keep.append(root)
        else:
            notes.append(f"{root}: {counts[root]} .npy files nested inside another root's "
                         "sequences; ignored")
    return keep, notes


def participant_id_for(root: str | Path) -> int:
    """Stable participant id of a root: CRC-32 of ``"<parent folder>/<root folder>"``."""
    root = Path(root).resolve()
    return zlib.crc32(f"{root.parent.name}/{root.name}".encode())


def sequence_id_for(participant_id: int, sign_folder: str, sequence_folder: str) -> int:
    """Stable sequence id: CRC-32 of ``"<participant>/<sign folder>/<sequence folder>"``."""
    return zlib.crc32(f"{participant_id}/{sign_folder}/{sequence_folder}".encode())


def _natural(path: Path) -> tuple:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_natural)


def _kaggle_order(signs: set[str]) -> dict[str, int]:
    rank = {name: i for i, name in enumerate(KAGGLE_SIGNS)}
    ordered = sorted(signs, key=lambda s: (rank.get(s, len(rank)), s))
    return {name: i for i, name in enumerate(ordered)}


def import_mpdata(
    src: str | Path,
    out: str | Path,
    participant_id: int | None = None,
    aliases: Mapping[str, str] | None = None,
    add_unknown: bool = False,
    base_sign_map: Mapping[str, int] | None = None,
    layout: str | None = None,
    on_sequence: Callable[[ImportedSequence | None, Path, str | None], None] | None = None,
) -> ImportReport:
    """Import every sequence under ``src`` (one root, or a folder of several) into ``out``.

    ``participant_id`` applies to a single root only. ``aliases`` maps sign folder names to sign
    names. Unknown sign folders are skipped and listed unless ``add_unknown`` (then they become new
    signs named by their normalised folder name). A new dataset's sign map is ``base_sign_map``
    extended with new signs, or by default just the imported signs in the Kaggle order. ``layout``
    forces one layout name instead of detecting it. ``on_sequence(item, folder, reason)`` is
    called after each sequence (``item`` None when skipped).
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(src, "not a folder (expected <root>/<sign>/<sequence>/<frame>.npy)")
    if layout is not None and layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    roots, notes = find_roots(src)
    if not roots:
        raise DataError(src, "no <sign>/<sequence>/<frame>.npy files found under this folder")
    if participant_id is not None and len(roots) > 1:
        raise ConfigError(f"--participant-id applies to a single MP_Data folder; {src} holds {len(roots)}")
    if participant_id is not None and participant_id < 0:
        raise ConfigError(f"--participant-id must be >= 0, got {participant_id}")
    current = existing_sign_map(out)
    if base_sign_map is not None and current is not None:
        raise ConfigError(f"{out} already has a sign map; a starting sign map applies to new datasets only")
    vocabularies = [list(current or {}), list(base_sign_map or {}), KAGGLE_SIGNS]
    matcher = SignMatcher(vocabularies, aliases, allow_new=add_unknown)
    unknown_targets = [] if add_unknown else matcher.unknown_alias_targets()
    if unknown_targets:
        raise ConfigError(f"sign alias targets {unknown_targets} are no known sign; "
                          "check the spelling or allow new signs")

    report = ImportReport(out, notes=notes)
    rows: list[TrainRow] = []
    used_participants: set[int] = set()
    taken = {int(r["sequence_id"]): r["path"] for r in read_rows(out)}
    used_sequences: set[int] = set()
    for root in roots:
        pid = participant_id if participant_id is not None else participant_id_for(root)
        while pid in used_participants:  # two roots with the same folder names: next free id
            pid += 1
        used_participants.add(pid)
        summary = RootSummary(root, pid)
        report.roots.append(summary)
        for sign_dir in _subfolders(root):
            sequences = _subfolders(sign_dir)
            if not sequences:
                report.notes.append(f"{sign_dir}: no sequence folders")
                continue
            sign = matcher.match(sign_dir.name)
            if sign is None:
                report.unknown_signs[str(sign_dir)] = len(sequences)
                continue
            for seq_dir in sequences:
                item, reason = _import_one(seq_dir, root, out, pid, sign, layout, taken, used_sequences)
                if item is None:
                    report.skipped.append((str(seq_dir), reason))
                    summary.skipped += 1
                else:
                    report.written.append(item)
                    rows.append(TrainRow(item.parquet.relative_to(out).as_posix(), pid, item.sequence_id, sign))
                    summary.sequences += 1
                    summary.frames += item.frames
                    summary.hand_frames += item.hand_frames
                    summary.layouts[item.layout] += 1
                if on_sequence:
                    on_sequence(item, seq_dir, reason)
    if rows:
        start = dict(base_sign_map) if base_sign_map is not None else _kaggle_order({r.sign for r in rows})
        report.sign_map = add_rows(out, rows, start)
    else:
        report.sign_map = dict(current or {})
    return report


def _import_one(seq_dir: Path, root: Path, out: Path, pid: int, sign: str, layout: str | None,
                taken: dict[int, str], used: set[int]) -> tuple[ImportedSequence | None, str | None]:
    """Read, convert and write one sequence folder; (item, None) or (None, reason)."""
    sign_folder, seq_folder = seq_dir.parent.name, seq_dir.name
    sid = sequence_id_for(pid, sign_folder, seq_folder)
    try:
        vectors, first = read_sequence(seq_dir)
        if layout is not None:
            chosen = LAYOUTS[layout]
            if vectors.shape[1] != chosen.length:
                raise DataError(seq_dir, f"{vectors.shape[1]} values a frame, layout {layout} has {chosen.length}")
        else:
            chosen = detect_layout(vectors, seq_dir)
        landmarks = to_landmarks(vectors, chosen)
        hand_frames = int((~np.isnan(landmarks[:, HANDS, 0]).all(axis=1)).sum())
        if hand_frames == 0:
            raise DataError(seq_dir, f"no hand detected in any of its {len(vectors)} frames")
    except DataError as exc:
        return None, str(exc)
    while True:  # a CRC collision: with this run, or with another file of the dataset
        relative = f"{LANDMARK_DIR}/{pid}/{sid}.parquet"
        if sid not in used and taken.get(sid, relative) == relative:
            break
        sid += 1
    used.add(sid)
    parquet = out / relative
    parquet.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(parquet) as tmp:
        write_landmarks(tmp, landmarks, first_frame=first)
    return ImportedSequence(seq_dir, parquet, pid, sid, sign, len(vectors), hand_frames, chosen.name), None
