"""Convert old pickle checkpoints (.pt, .pkl) to islr's safe .safetensors format. TRUSTED FILES ONLY.

Older islr versions saved checkpoints with pickle (``torch.save`` for torch, ``pickle`` for
TensorFlow). Loading a pickle can run any code the file's author put in it, so islr now refuses
them everywhere. This command unpickles the file ON PURPOSE to convert it: run it only on
checkpoints you made yourself or otherwise trust. Give one old file, or a run directory to convert
every ``checkpoints/*.pt`` / ``*.pkl`` in it; each new file is written beside the old one (or to
``--out`` for a single file), atomically, and read back through the safe loader. The old files are
left in place.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

from islr.checkpoint_format import (
    LEGACY_SUFFIXES,
    checkpoint_file,
    read_checkpoint,
    write_checkpoint,
)
from islr.errors import ConfigError, ModelError

#: Old ``format`` tag -> framework.
_OLD_FORMATS = {"islr-torch-1": "torch", "islr-tensorflow-1": "tensorflow"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="OLD_FILE_OR_RUN_DIR",
                        help="an old .pt/.pkl checkpoint you trust, or a run directory holding them (UNPICKLED: trusted files only)")
    parser.add_argument("--out", help="output .safetensors file (one old file only; default: beside it)")
    parser.add_argument("--force", action="store_true", help="replace an existing .safetensors checkpoint")


def old_checkpoints(source: Path) -> list[Path]:
    """The old checkpoint files named by ``source`` (a file, or a run directory's checkpoints/)."""
    if source.is_dir():
        folder = source / "checkpoints" if (source / "checkpoints").is_dir() else source
        found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in LEGACY_SUFFIXES)
        if not found:
            raise ConfigError(f"{folder}: no old checkpoints ({' or '.join(LEGACY_SUFFIXES)}) to convert")
        return found
    if not source.exists():
        raise ConfigError(f"{source}: no such file or folder")
    if source.suffix not in LEGACY_SUFFIXES:
        raise ConfigError(f"{source}: not an old checkpoint (expected {' or '.join(LEGACY_SUFFIXES)})")
    return [source]


def _unpickle(path: Path) -> Any:
    """Load an old checkpoint with pickle: the one place islr does, on the user's explicit request."""
    if path.suffix == ".pt":
        try:
            import torch
        except ImportError:
            raise ModelError(f"{path}: converting a torch checkpoint needs PyTorch installed") from None
        return torch.load(path, map_location="cpu", weights_only=False)
    with open(path, "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - the user asked to convert a file they trust


def _torch_state(state: dict[str, Any]) -> dict[str, Any]:
    from islr.backends.torch_backend import state_to_numpy

    state = dict(state)
    cuda = state.get("cuda_rng")
    # Old files kept every visible GPU's RNG state; the format keeps the current device's only.
    state["cuda_rng"] = (cuda[0] if cuda else None) if isinstance(cuda, list | tuple) else cuda
    return state_to_numpy(state)


def convert_file(old: Path, out: Path | None = None, force: bool = False) -> Path:
    """Convert one old checkpoint; returns the ``.safetensors`` file written and verified."""
    target = checkpoint_file(out) if out is not None else checkpoint_file(old)
    if target.exists() and not force:
        raise ConfigError(f"{target}: already exists (use --force to replace it)")
    try:
        blob = _unpickle(old)
    except (OSError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{old}: cannot be read as an old islr checkpoint ({type(exc).__name__}: {exc})") from None
    framework = _OLD_FORMATS.get(blob.get("format")) if isinstance(blob, dict) else None
    if framework is None or not isinstance(blob.get("state"), dict) or not isinstance(blob.get("extra"), dict):
        raise ModelError(f"{old}: not an old islr checkpoint (no islr-torch-1 / islr-tensorflow-1 format tag)")
    state = _torch_state(blob["state"]) if framework == "torch" else blob["state"]
    try:
        write_checkpoint(target, framework, state, blob["extra"])
    except TypeError as exc:
        raise ModelError(f"{old}: holds something the safe format cannot store ({exc})") from None
    read_checkpoint(target, framework)  # what was written must load through the safe reader
    return target


def run(args: argparse.Namespace) -> int:
    source = Path(args.source)
    olds = old_checkpoints(source)
    if args.out and len(olds) > 1:
        raise ConfigError(f"--out takes one file, but {source} holds {len(olds)} old checkpoints")
    print("converting with pickle (only do this for checkpoints you trust):")
    for old in olds:
        new = convert_file(old, Path(args.out) if args.out else None, args.force)
        print(f"  {old} -> {new}")
    return 0
