"""Run ``torchrun`` from a test and, when it fails, say what each process printed.

torchrun's own error ends with a summary of exit codes that pushes the processes' output out of a
short assertion message; a process that aborts (SIGABRT) prints nothing of its own without the
fault handler. Here every process's stderr is kept in a log folder (and still teed), the fault
handler prints a native crash's Python traceback, and :func:`failure` puts each process's last
lines in the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def torchrun(args: list[str], log_dir: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 *args`` with one CPU thread a process."""
    exe = Path(sys.executable).with_name("torchrun")  # installed with torch, next to this python
    assert exe.exists(), f"{exe} not found: torch is not installed in this environment"
    cmd = [str(exe), "--standalone", "--nproc_per_node=2", "--log-dir", str(log_dir), "--tee", "3", *args]
    environ = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1", **env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ)


def failure(done: subprocess.CompletedProcess, log_dir: Path, lines: int = 25) -> str:
    """torchrun's exit code and the last ``lines`` of every process's stderr."""
    parts = [f"torchrun exited with {done.returncode}"]
    for log in sorted(log_dir.glob("**/stderr.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- process {log.parent.name} ({log}):\n" + "\n".join(text))
    parts.append("--- torchrun:\n" + "\n".join(done.stderr.splitlines()[-lines:]))
    return "\n".join(parts)
