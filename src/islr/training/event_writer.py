"""A minimal TensorBoard event-file writer (TFRecord framing + crc32c) that imports no framework.

``tensorboard.summary.writer`` pulls TensorFlow in when it is installed (seconds of start-up and
a broken import boundary), so the few bytes of framing are written here; the protobuf messages
come from ``tensorboard.compat.proto``, which imports nothing heavy.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC that TFRecord framing uses."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventFileWriter:
    """Append serialized ``Event`` protos to ``events.out.tfevents.<time>.<host>`` in ``log_dir``."""

    def __init__(self, log_dir: str | Path):
        from tensorboard.compat.proto.event_pb2 import Event

        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.log_dir / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.islr"
        self._handle = open(self.path, "ab")  # noqa: SIM115  (kept open across epochs; closed in close())
        self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_event(self, event: object) -> None:
        data = event.SerializeToString()  # type: ignore[attr-defined]
        header = struct.pack("<Q", len(data))
        self._handle.write(header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data)))

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
