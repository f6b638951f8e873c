"""The islr checkpoint file: tensors in safetensors, everything else as JSON; no pickle anywhere.

A checkpoint is one ``.safetensors`` file. Its tensors are the arrays of a nested state (weights,
optimizer moments, RNG byte states); its ``__metadata__`` header holds, as JSON, the *skeleton*
of that state: every dict, list, tuple and plain value (config, sign map, epoch, metrics,
counters, hyper-parameters), with each array replaced by a reference to a tensor by name.
Reading it parses JSON and raw little-endian numbers only, so a file from a stranger can hold
wrong numbers but never runs code. Both frameworks share the format (a backend turns its own
tensors into numpy arrays before :func:`~islr.checkpoint_format.write_checkpoint` and back after :func:`~islr.checkpoint_format.read_checkpoint`);
this module imports no framework, so serving code can use it.

What is read is checked strictly: the header must name this format and version, every skeleton
node must be one of the known kinds, the tensors in the file must be exactly those the skeleton
references, with numeric dtypes only, and a SHA-256 over the tensor bytes must match (a bit flip
or a truncated file is refused, not loaded). The file is written through
``islr.fileio.atomic_path``: a kill or a full disk never leaves a half checkpoint under the
final name.

Older islr versions wrote pickles (``.pt`` by ``torch.save``, ``.pkl``); those are refused with a
message naming ``islr convert-checkpoint``, which converts a file the user trusts.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from islr.errors import ModelError

SUFFIX = ".safetensors"
#: Suffixes of the pickle checkpoints of older islr versions (refused, see convert-checkpoint).
LEGACY_SUFFIXES = (".pt", ".pkl")
FORMAT = "islr-checkpoint"
VERSION = 1
FRAMEWORKS = ("torch", "tensorflow")
#: dtypes a checkpoint may hold (no object arrays, no strings).
DTYPES = frozenset(np.dtype(t) for t in (
    "bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64",
))
#: Deepest nesting accepted in a skeleton (a guard against crafted headers).
MAX_DEPTH = 64
#: Largest header accepted (safetensors' own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000

_TENSOR, _DICT, _TUPLE = "$tensor", "$dict", "$tuple"


@dataclass
class Checkpoint:
    """What :func:`~islr.checkpoint_format.read_checkpoint` returns: the framework that wrote it and its nested content."""

    path: Path
    framework: str
    tree: dict[str, Any]

    @property
    def state(self) -> dict[str, Any]:
        return self.tree["state"]

    @property
    def extra(self) -> dict[str, Any]:
        return self.tree["extra"]


def checkpoint_file(path: str | Path) -> Path:
    """``checkpoints/best`` (or ``best.pt``) -> ``checkpoints/best.safetensors``."""
    path = Path(path)
    if path.suffix == SUFFIX:
        return path
    if path.suffix in LEGACY_SUFFIXES:
        return path.with_suffix(SUFFIX)
    return path.with_name(path.name + SUFFIX)


def convert_hint(path: str | Path) -> str:
    """How to convert a trusted old checkpoint; part of every refusal message."""
    return (f"if you trust this file, convert it with `islr convert-checkpoint {path}` "
            "(that unpickles it, which can run code)")


# -- flatten / unflatten ----------------------------------------------------------------------
def flatten(tree: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Split ``tree`` into a JSON-able skeleton and ``{name: array}``.

    Dicts (str or int keys), lists, tuples, ``None``, bools, ints, floats and strings stay in the
    skeleton; numpy arrays go to the tensors (named by their path); numpy scalars become Python
    numbers. Anything else is a ``TypeError`` naming where it is (a bug in the caller).
    """
    tensors: dict[str, np.ndarray] = {}

    def walk(node: Any, where: str) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, np.generic) and not isinstance(node, np.ndarray):
            return walk(node.item(), where)
        if isinstance(node, np.ndarray):
            array = _contiguous(node)
            if array.dtype not in DTYPES:
                raise TypeError(f"{where}: dtype {array.dtype} cannot go into a checkpoint")
            name, n = where or "/", 1
            while name in tensors:
                n += 1
                name = f"{where}#{n}"
            tensors[name] = array
            return {_TENSOR: name}
        if isinstance(node, dict):
            items = []
            for key, value in node.items():
                if isinstance(key, bool) or not isinstance(key, str | int):
                    raise TypeError(f"{where}: key {key!r} ({type(key).__name__}) cannot go into a checkpoint")
                items.append([key, walk(value, f"{where}/{key}")])
            return {_DICT: items}
        if isinstance(node, tuple):
            return {_TUPLE: [walk(v, f"{where}/{i}") for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [walk(v, f"{where}/{i}") for i, v in enumerate(node)]
        raise TypeError(f"{where or '/'}: a {type(node).__name__} cannot go into a checkpoint")

    return walk(tree, ""), tensors


def unflatten(skeleton: Any, tensors: dict[str, np.ndarray], source: str | Path = "") -> Any:
    """Rebuild what :func:`~islr.checkpoint_format.flatten` split; every tensor must be referenced exactly once.

    Any node of an unknown kind, a key that is neither str nor int, a reference to a missing
    tensor or a tensor nobody references raises :class:`~islr.errors.ModelError` naming ``source``.
    """
    used: set[str] = set()

    def bad(where: str, reason: str) -> ModelError:
        return ModelError(f"{source}: not a valid islr checkpoint ({where or '/'}: {reason})")

    def walk(node: Any, where: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise bad(where, f"nested deeper than {MAX_DEPTH}")
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            return [walk(v, f"{where}/{i}", depth + 1) for i, v in enumerate(node)]
        if not isinstance(node, dict) or len(node) != 1:
            raise bad(where, f"unexpected {type(node).__name__} in the skeleton")
        (kind, body), = node.items()
        if kind == _TENSOR:
            if not isinstance(body, str) or body not in tensors:
                raise bad(where, f"refers to a tensor {body!r} the file does not hold")
            if body in used:
                raise bad(where, f"tensor {body!r} referenced twice")
            used.add(body)
            return tensors[body]
        if kind == _TUPLE and isinstance(body, list):
            return tuple(walk(v, f"{where}/{i}", depth + 1) for i, v in enumerate(body))
        if kind == _DICT and isinstance(body, list):
            out: dict[Any, Any] = {}
            for item in body:
                if not (isinstance(item, list) and len(item) == 2):
                    raise bad(where, "a dict entry is not a [key, value] pair")
                key, value = item
                if isinstance(key, bool) or not isinstance(key, str | int):
                    raise bad(where, f"dict key {key!r} is neither a string nor an integer")
                if key in out:
                    raise bad(where, f"dict key {key!r} repeated")
                out[key] = walk(value, f"{where}/{key}", depth + 1)
            return out
        raise bad(where, f"unknown node kind {kind!r}")

    tree = walk(skeleton, "", 0)
    extra = sorted(set(tensors) - used)
    if extra:
        raise bad("", f"holds tensors no part of the checkpoint refers to: {', '.join(extra[:5])}")
    return tree


def _contiguous(array: np.ndarray) -> np.ndarray:
    """C-ordered ``array`` (``np.ascontiguousarray`` would turn a 0-d array into 1-d)."""
    return array if array.flags.c_contiguous else np.array(array, order="C")


def _digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        array = _contiguous(tensors[name])
        h.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        h.update(array.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


# -- write ------------------------------------------------------------------------------------
#: numpy dtype -> safetensors dtype name.
_ST_DTYPES = {np.dtype(k): v for k, v in (
    ("bool", "BOOL"), ("uint8", "U8"), ("int8", "I8"), ("uint16", "U16"), ("int16", "I16"), ("uint32", "U32"),
    ("int32", "I32"), ("uint64", "U64"), ("int64", "I64"), ("float16", "F16"), ("float32", "F32"), ("float64", "F64"),
)}


def _prepare(framework: str, state: dict[str, Any], extra: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and ``__metadata__`` of a checkpoint holding ``state`` (framework's) and ``extra`` (trainer's)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, not {framework!r}")
    skeleton, tensors = flatten({"state": state, "extra": extra})
    tensors = {k: v if v.dtype.byteorder != ">" else v.astype(v.dtype.newbyteorder("<")) for k, v in tensors.items()}
    metadata = {
        "format": FORMAT, "version": str(VERSION), "framework": framework,
        "tree": json.dumps(skeleton, allow_nan=True), "sha256": _digest(tensors),
    }
    return tensors, metadata


def _write_safetensors(handle: BinaryIO, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """The safetensors layout: u64 header length, JSON header (space-padded to 8 bytes), raw data.

    Written with plain Python file I/O so that a full disk raises ``OSError`` (the library's own
    writer reports it as a generic error); the library's reader checks every file that is read.
    """
    header: dict[str, Any] = {}
    offset = 0
    names = sorted(tensors)
    for name in names:
        array = tensors[name]
        header[name] = {"dtype": _ST_DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    handle.write(struct.pack("<Q", len(raw)))
    handle.write(raw)
    for name in names:
        if tensors[name].nbytes:
            handle.write(_contiguous(tensors[name]).reshape(-1).view(np.uint8).data)


def encode(framework: str, state: dict[str, Any], extra: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint holding ``state`` (framework-owned) and ``extra`` (trainer-owned)."""
    buffer = io.BytesIO()
    _write_safetensors(buffer, *_prepare(framework, state, extra))
    return buffer.getvalue()


def _write_file(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write the checkpoint file (a seam: tests make it fail like a full disk)."""
    with open(path, "wb") as handle:
        _write_safetensors(handle, tensors, metadata)


def write_checkpoint(path: str | Path, framework: str, state: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write ``<path>.safetensors`` atomically; returns the file written.

    A failure (disk full, read-only folder) raises :class:`~islr.errors.WriteError`; the previous
    file under that name is unchanged and no temporary file is left behind.
    """
    from islr.fileio import atomic_path

    target = checkpoint_file(path)
    tensors, metadata = _prepare(framework, state, extra)  # before touching the disk: a bad state writes nothing
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        _write_file(tmp, tensors, metadata)
    return target


# -- read -------------------------------------------------------------------------------------
def _looks_like_pickle(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save writes pickles in those)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle"
    return None


def _header(source: Path) -> dict[str, Any]:
    """The safetensors JSON header, checked for size and shape before any tensor is read."""
    try:
        size_on_disk = source.stat().st_size
        with open(source, "rb") as handle:
            head = handle.read(8)
            (size,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
            raw = handle.read(size) if 0 <= size <= min(MAX_HEADER_BYTES, size_on_disk - 8) else b""
    except OSError as exc:
        raise ModelError(f"{source}: cannot read checkpoint ({exc.strerror or exc})") from None

    def bad(reason: str) -> ModelError:
        kind = _looks_like_pickle(head)
        if kind:
            reason = f"it is {kind}, which islr never loads; {convert_hint(source)}"
        return ModelError(f"{source}: not a valid islr checkpoint ({reason})")

    if size < 0:
        raise bad(f"{size_on_disk} bytes, too short")
    if not raw:
        raise bad("header length beyond the end of the file: truncated or not a safetensors file")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad("header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    return header


def _tensors(source: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (the library checks offsets against the file size)."""
    from safetensors import safe_open

    with safe_open(str(source), framework="numpy") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict


def read_checkpoint(path: str | Path, framework: str | None = None) -> Checkpoint:
    """Read and validate a checkpoint (``path`` with or without ``.safetensors``).

    ``framework``, when given, must be the one that wrote it. A missing file next to an old
    ``.pt``/``.pkl`` one, a pickle, a truncated or corrupted file and a safetensors file that is
    no islr checkpoint all raise :class:`~islr.errors.ModelError` naming the file.
    """
    from safetensors import SafetensorError

    source = checkpoint_file(path)
    given = Path(path)
    if given.suffix in LEGACY_SUFFIXES and given.exists():
        raise ModelError(f"{given}: an old pickle checkpoint; islr no longer loads pickles; {convert_hint(given)}")
    if not source.exists():
        for legacy in (source.with_suffix(s) for s in LEGACY_SUFFIXES):
            if legacy.exists():
                raise ModelError(
                    f"{legacy}: an old pickle checkpoint; islr now reads only {source.name} and never "
                    f"unpickles; {convert_hint(legacy)}"
                )
        raise ModelError(f"{source}: checkpoint not found")
    meta = _header(source).get("__metadata__")

    def bad(reason: str) -> ModelError:
        return ModelError(f"{source}: not a valid islr checkpoint ({reason})")

    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise bad("a safetensors file without islr's header: weights of some other program?")
    if meta.get("version") != str(VERSION):
        raise bad(f"format version {meta.get('version')!r}; this islr reads version {VERSION}")
    if meta.get("framework") not in FRAMEWORKS:
        raise bad(f"unknown framework {meta.get('framework')!r}")
    if framework is not None and meta["framework"] != framework:
        raise ModelError(f"{source}: a {meta['framework']} checkpoint; this run uses {framework}")
    try:
        tensors = _tensors(source)
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise bad(f"damaged tensor data: {exc}") from None
    for name, array in tensors.items():
        if array.dtype not in DTYPES:
            raise bad(f"tensor {name!r} has dtype {array.dtype}")
    if _digest(tensors) != meta.get("sha256"):
        raise bad("tensor data does not match its checksum: the file was damaged after it was written")
    try:
        skeleton = json.loads(meta.get("tree", ""))
    except (json.JSONDecodeError, RecursionError, TypeError):
        raise bad("its structure is not JSON") from None
    tree = unflatten(skeleton, tensors, source)
    if not (isinstance(tree, dict) and set(tree) == {"state", "extra"}
            and isinstance(tree["state"], dict) and isinstance(tree["extra"], dict)):
        raise bad("expected a mapping with 'state' and 'extra'")
    return Checkpoint(source, meta["framework"], tree)


# -- strict checks of what was read -----------------------------------------------------------
def expect(value: Any, kind: type | tuple[type, ...], where: str, source: str | Path) -> Any:
    """``value`` if it is a ``kind`` (bool is no int here), else a ModelError naming ``source``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise ModelError(f"{source}: not a valid islr checkpoint ({where}: expected {names}, got {type(value).__name__})")
    return value


def expect_keys(mapping: dict[str, Any], required: set[str], optional: set[str], where: str, source: str | Path) -> None:
    """Refuse a mapping that misses a required key or holds one nobody expects."""
    missing, unknown = required - set(mapping), set(mapping) - required - optional
    if missing or unknown:
        parts = ([f"missing {sorted(missing)}"] if missing else []) + ([f"unexpected {sorted(map(str, unknown))}"] if unknown else [])
        raise ModelError(f"{source}: not a valid islr checkpoint ({where}: {'; '.join(parts)})")


def check_extra(extra: dict[str, Any], source: str | Path) -> None:
    """Check the trainer's part when present: config mapping, sign map str -> int, int epoch."""
    if "config" in extra:
        expect(extra["config"], dict, "extra/config", source)
    if "sign_map" in extra:
        signs = expect(extra["sign_map"], dict, "extra/sign_map", source)
        for key, value in signs.items():
            expect(key, str, "extra/sign_map key", source)
            expect(value, int, f"extra/sign_map/{key}", source)
    if "epoch" in extra:
        expect(extra["epoch"], int, "extra/epoch", source)


def map_arrays(tree: Any, fn: Any) -> Any:
    """``tree`` with every array replaced by ``fn(array)`` (dicts, lists and tuples rebuilt)."""
    if isinstance(tree, np.ndarray):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: map_arrays(v, fn) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(map_arrays(v, fn) for v in tree)
    if isinstance(tree, list):
        return [map_arrays(v, fn) for v in tree]
    return tree


__all__ = [
    "FORMAT", "LEGACY_SUFFIXES", "SUFFIX", "VERSION", "Checkpoint", "check_extra", "checkpoint_file", "convert_hint",
    "encode", "expect", "expect_keys", "flatten", "map_arrays", "read_checkpoint", "unflatten", "write_checkpoint",
]
