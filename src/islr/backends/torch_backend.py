"""PyTorch backend: a plain training loop, optional DistributedDataParallel under torchrun."""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from islr.backends.base import Batch, account_batches
from islr.checkpoint_format import (
    SUFFIX,
    check_extra,
    expect,
    expect_keys,
    map_arrays,
    read_checkpoint,
    write_checkpoint,
)
from islr.config import ExperimentConfig
from islr.errors import ConfigError, ModelError
from islr.models.registry import create_model
from islr.training.prefetch import prefetch
from islr.training.schedules import learning_rate

#: Batches between two reads of the loss on an accelerator (each read waits for the device).
CHECK_EVERY_ACCELERATOR = 32


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200, 139 GiB)``, ``mps`` or ``cpu (no CUDA or MPS device found)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if device.type == "cpu":
        found = torch.cuda.is_available() or (
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())
        return "cpu" if found else "cpu (no CUDA or MPS device found)"
    return str(device)


def tune_cuda(fixed_shapes: bool) -> None:
    """Fast CUDA math: TF32 matmuls and convolutions (about float16 precision in the mantissa,
    float32 range) and, when every batch has the same shape, cuDNN autotuning (with variable
    lengths each new shape would be autotuned again)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = fixed_shapes


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else is taken literally."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"train.device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA device is available")
    return device


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al. 2019) around any optimizer: every ``k`` steps the slow weights move
    ``alpha`` of the way to the fast ones and the fast weights restart from there."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5):
        self.inner, self.k, self.alpha = inner, k, alpha
        self.steps = 0
        self.slow = [[p.detach().clone() for p in g["params"]] for g in self.param_groups]

    # Views of the inner optimizer's attributes, never copies: ``inner.load_state_dict`` rebinds
    # them to new objects, and a stale alias would let the LR schedule set dead param groups.
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.inner.param_groups

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.inner.state

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.inner.defaults

    def step(self, closure: Callable | None = None) -> Any:  # type: ignore[override]
        loss = self.inner.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            with torch.no_grad():
                for group, slow in zip(self.param_groups, self.slow, strict=True):
                    for p, s in zip(group["params"], slow, strict=True):
                        s.add_(p - s, alpha=self.alpha)
                        p.copy_(s)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:  # type: ignore[override]
        self.inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"inner": self.inner.state_dict(), "steps": self.steps, "slow": self.slow}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # type: ignore[override]
        self.inner.load_state_dict(state["inner"])
        self.steps = state["steps"]
        with torch.no_grad():
            for mine, theirs in zip(itertools.chain(*self.slow), itertools.chain(*state["slow"]), strict=True):
                mine.copy_(theirs)


def build_optimizer(model: nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """Adam, AdamW, SGD (momentum 0.9) or RAdam + Lookahead; no weight decay on biases and norms."""
    t = cfg.train
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=0.9, nesterov=True)
    if t.optimizer == "radam_lookahead":
        return Lookahead(torch.optim.RAdam(groups, lr=t.lr, decoupled_weight_decay=True))
    raise ConfigError(f"unknown optimizer {t.optimizer!r}; use adam, adamw, sgd or radam_lookahead")


class TorchBackend:
    """The PyTorch implementation of :class:`islr.backends.base.Backend`."""

    name = "torch"
    suffix = SUFFIX

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.cfg: ExperimentConfig | None = None
        #: Batches between two host reads of loss and accuracy (1 on the CPU, where a read is free).
        self.check_every = 1
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self._lr = 0.0
        self._share = 1.0  # this process's share of the global batch, times the world size

    # -- set-up ------------------------------------------------------------------------------
    def setup(self, cfg: ExperimentConfig, input_dim: int, num_classes: int, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.num_classes = int(num_classes)
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)  # noqa: NPY002  (user code may draw from the global RNG)
        self.device = select_device(cfg.train.device)
        if self.world_size > 1:
            self._init_distributed()
        self.model = create_model(cfg.model.name, "torch", input_dim, num_classes, cfg.model.params).to(self.device)
        self.net: nn.Module = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.train.compile:
            # self.model stays the plain module: checkpoints, evaluation and export use it.
            self.net = torch.compile(self.net, dynamic=cfg.preprocess.length_mode != "fixed")
        self.optimizer = build_optimizer(self.model, cfg)
        self.set_class_weights(None)
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.amp = cfg.train.mixed_precision and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self._lr = learning_rate(cfg.train, 0.0)
        self.check_every = 1 if self.device.type == "cpu" else CHECK_EVERY_ACCELERATOR
        if self.device.type == "cuda":
            tune_cuda(fixed_shapes=cfg.preprocess.length_mode == "fixed")
        # Which device was chosen, for the trainer to print: auto never falls back to the CPU silently.
        precision = f", mixed precision {str(self.amp_dtype).removeprefix('torch.')}" if self.amp else ""
        compiled = ", torch.compile" if cfg.train.compile else ""
        self.device_info = (f"torch: device {describe_device(self.device)} "
                            f"(train.device={cfg.train.device}{precision}{compiled})")

    def set_class_weights(self, weights: np.ndarray | None) -> None:
        """Loss = batch mean of ``weights[y] *`` the label-smoothed cross-entropy (None: unweighted)."""
        smoothing = self.cfg.train.label_smoothing
        if weights is None:
            self.loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.CrossEntropyLoss(label_smoothing=smoothing)
            return
        # Per-sample weighting (not CrossEntropyLoss(weight=...), which also reweights the
        # smoothing term per class and divides by the batch's weight sum): the same loss as the
        # TensorFlow backend's.
        per_sample = nn.CrossEntropyLoss(label_smoothing=smoothing, reduction="none")
        table = torch.as_tensor(np.asarray(weights, np.float32))
        self.loss_fn = lambda logits, y: (per_sample(logits, y) * table.to(logits.device)[y]).mean()

    def _init_distributed(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
        if self.device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)

    def synchronize(self) -> None:
        """Distributed: every process takes rank 0's buffers (BatchNorm running statistics, which
        each process updates from its own shard), so all evaluate the same model. Every process
        must call it (the trainer does, before each validation)."""
        if self.world_size <= 1:
            return
        import torch.distributed as dist

        for buffer in self.model.buffers():
            dist.broadcast(buffer.data, src=0)

    def gather_rows(self, local: np.ndarray, total: int) -> np.ndarray:
        """Rows ``rank::world`` of a ``(total, C)`` array from every process, back in order
        (called by all; each passes its own rows)."""
        import torch.distributed as dist

        world, width = self.world_size, self.num_classes
        per = -(-total // world)
        mine = torch.zeros((per, width), dtype=torch.float32, device=self.device)
        mine[: len(local)] = torch.from_numpy(np.asarray(local, np.float32).reshape(-1, width)).to(self.device)
        parts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(parts, mine)
        out = np.empty((total, width), np.float32)
        for rank, part in enumerate(parts):
            out[rank::world] = part[: len(range(rank, total, world))].cpu().numpy()
        return out

    def finish(self) -> None:
        """Distributed: wait for every process, free the DDP wrapper, then leave the process group
        (called by all at the end of training; a process that left first could abort another's
        exit). Afterwards the backend evaluates and saves, but no longer trains in step."""
        if self.world_size <= 1:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            # DDP's reducer holds the process group: while it lives, the group's connections are
            # closed by the interpreter's teardown, in no set order, after a peer may already
            # have gone. Dropping the wrapper first lets the group close here, in order.
            self.net = self.model
            gc.collect()
            dist.destroy_process_group()

    def any_process(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on any of them (called by all)."""
        if self.world_size <= 1:
            return bool(flag)
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def _pinned(self, batch: Batch) -> Batch:
        """On CUDA, the batch copied into page-locked memory (called in the prefetch thread), so
        the host-to-device copies of :meth:`_tensors` run asynchronously; elsewhere unchanged."""
        if self.device.type != "cuda":
            return batch
        return {k: torch.from_numpy(np.ascontiguousarray(v)).pin_memory() for k, v in batch.items()}

    def _tensors(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # non_blocking overlaps the copy with compute only from pinned memory (see _pinned).
        x = torch.as_tensor(batch["x"]).to(self.device, non_blocking=True)
        mask = torch.as_tensor(batch["mask"]).to(self.device, non_blocking=True)
        y = torch.as_tensor(batch["y"]).to(self.device, non_blocking=True)
        return x, mask, y

    # -- training ----------------------------------------------------------------------------
    def _set_lr(self, progress: float) -> None:
        self._lr = learning_rate(self.cfg.train, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr

    def _awp_active(self, epoch: int) -> bool:
        return 0 <= self.cfg.train.awp_start_epoch <= epoch and self.cfg.train.awp_lambda > 0

    def _adversarial_step(self, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor) -> None:
        """AWP: move weights up the loss gradient by ``awp_lambda`` of their norm, add that loss's
        gradient, and restore the weights (the optimizer then steps with both gradients)."""
        backups = []
        with torch.no_grad():
            for p in self.model.parameters():
                if p.requires_grad and p.grad is not None and p.ndim > 1:
                    g_norm, w_norm = p.grad.norm(), p.norm()
                    # Decided on the device (a Python ``if`` on a norm waits for the GPU at every
                    # parameter): a zero or non-finite gradient norm moves nothing.
                    usable = (g_norm > 0) & torch.isfinite(g_norm)
                    delta = self.cfg.train.awp_lambda * w_norm * p.grad / (g_norm + 1e-12) * 1e-2
                    delta = torch.where(usable, delta, torch.zeros_like(delta))
                    p.add_(delta)
                    backups.append((p, delta))
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            out = self.net(x, mask).float()
            loss = self.loss_fn(out, y) * self._share if len(y) else out.sum() * 0.0  # see train_epoch
        self.scaler.scale(loss).backward()  # scaled like the first loss, so unscale_ treats both alike
        with torch.no_grad():
            for p, delta in backups:
                p.sub_(delta)

    def train_epoch(
        self, batches: Iterable[Batch], epoch: int, on_batch: Callable[[int, dict[str, float]], None] | None = None
    ) -> dict[str, float]:
        assert self.model is not None and self.cfg is not None
        self.net.train()
        limit = self.cfg.train.limit_batches or None
        # Distributed: every process gets its shard of every global batch (the loader builds only
        # that), so all take the same steps as one process would, on the same samples.
        totals = {"loss": 0.0, "correct": 0, "seen": 0}
        # Loss and correct count stay on the device and are read every ``check_every`` batches
        # in one transfer (a read waits for the device); the first non-finite batch is still
        # named exactly, and nothing is saved before the epoch ends.
        pending: list[tuple[int, torch.Tensor, torch.Tensor, int, float]] = []
        for index, batch in enumerate(prefetch(map(self._pinned, itertools.islice(batches, limit)))):
            self._set_lr(epoch + index / self.steps_per_epoch)
            x, mask, y = self._tensors(batch)
            # DDP averages the processes' gradients: weighting each shard's mean loss by its share
            # of the global batch makes that average the gradient of the global batch's mean loss.
            self._share = len(y) * self.world_size / int(batch.get("global_size", len(y)))
            if not len(y):  # an empty shard (a last global batch smaller than the world): a stand-in
                # sample with zero weight keeps this process in the step (each needs every process)
                x = torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
                mask = torch.ones((1, x.shape[1]), dtype=torch.bool, device=x.device)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                logits = self.net(x, mask)
                loss = self.loss_fn(logits.float(), y) if len(y) else logits.float().sum() * 0.0
            self.scaler.scale(loss * self._share).backward()  # the stand-in's gradient is zero
            if self._awp_active(epoch):
                self._adversarial_step(x, mask, y)
            if self.cfg.train.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if len(y):
                pending.append((index, loss.detach(), (logits.detach().argmax(-1) == y).sum(), len(y), self._lr))
            if len(pending) >= self.check_every:
                self._drain(pending, totals, epoch, on_batch)
        self._drain(pending, totals, epoch, on_batch)
        seen = totals["seen"]
        return {"loss": totals["loss"] / max(seen, 1), "accuracy": totals["correct"] / max(seen, 1),
                "samples": seen * self.world_size}

    @staticmethod
    def _drain(pending: list[tuple[int, torch.Tensor, torch.Tensor, int, float]], totals: dict[str, Any], epoch: int,
               on_batch: Callable[[int, dict[str, float]], None] | None) -> None:
        """Read the pending batches' losses in one transfer; stop at the first non-finite one."""
        if not pending:
            return
        losses = torch.stack([p[1].float() for p in pending]).tolist()
        corrects = torch.stack([p[2] for p in pending]).tolist()
        account_batches(pending, losses, corrects, totals, epoch, on_batch)

    @torch.no_grad()
    def predict_logits(self, batches: Iterable[Batch]) -> np.ndarray:
        assert self.model is not None
        self.model.eval()
        out = []
        for batch in batches:
            x = torch.from_numpy(batch["x"]).to(self.device)
            mask = torch.from_numpy(batch["mask"]).to(self.device)
            # Evaluation runs in the precision the model trained in (mixed precision on CUDA; a
            # model moved to the CPU for export evaluates in float32).
            amp = self.amp and self.device.type == "cuda"
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=amp):
                logits = self.model(x, mask)
            out.append(logits.float().cpu().numpy())
        if not out:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(out)

    def get_lr(self) -> float:
        return self._lr

    def set_dropout(self, rate: float) -> None:
        from islr.models.torch import set_dropout

        set_dropout(self.model, rate)

    def get_dropout(self) -> list[float]:
        from islr.models.torch import get_dropout

        return get_dropout(self.model)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad or not trainable_only)

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Weights, optimizer, grad scaler, the CPU RNG and, on CUDA, this device's RNG, the LR.

        Only the current CUDA device's RNG state is kept (not every visible GPU's), so a resume
        works on fewer GPUs and opens no CUDA context on other devices.
        """
        on_cuda = self.device.type == "cuda"
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if on_cuda else None,
            "lr": self._lr,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["torch_rng"])
            cuda_rng = state.get("cuda_rng")
            if cuda_rng is not None and self.device.type == "cuda" and torch.cuda.is_available():
                torch.cuda.set_rng_state(cuda_rng, self.device)
            self._lr = state["lr"]

    def save_checkpoint(self, path: Path, extra: dict[str, Any]) -> None:
        """Write ``<path>.safetensors`` (tensors + JSON, no pickle) atomically."""
        write_checkpoint(path, "torch", state_to_numpy(self.state()), extra)

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Restore ``<path>.safetensors``; anything that does not fit raises ModelError naming it."""
        ckpt = read_checkpoint(path, "torch")
        check_state(ckpt.state, ckpt.path)
        check_extra(ckpt.extra, ckpt.path)
        state = map_arrays(ckpt.state, lambda a: torch.from_numpy(np.array(a)))
        try:
            self.load_state(state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            reason = " ".join(str(exc).split())[:400]
            raise ModelError(f"{ckpt.path}: does not fit this model or optimizer ({reason})") from None
        return ckpt.extra


def state_to_numpy(tree: Any) -> Any:
    """``tree`` with every torch tensor as a numpy array (CPU copy), ready for the checkpoint file."""
    if isinstance(tree, torch.Tensor):
        tensor = tree.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            raise ModelError("a bfloat16 tensor cannot go into a checkpoint (keep master weights in float32)")
        return tensor.numpy().copy()
    if isinstance(tree, dict):
        return {k: state_to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(state_to_numpy(v) for v in tree)
    if isinstance(tree, list):
        return [state_to_numpy(v) for v in tree]
    return tree


def check_state(state: dict[str, Any], source: Path) -> None:
    """The torch state's top level: known keys, weights as named arrays, RNG as bytes."""
    expect_keys(state, {"model"}, {"optimizer", "scaler", "torch_rng", "cuda_rng", "lr"}, "state", source)
    for name, value in expect(state["model"], dict, "state/model", source).items():
        expect(name, str, "state/model key", source)
        expect(value, np.ndarray, f"state/model/{name}", source)
    if "optimizer" in state:
        expect_keys(state, {"model", "optimizer", "scaler", "torch_rng", "lr"}, {"cuda_rng"}, "state", source)
        expect(state["optimizer"], dict, "state/optimizer", source)
        expect(state["scaler"], dict, "state/scaler", source)
        expect(state["lr"], (float, int), "state/lr", source)
        for key in ("torch_rng", "cuda_rng"):
            rng = state.get(key)
            if rng is not None and not (isinstance(rng, np.ndarray) and rng.dtype == np.uint8 and rng.ndim == 1):
                raise ModelError(f"{source}: not a valid islr checkpoint (state/{key}: expected a 1-d uint8 array)")


def create_backend(**kwargs: Any) -> TorchBackend:
    """Factory used by :func:`islr.backends.get_backend`."""
    return TorchBackend(**kwargs)
