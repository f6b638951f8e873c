"""PyTorch model -> one ``.onnx`` file with inputs ``x`` (B, T, F) float32, ``mask`` (B, T) bool
and output ``logits`` (B, classes), checked with ONNX Runtime against the eager model.

Routes, tried in this order until the file reproduces the eager logits on random inputs of
several batch sizes and frame counts:

1. ``dynamo``: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript), batch and frames dynamic;
2. ``legacy``: the TorchScript exporter (``dynamo=False``) with dynamic axes;
3. ``dynamo-fixed`` / ``legacy-fixed``: batch dynamic, frames fixed at ``fixed_frames`` (the
   run's ``fixed_len``, or ``max_len`` in variable mode): shorter inputs are padded with
   ``mask`` False by the predictor, which the models ignore (padding invariance).

Measured with torch 2.13: most models pass route 1; ``lstm`` fails it (torch.export pins the frame
count of ``nn.LSTM``) and passes route 2; ``hybrid_ensemble`` only exports at a fixed frame count.

The file is written atomically (``islr.fileio``): a full disk stops the export with a
:class:`~islr.errors.WriteError` (not "try the next route") and leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from islr.errors import ModelError
from islr.fileio import atomic_path

OPSET = 18
INPUT_NAMES = ["x", "mask"]
OUTPUT_NAMES = ["logits"]
#: Largest difference to the eager logits accepted while choosing a route (random inputs).
VERIFY_ATOL = 1e-4
#: OSError numbers that mean "this disk cannot take the file", whatever the route.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _write_failure(exc: BaseException) -> OSError | None:
    """The disk-full (or read-only) OSError behind an exporter failure, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _WRITE_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


@dataclass
class OnnxExport:
    """How a model was exported."""

    path: Path
    route: str
    fixed_frames: int | None
    """The frame count baked into the graph, or None when frames are dynamic."""
    tried: list[str]
    """``route: reason`` for each route that did not work."""


def _example(batch: int, frames: int, input_dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, input_dim, generator=gen)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    if batch > 1 and frames > 2:
        mask[-1, frames // 2 :] = False  # one padded row: the mask must reach the graph
        x[-1, frames // 2 :] = 0.0
    return x, mask


def _export(model: nn.Module, path: Path, route: str, input_dim: int, frames: int) -> None:
    example = _example(2, frames, input_dim, seed=0)
    dynamic_frames = not route.endswith("fixed")
    sink = io.StringIO()
    # The exporters print progress and warn about their own internals: keep the CLI quiet.
    logger = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed" for every export
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        try:
            _run_exporter(model, example, path, route, dynamic_frames)
        finally:
            logger.setLevel(level)


def _run_exporter(model: nn.Module, example: tuple[torch.Tensor, torch.Tensor], path: Path, route: str,
                  dynamic_frames: bool) -> None:
    if route.startswith("dynamo"):
        batch = torch.export.Dim("batch")
        axes = {0: batch, 1: torch.export.Dim("frames")} if dynamic_frames else {0: batch}
        torch.onnx.export(model, example, str(path), dynamo=True, external_data=False, opset_version=OPSET,
                          input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, dynamic_shapes=(axes, axes))
    else:
        axes = {0: "batch", 1: "frames"} if dynamic_frames else {0: "batch"}
        torch.onnx.export(model, example, str(path), dynamo=False, opset_version=OPSET,
                          input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes={"x": axes, "mask": axes, "logits": {0: "batch"}})


def _session(path: Path):  # noqa: ANN202 - onnxruntime is imported lazily
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # a failing route is expected while probing: no error spam
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify_onnx(path: Path, model: nn.Module, input_dim: int, shapes: list[tuple[int, int]],
                atol: float = VERIFY_ATOL) -> float:
    """Largest logit difference between the file and the eager model over ``(batch, frames)`` shapes.

    Raises :class:`ModelError` when the file cannot run a shape or differs by more than ``atol``.
    """
    session = _session(path)
    worst = 0.0
    for i, (batch, frames) in enumerate(shapes):
        x, mask = _example(batch, frames, input_dim, seed=1 + i)
        with torch.no_grad():
            expected = model(x, mask).float().numpy()
        try:
            got = session.run(OUTPUT_NAMES, {"x": x.numpy(), "mask": mask.numpy()})[0]
        except Exception as exc:  # onnxruntime's own error types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"ONNX Runtime failed at batch {batch}, {frames} frames ({first[:200]})") from None
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not diff <= atol:  # NaN fails too
            raise ModelError(f"logits differ by {diff:.2e} at batch {batch}, {frames} frames")
        worst = max(worst, diff)
    return worst


def export_onnx(model: nn.Module, input_dim: int, out: str | Path, fixed_frames: int) -> OnnxExport:
    """Export ``model`` (eval mode, CPU) to ``out``, trying the routes of this module in order.

    ``fixed_frames`` is the frame count used by the fixed-frame fallback routes. Raises
    :class:`ModelError` listing every route's failure when none works.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    example_frames = min(16, fixed_frames) if fixed_frames > 2 else fixed_frames
    tried: list[str] = []
    routes = [("dynamo", example_frames), ("legacy", example_frames), ("dynamo-fixed", fixed_frames),
              ("legacy-fixed", fixed_frames)]
    with atomic_path(out) as tmp:
        for route, frames in routes:
            fixed = route.endswith("fixed")
            shapes = [(3, fixed_frames), (1, fixed_frames)] if fixed else [(3, 5), (1, example_frames), (2, example_frames * 2 + 3)]
            try:
                _export(model, tmp, route, input_dim, frames)
                verify_onnx(tmp, model, input_dim, shapes)
            except Exception as exc:  # every exporter failure means "try the next route"...
                full = _write_failure(exc)
                if full is not None:  # ...except a full disk: atomic_path makes it a WriteError
                    raise full from exc
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                tried.append(f"{route}: {first[:240]}")
                tmp.unlink(missing_ok=True)
                continue
            return OnnxExport(out, route, fixed_frames if fixed else None, tried)  # replaces `out`
        raise ModelError(f"{type(model).__name__} could not be exported to ONNX; tried " + "; ".join(tried))


__all__ = ["OPSET", "OnnxExport", "export_onnx", "verify_onnx"]
