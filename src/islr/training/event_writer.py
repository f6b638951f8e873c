"""TensorBoard event files through tensorboardX, without loading a deep-learning framework.

tensorboardX writes the event format TensorBoard reads (and is tested against it upstream), but
its package ``__init__`` tries ``import torch`` to accept torch tensors. The trainer's callbacks
must not load a framework the run does not use (a TensorFlow run would otherwise carry PyTorch
along: about 1.3 s and hundreds of MB), so :func:`import_tensorboardx` hides torch while
tensorboardX is first imported, unless torch is loaded already. We only hand it Python floats
and PNG bytes, never tensors.
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

_IMPORT_LOCK = threading.Lock()


def import_tensorboardx() -> ModuleType:
    """``import tensorboardX`` without importing torch as a side effect."""
    with _IMPORT_LOCK:
        if "tensorboardX" in sys.modules or "torch" in sys.modules:
            import tensorboardX

            return tensorboardX
        sys.modules["torch"] = None  # type: ignore[assignment]  # makes its `import torch` fail fast
        try:
            import tensorboardX
        finally:
            del sys.modules["torch"]
        return tensorboardX


class EventFileWriter:
    """Scalars and PNG images into ``events.out.tfevents.*`` files in ``log_dir``.

    Every ``add_*`` call is flushed, so TensorBoard shows each epoch as soon as it ends.
    """

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._writer: Any = import_tensorboardx().SummaryWriter(str(self.log_dir), flush_secs=10)

    def add_scalars(self, step: int, values: dict[str, float]) -> None:
        """One scalar per tag at ``step`` (stored as float32, as TensorBoard does)."""
        for tag, value in values.items():
            self._writer.add_scalar(tag, float(value), global_step=int(step))
        self._writer.flush()

    def add_png(self, step: int, tag: str, png: bytes) -> None:
        """An image given as PNG bytes (decoded to RGB; tensorboardX encodes it again)."""
        import numpy as np
        from PIL import Image

        with Image.open(io.BytesIO(png)) as image:
            rgb = np.asarray(image.convert("RGB"))
        self._writer.add_image(tag, rgb, global_step=int(step), dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
