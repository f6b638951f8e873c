"""A parallel, resumable, config-keyed store of prepared sequences.

``build_cache(samples, cfg, cache_dir)`` runs :func:`islr.data.preprocess.prepare` on every file
(a process pool over all cores by default, with a progress bar) and keeps the result as one
compact store in ``cache_dir/<landmarks>-<key>/``:

- ``data.npy``: every prepared sequence concatenated along time, float32 ``(frames, P, C)``,
  memory-mapped when read;
- ``index.csv``: one row per stored sequence: ``offset, length, participant_id, sequence_id,
  sign, path``;
- ``errors.csv``: files that could not be read (``path, reason``), skipped, never fatal;
- ``meta.json``: written last; its presence marks a complete store. It also counts the
  non-finite raw values (inf, -inf) that were treated as missing, and in how many files.

The key hashes the settings that ``prepare`` depends on, the store format and every input file
(path, size, modification time, metadata), so changing any of them builds a new store and an
unchanged second run only opens the existing one. Work is written as chunk shards, so a build
that is killed resumes where it stopped. Every file is written atomically (``islr.fileio``): a
full disk raises :class:`~islr.errors.WriteError` naming the file, leaves no half-written file
under a final name and keeps the finished shards, so the build resumes once there is room. Raw
data is only read, never written.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from islr.config import PreprocessConfig, to_dict
from islr.data.kaggle import Sample, read_landmarks
from islr.data.preprocess import check_config, featurize, points_and_coords, prepare, prepared_rows
from islr.errors import DataError, WriteError
from islr.fileio import atomic_path, atomic_write_text

FORMAT_VERSION = 2  # 2: inf in the raw files is stored as NaN (1 could hold inf)
CHUNK_SIZE = 32
# A worker pool costs ~0.25 s of CPU and 0.3-2 s of wall time to start; preparing a file costs
# ~1.7 ms of CPU (genuine and replica files alike, benchmarks/SCALE.md): below ~1000 files the
# pool cannot pay for itself (522 genuine files: 0.99x with 2 workers), so one process does them.
MIN_PARALLEL_FILES = 1024
INDEX_COLUMNS = ("offset", "length", "participant_id", "sequence_id", "sign", "path")


def prepare_settings(cfg: PreprocessConfig) -> dict[str, Any]:
    """The settings :func:`prepare` reads (normalisation, resizing and motion are not cached)."""
    return {
        "rows": prepared_rows(cfg).tolist(),
        "coords": list(cfg.coords),
        "max_gap": cfg.max_gap,
        "drop_empty_frames": cfg.drop_empty_frames,
        "max_len": cfg.max_len if cfg.length_mode == "variable" else None,
    }


def cache_key(samples: Sequence[Sample], cfg: PreprocessConfig) -> str:
    """Hash of the prepare settings, the store format and each input file's identity."""
    digest = hashlib.sha256()
    header = {"format": FORMAT_VERSION, "chunk": CHUNK_SIZE, "prepare": prepare_settings(cfg)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for s in samples:
        try:
            st = os.stat(s.path)
            ident = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            ident = "missing"
        digest.update(f"{s.path}|{ident}|{s.participant_id}|{s.sequence_id}|{s.sign}\n".encode())
    return digest.hexdigest()[:20]


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class CacheStore:
    """An opened store: ``len(store)``, ``store[i]`` -> prepared ``(L, P, C)`` (a read-only view)."""

    path: Path
    key: str
    offsets: np.ndarray
    lengths: np.ndarray
    participant_ids: np.ndarray
    sequence_ids: np.ndarray
    signs: list[str]
    paths: list[str]
    errors: list[tuple[str, str]] = field(default_factory=list)
    nonfinite_values: int = 0
    """Raw inf/-inf values of the stored files, treated as missing (NaN)."""
    nonfinite_files: int = 0
    """Stored files holding at least one such value."""
    hit: bool = False
    """True when the store already existed (nothing was built)."""
    build_seconds: float = 0.0
    _data: np.ndarray | None = field(default=None, repr=False)

    @property
    def data(self) -> np.ndarray:
        """All frames, ``(frames, P, C)`` float32, memory-mapped (opened on first use)."""
        if self._data is None:
            file = self.path / "data.npy"
            # An empty array cannot be memory-mapped; it is tiny anyway.
            self._data = np.load(file, mmap_mode="r") if self.lengths.sum() else np.load(file)
        return self._data

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.offsets[i])
        return self.data[start : start + int(self.lengths[i])]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def __getstate__(self) -> dict[str, Any]:  # pickle without the memory map (reopened lazily)
        state = dict(self.__dict__)
        state["_data"] = None
        return state

    @property
    def frames(self) -> int:
        """Total stored frames."""
        return int(self.lengths.sum())

    def restrict(self, samples: Sequence[Sample]) -> CacheStore:
        """A view holding only the stored rows of ``samples`` (in store order; the data is shared).

        The store is built once over every row of train.csv; exclusions and sign restrictions
        pick rows from it (so they never trigger a rebuild). ``errors`` keeps only those files.
        """
        wanted = {str(s.path) for s in samples}
        rows = np.array([i for i, p in enumerate(self.paths) if p in wanted], dtype=np.int64)
        return dataclasses.replace(
            self, offsets=self.offsets[rows], lengths=self.lengths[rows],
            participant_ids=self.participant_ids[rows], sequence_ids=self.sequence_ids[rows],
            signs=[self.signs[i] for i in rows], paths=[self.paths[i] for i in rows],
            errors=[e for e in self.errors if e[0] in wanted],
        )

    def export_npy(self, out_dir: str | Path, cfg: PreprocessConfig) -> int:
        """Write each sequence's unpadded features as ``out_dir/<participant>/<sequence>.npy``."""
        out_dir = Path(out_dir)
        for i in range(len(self)):
            target = out_dir / str(int(self.participant_ids[i])) / f"{int(self.sequence_ids[i])}.npy"
            _make_dir(target.parent)
            with atomic_path(target, fsync=False) as tmp, open(tmp, "wb") as f:
                np.save(f, featurize(self[i], cfg))
        return len(self)


def store_dir(cache_dir: str | Path, cfg: PreprocessConfig, key: str) -> Path:
    """Folder of the store for ``key`` inside ``cache_dir``."""
    return Path(cache_dir) / f"{cfg.landmarks}-{key}"


def open_store(path: str | Path) -> CacheStore:
    """Open a complete store folder (raises :class:`DataError` if it is incomplete)."""
    path = Path(path)
    meta_file = path / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a complete cache store ({type(exc).__name__})") from None
    columns: dict[str, list[str]] = {c: [] for c in INDEX_COLUMNS}
    with open(path / "index.csv", newline="") as f:
        for row in csv.DictReader(f):
            for c in INDEX_COLUMNS:
                columns[c].append(row[c])
    errors: list[tuple[str, str]] = []
    if (path / "errors.csv").exists():
        with open(path / "errors.csv", newline="") as f:
            errors = [(r["path"], r["reason"]) for r in csv.DictReader(f)]
    return CacheStore(
        path=path,
        key=meta["key"],
        offsets=np.array(columns["offset"], dtype=np.int64),
        lengths=np.array(columns["length"], dtype=np.int64),
        participant_ids=np.array(columns["participant_id"], dtype=np.int64),
        sequence_ids=np.array(columns["sequence_id"], dtype=np.int64),
        signs=columns["sign"],
        paths=columns["path"],
        errors=errors,
        nonfinite_values=int(meta.get("nonfinite_values", 0)),
        nonfinite_files=int(meta.get("nonfinite_files", 0)),
    )


def _prepare_chunk(task: tuple[int, list[str], PreprocessConfig, str]) -> tuple[int, int]:
    """Worker: prepare one chunk of files and write its shard atomically. Returns (chunk, files)."""
    chunk, paths, cfg, shard = task
    arrays: list[np.ndarray] = []
    lengths = np.zeros(len(paths), dtype=np.int64)
    ok = np.zeros(len(paths), dtype=bool)
    nonfinite = np.zeros(len(paths), dtype=np.int64)
    reasons = [""] * len(paths)
    for j, path in enumerate(paths):
        try:
            raw = read_landmarks(path)
            nonfinite[j] = np.count_nonzero(np.isinf(raw))  # prepare() makes them NaN
            seq = prepare(raw, cfg)
        except DataError as exc:
            reasons[j] = exc.reason
            continue
        except Exception as exc:  # one bad file must never stop a long build
            reasons[j] = f"{type(exc).__name__}: {exc}"
            continue
        arrays.append(seq)
        lengths[j] = len(seq)
        ok[j] = True
    p, c = points_and_coords(cfg)
    data = np.concatenate(arrays) if arrays else np.zeros((0, p, c), np.float32)
    # Built in memory (a few MB), then written in one go: a full disk fails one plain write.
    buffer = io.BytesIO()
    np.savez(buffer, data=data, lengths=lengths, ok=ok, reasons=np.array(reasons, dtype=str), nonfinite=nonfinite)
    # Shards are scratch (redone if lost), so no fsync; a write error still never leaves a partial one.
    with atomic_path(shard, fsync=False) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
    return chunk, len(paths)


def _mp_context() -> Any:
    import multiprocessing as mp

    # fork is unsafe once pyarrow's thread pools exist in the parent; forkserver/spawn are not.
    # The fork server imports this module once, so each worker starts without re-importing.
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return mp.get_context("spawn")


def use_pool(workers: int, chunks: int, files: int) -> bool:
    """Whether a build of ``files`` files in ``chunks`` chunks starts worker processes."""
    return workers > 1 and chunks > 1 and files >= MIN_PARALLEL_FILES


def _run_chunks(tasks: list[tuple[int, list[str], PreprocessConfig, str]], total: int, done: int,
                workers: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    from islr.progress import bars_enabled

    bar = tqdm(total=total, initial=done, unit="file", desc="preprocess",
               disable=not bars_enabled(progress), dynamic_ncols=True)
    try:
        files = sum(len(task[1]) for task in tasks)
        if use_pool(workers, len(tasks), files):
            try:
                _run_pool(tasks, workers, bar)
            except BrokenProcessPool as exc:  # e.g. a main module workers cannot re-import
                print(f"warning: worker processes failed ({exc}); continuing in this process", file=sys.stderr)
        for task in tasks:  # everything (serial) or whatever the pool did not finish
            if not Path(task[3]).exists():
                bar.update(_prepare_chunk(task)[1])
    finally:
        bar.close()


def _run_pool(tasks: list[tuple[int, list[str], PreprocessConfig, str]], workers: int, bar: Any) -> None:
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=_mp_context()) as pool:
        futures = [pool.submit(_prepare_chunk, task) for task in tasks]
        try:
            for future in as_completed(futures):
                bar.update(future.result()[1])
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _assemble(root: Path, samples: Sequence[Sample], n_chunks: int, cfg: PreprocessConfig, key: str) -> None:
    """Concatenate the shards into data.npy + index.csv + errors.csv, then write meta.json."""
    shards = root / "shards"
    infos = []
    total = 0
    for c in range(n_chunks):
        with np.load(shards / f"{c:06d}.npz") as z:
            lengths, ok, reasons, nonfinite = z["lengths"], z["ok"], z["reasons"], z["nonfinite"]
        infos.append((lengths, ok, reasons, nonfinite))
        total += int(lengths.sum())
    p, ch = points_and_coords(cfg)
    index_rows, error_rows = [], []
    nonfinite_values = nonfinite_files = 0
    offset = 0
    # Streamed with plain writes, not through a memory map: a full disk then raises ENOSPC
    # (a WriteError) instead of killing the process with SIGBUS.
    with atomic_path(root / "data.npy") as tmp, open(tmp, "wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (total, p, ch)}
        np.lib.format.write_array_header_1_0(out, header)
        for c, (lengths, ok, reasons, nonfinite) in enumerate(infos):
            with np.load(shards / f"{c:06d}.npz") as z:
                data = z["data"]
            out.write(np.ascontiguousarray(data, dtype=np.float32).tobytes())
            local = 0
            for j in range(len(lengths)):
                s = samples[c * CHUNK_SIZE + j]
                if not ok[j]:
                    error_rows.append((str(s.path), str(reasons[j])))
                    continue
                n = int(lengths[j])
                index_rows.append((offset + local, n, s.participant_id, s.sequence_id, s.sign, str(s.path)))
                local += n
                nonfinite_values += int(nonfinite[j])
                nonfinite_files += bool(nonfinite[j])
            offset += len(data)
    _write_csv(root / "index.csv", INDEX_COLUMNS, index_rows)
    _write_csv(root / "errors.csv", ("path", "reason"), error_rows)
    meta = {
        "key": key,
        "format": FORMAT_VERSION,
        "sequences": len(index_rows),
        "frames": total,
        "points": p,
        "coords": list(cfg.coords),
        "rows": prepared_rows(cfg).tolist(),
        "skipped": len(error_rows),
        "nonfinite_values": nonfinite_values,
        "nonfinite_files": nonfinite_files,
        "preprocess": to_dict(cfg),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(root / "meta.json", json.dumps(meta, indent=1))
    shutil.rmtree(shards, ignore_errors=True)


def _write_csv(path: Path, header: Sequence[str], rows: list[tuple]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _make_dir(path: Path) -> None:
    """``mkdir -p`` that reports a full or read-only disk as a :class:`WriteError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(path, exc.strerror or str(exc)) from exc


def build_cache(
    samples: Sequence[Sample],
    cfg: PreprocessConfig,
    cache_dir: str | Path,
    workers: int = 0,
    progress: bool = True,
) -> CacheStore:
    """Prepare ``samples`` into a store under ``cache_dir`` (or open the existing one).

    ``workers=0`` uses every core; 1 works in this process. Files that fail are listed in
    ``store.errors`` as ``(path, reason)`` and left out of the store. A second call with the same
    settings and unchanged files returns the existing store (``store.hit`` is True); a call after
    an interrupted build redoes only the missing chunks.
    """
    check_config(cfg)
    started = time.perf_counter()
    samples = list(samples)
    key = cache_key(samples, cfg)
    root = store_dir(cache_dir, cfg, key)
    store = _open_existing(root)
    if store is not None:
        return store
    # One builder per store: other processes (e.g. distributed ranks) wait, then reuse it.
    with _build_lock(root):
        store = _open_existing(root)
        if store is not None:
            return store
        _build(samples, cfg, root, key, workers, progress)
    store = open_store(root)
    store.build_seconds = time.perf_counter() - started
    return store


def _open_existing(root: Path) -> CacheStore | None:
    if not (root / "meta.json").exists():
        return None
    try:
        store = open_store(root)
    except (DataError, OSError, KeyError, ValueError):
        return None  # damaged: rebuilt by the caller
    store.hit = True
    return store


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on ``root/.lock`` (advisory; a no-op where fcntl is missing)."""
    _make_dir(root)
    try:
        import fcntl
    except ImportError:  # Windows: builds are still atomic per file, just not serialised
        yield
        return
    try:
        handle = open(root / ".lock", "w")  # noqa: SIM115  (closed by the with below)
    except OSError as exc:
        raise WriteError(root / ".lock", exc.strerror or str(exc)) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(samples: list[Sample], cfg: PreprocessConfig, root: Path, key: str, workers: int, progress: bool) -> None:
    shards = root / "shards"
    _make_dir(shards)
    n_chunks = (len(samples) + CHUNK_SIZE - 1) // CHUNK_SIZE
    tasks, done = [], 0
    for c in range(n_chunks):
        chunk = samples[c * CHUNK_SIZE : (c + 1) * CHUNK_SIZE]
        shard = shards / f"{c:06d}.npz"
        if shard.exists():
            done += len(chunk)
            continue
        tasks.append((c, [str(s.path) for s in chunk], cfg, str(shard)))
    for stale in shards.glob("*.tmp"):
        stale.unlink(missing_ok=True)
    _run_chunks(tasks, len(samples), done, workers or default_workers(), progress)
    _assemble(root, samples, n_chunks, cfg, key)
