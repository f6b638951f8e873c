"""Multi-machine TensorFlow training: the ``TF_CONFIG`` cluster and its MultiWorkerMirroredStrategy.

Every machine runs the same ``islr train ... --framework tensorflow`` command with its own
``TF_CONFIG`` (TensorFlow's standard format)::

    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}

A ``chief`` list, if present, comes first: it is rank 0 and the workers follow (TensorFlow's
``id_in_cluster``). A cluster of one task is ordinary single-machine training.

The strategy configures the collective ops of the TensorFlow runtime, which is possible only
before the runtime has started (before the first tensor or device query): the backend creates it
in its constructor, and only once per process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from islr.errors import ConfigError

_STRATEGY: Any = None


@dataclass(frozen=True)
class Cluster:
    """This process's place in a ``TF_CONFIG`` cluster."""

    rank: int
    """Position of this task: the chief (if any) is 0, then ``worker`` 0, 1, ..."""
    world_size: int
    """Number of training tasks (chief and workers)."""
    addresses: tuple[str, ...]


def cluster_from_env(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """The cluster ``TF_CONFIG`` describes, or None without one (or with a single task)."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc})") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError('TF_CONFIG needs {"cluster": {"worker": [...]}, "task": {"type": ..., "index": ...}}')
    chief, workers = cluster.get("chief", []), cluster.get("worker", [])
    if not isinstance(chief, list) or not isinstance(workers, list) or len(chief) > 1:
        raise ConfigError("TF_CONFIG: cluster.worker must be a list of host:port, cluster.chief a list of one")
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise ConfigError(f"TF_CONFIG: cluster job(s) {unsupported} are not supported (use worker, optionally chief)")
    addresses = tuple(str(a) for a in chief + workers)
    if len(addresses) <= 1:
        return None
    kind, index = task.get("type"), task.get("index", 0)
    jobs = {"chief": chief, "worker": workers}
    if kind not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise ConfigError(f"TF_CONFIG: task {task} is not one of the cluster's {len(chief)} chief and "
                          f"{len(workers)} worker task(s)")
    rank = index if kind == "chief" else len(chief) + index
    return Cluster(rank, len(addresses), addresses)


def multi_worker_strategy() -> Any:
    """This process's ``tf.distribute.MultiWorkerMirroredStrategy`` (created on the first call,
    from ``TF_CONFIG``; later calls return the same one: collectives are configured once)."""
    global _STRATEGY
    if _STRATEGY is None:
        import tensorflow as tf

        try:
            _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise ConfigError(
                "TF_CONFIG describes a cluster, but MultiWorkerMirroredStrategy could not start: it must be "
                f"created before TensorFlow runs anything in this process ({reason})"
            ) from None
    return _STRATEGY
